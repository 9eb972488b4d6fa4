package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"

	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
)

// NetworkCreateOptions are the flags of `berth network create`.
type NetworkCreateOptions struct {
	Driver  string
	Subnet  string
	Gateway string
	Labels  []string // k=v or k
}

// NetworkCreate makes a network and prints its ID, as `docker network
// create` does.
func (cli *CLI) NetworkCreate(ctx context.Context, name string, opts NetworkCreateOptions) error {
	req := &networksv1.CreateRequest{Name: name, Driver: opts.Driver, Subnet: opts.Subnet, Gateway: opts.Gateway}
	for _, l := range opts.Labels {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return &UsageError{Command: "berth network create", Err: fmt.Errorf("invalid label %q: empty name", l)}
		}
		if req.Labels == nil {
			req.Labels = map[string]string{}
		}
		req.Labels[k] = v
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Networks().Create(ctx, req)
	if err != nil {
		return err
	}
	if w := resp.GetWarning(); w != "" {
		fmt.Fprintln(cli.Err, "WARNING:", w)
	}
	fmt.Fprintln(cli.Out, resp.GetId())
	return nil
}

// NetworkLsOptions are the flags of `berth network ls`.
type NetworkLsOptions struct {
	Quiet   bool
	NoTrunc bool
	Filters []string
	Format  string
}

// NetworkRow is a line of `berth network ls`; --format templates see
// docker's fields, and {{.Label "key"}}.
type NetworkRow struct {
	ID        string
	Name      string
	Driver    string
	Scope     string
	IPv6      string
	Internal  string
	Labels    string
	CreatedAt string

	labels map[string]string
}

// Label is the value of one label, as docker's {{.Label "key"}}.
func (r NetworkRow) Label(name string) string { return r.labels[name] }

const networkTable = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

var networkHeaders = map[string]string{
	"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
	"Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED",
}

// NetworkLs lists networks as `docker network ls` does, sorted by name.
func (cli *CLI) NetworkLs(ctx context.Context, opts NetworkLsOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Networks().List(ctx, &networksv1.ListRequest{Filters: opts.Filters})
	if err != nil {
		return err
	}
	nets := resp.GetNetworks()
	sort.SliceStable(nets, func(i, j int) bool { return nets[i].GetName() < nets[j].GetName() })
	if opts.Quiet && (opts.Format == "" || opts.Format == formatTable) {
		for _, n := range nets {
			fmt.Fprintln(cli.Out, networkRow(n, !opts.NoTrunc).ID)
		}
		return nil
	}
	rows := make([]any, 0, len(nets))
	for _, n := range nets {
		rows = append(rows, networkRow(n, !opts.NoTrunc))
	}
	return list(cli.Out, opts.Format, networkTable, networkHeaders, rows)
}

// networkRow is a network as `docker network ls` shows it.
func networkRow(n *networksv1.Network, trunc bool) NetworkRow {
	id := n.GetId()
	if trunc {
		id = shortID(id)
	}
	var labels []string
	for k, v := range n.GetLabels() {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	return NetworkRow{
		ID:        id,
		Name:      n.GetName(),
		Driver:    n.GetDriver(),
		Scope:     n.GetScope(),
		IPv6:      strconv.FormatBool(n.GetEnableIpv6()),
		Internal:  strconv.FormatBool(n.GetInternal()),
		Labels:    strings.Join(labels, ","),
		CreatedAt: n.GetCreated().AsTime().Local().Format("2006-01-02 15:04:05.999999999 -0700 MST"),
		labels:    n.GetLabels(),
	}
}

// NetworkRmOptions are the flags of `berth network rm`.
type NetworkRmOptions struct {
	Force bool // no error for networks that do not exist
}

// NetworkRm removes networks as `docker network rm` does: each in turn,
// its name printed when it went, the failures joined in the error.
func (cli *CLI) NetworkRm(ctx context.Context, names []string, opts NetworkRmOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if _, err := c.Networks().Remove(ctx, &networksv1.RemoveRequest{Name: n}); err != nil {
			if opts.Force && errdefs.IsNotFound(err) {
				continue
			}
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(cli.Out, n)
	}
	return errors.Join(errs...)
}

// NetworkPruneOptions are the flags of `berth network prune`.
type NetworkPruneOptions struct {
	Force   bool
	Filters []string
}

// NetworkPrune removes the custom networks no container is on, as `docker
// network prune` does.
func (cli *CLI) NetworkPrune(ctx context.Context, opts NetworkPruneOptions) error {
	if !opts.Force {
		fmt.Fprint(cli.Out, "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ")
		if !confirmed(cli.In) {
			return nil
		}
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Networks().Prune(ctx, &networksv1.PruneRequest{Filters: opts.Filters})
	if err != nil {
		return err
	}
	if d := resp.GetDeleted(); len(d) > 0 {
		fmt.Fprintln(cli.Out, "Deleted Networks:")
		for _, n := range d {
			fmt.Fprintln(cli.Out, n)
		}
		fmt.Fprintln(cli.Out)
	}
	return nil
}
