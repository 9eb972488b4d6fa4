package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"google.golang.org/protobuf/types/known/timestamppb"

	volumesv1 "github.com/berth-project/berth/proto/services/volumes/v1"
)

// VolumeCreateOptions are the flags of `berth volume create`.
type VolumeCreateOptions struct {
	Name   string // --name; the argument is the other way to name it
	Driver string
	Labels []string // key=value or key
	Opts   []string // key=value or key
}

// VolumeCreate makes a volume as `docker volume create` does and prints
// its name.
func (cli *CLI) VolumeCreate(ctx context.Context, name string, opts VolumeCreateOptions) error {
	if opts.Name != "" && name != "" && opts.Name != name {
		return errors.New("conflicting options: either specify --name or provide positional arg, not both")
	}
	if name == "" {
		name = opts.Name
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Volumes().Create(ctx, &volumesv1.CreateRequest{
		Name:       name,
		Driver:     opts.Driver,
		Labels:     kvMap(opts.Labels),
		DriverOpts: kvMap(opts.Opts),
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(cli.Out, resp.GetVolume().GetName())
	return nil
}

// kvMap is docker's map of key=value flags: a key alone has the value "".
func kvMap(kvs []string) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// VolumeLsOptions are the flags of `berth volume ls`.
type VolumeLsOptions struct {
	Quiet   bool
	Filters []string
	Format  string
}

// VolumeRow is a line of `berth volume ls`; --format templates see
// docker's fields, and {{.Label "key"}}.
type VolumeRow struct {
	Name         string
	Driver       string
	Scope        string
	Mountpoint   string
	Labels       string
	Links        string // containers using it; "N/A" unless known
	Size         string // "N/A" unless known
	CreatedAt    string
	Availability string
	Group        string
	Status       string

	labels map[string]string
}

// Label is the value of one label, as docker's {{.Label "key"}}.
func (r VolumeRow) Label(name string) string { return r.labels[name] }

const volumeTable = "{{.Driver}}\t{{.Name}}"

var volumeHeaders = map[string]string{
	"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS",
	"Links": "LINKS", "Size": "SIZE", "CreatedAt": "CREATED", "Availability": "AVAILABILITY", "Group": "GROUP", "Status": "STATUS",
}

// VolumeLs lists volumes as `docker volume ls` does, in natural order of
// their names.
func (cli *CLI) VolumeLs(ctx context.Context, opts VolumeLsOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Volumes().List(ctx, &volumesv1.ListRequest{Filters: opts.Filters})
	if err != nil {
		return err
	}
	vols := resp.GetVolumes()
	sort.SliceStable(vols, func(i, j int) bool { return naturalLess(vols[i].GetName(), vols[j].GetName()) })
	for _, w := range resp.GetWarnings() {
		fmt.Fprintln(cli.Err, w)
	}
	if opts.Quiet && (opts.Format == "" || opts.Format == formatTable) {
		for _, v := range vols {
			fmt.Fprintln(cli.Out, v.GetName())
		}
		return nil
	}
	rows := make([]any, 0, len(vols))
	for _, v := range vols {
		rows = append(rows, volumeRow(v))
	}
	return list(cli.Out, opts.Format, volumeTable, volumeHeaders, rows)
}

// volumeRow is a volume as `docker volume ls` shows it.
func volumeRow(v *volumesv1.Volume) VolumeRow {
	labels := make([]string, 0, len(v.GetLabels()))
	for k, val := range v.GetLabels() {
		labels = append(labels, k+"="+val)
	}
	sort.Strings(labels)
	links, size := "N/A", "N/A"
	if u := v.GetUsageData(); u != nil {
		if u.GetRefCount() >= 0 {
			links = strconv.FormatInt(u.GetRefCount(), 10)
		}
		if u.GetSize() >= 0 {
			size = units.HumanSizeWithPrecision(float64(u.GetSize()), 3)
		}
	}
	return VolumeRow{
		Name:         v.GetName(),
		Driver:       v.GetDriver(),
		Scope:        v.GetScope(),
		Mountpoint:   v.GetMountpoint(),
		Labels:       strings.Join(labels, ","),
		Links:        links,
		Size:         size,
		CreatedAt:    volumeTime(v.GetCreatedAt()),
		Availability: "N/A",
		Group:        "N/A",
		Status:       "N/A",
		labels:       v.GetLabels(),
	}
}

// volumeTime is a volume's creation time as docker shows it: RFC 3339 in
// the local zone, to the second.
func volumeTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().Local().Format(time.RFC3339)
}

// naturalLess orders names as docker's CLI does: runs of digits by their
// value ("vol2" before "vol10"), the rest by bytes.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da == "" || db == "" {
			if a[0] != b[0] {
				return a[0] < b[0]
			}
			a, b = a[1:], b[1:]
			continue
		}
		na, nb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
		if len(na) != len(nb) {
			return len(na) < len(nb)
		}
		if na != nb {
			return na < nb
		}
		if len(da) != len(db) {
			return len(da) < len(db)
		}
		a, b = a[len(da):], b[len(db):]
	}
	return len(a) < len(b)
}

func digitsPrefix(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// VolumeInspectOptions are the flags of `berth volume inspect`.
type VolumeInspectOptions struct {
	Format string
}

// volumeJSON is docker's Volume as `docker volume inspect` writes it.
type volumeJSON struct {
	CreatedAt  string            `json:"CreatedAt"`
	Driver     string            `json:"Driver"`
	Labels     map[string]string `json:"Labels"`
	Mountpoint string            `json:"Mountpoint"`
	Name       string            `json:"Name"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
	UsageData  *usageDataJSON    `json:"UsageData,omitempty"`
}

type usageDataJSON struct {
	RefCount int64 `json:"RefCount"`
	Size     int64 `json:"Size"`
}

func toVolumeJSON(v *volumesv1.Volume) volumeJSON {
	j := volumeJSON{
		CreatedAt:  volumeTime(v.GetCreatedAt()),
		Driver:     v.GetDriver(),
		Labels:     v.GetLabels(),
		Mountpoint: v.GetMountpoint(),
		Name:       v.GetName(),
		Options:    v.GetOptions(),
		Scope:      v.GetScope(),
	}
	if j.Labels == nil {
		j.Labels = map[string]string{}
	}
	if j.Options == nil {
		j.Options = map[string]string{}
	}
	if u := v.GetUsageData(); u != nil {
		j.UsageData = &usageDataJSON{RefCount: u.GetRefCount(), Size: u.GetSize()}
	}
	return j
}

// VolumeInspect writes volumes as docker's JSON array, or each through a
// --format template. Volumes not found are reported after the others, and
// make the command fail.
func (cli *CLI) VolumeInspect(ctx context.Context, names []string, opts VolumeInspectOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	return cli.inspectEach(names, opts.Format, func(n string) (any, error) {
		resp, err := c.Volumes().Get(ctx, &volumesv1.GetRequest{Name: n})
		if err != nil {
			return nil, err
		}
		return toVolumeJSON(resp.GetVolume()), nil
	})
}

// VolumeRmOptions are the flags of `berth volume rm`.
type VolumeRmOptions struct {
	Force bool
}

// VolumeRm removes volumes as `docker volume rm` does, printing each name
// removed; with Force, one that does not exist is no error.
func (cli *CLI) VolumeRm(ctx context.Context, names []string, opts VolumeRmOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if _, err := c.Volumes().Remove(ctx, &volumesv1.RemoveRequest{Name: n, Force: opts.Force}); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(cli.Out, n)
	}
	return errors.Join(errs...)
}

// VolumePruneOptions are the flags of `berth volume prune`.
type VolumePruneOptions struct {
	All     bool
	Force   bool
	Filters []string
}

// VolumePrune removes the volumes no container uses, as `docker volume
// prune` does: only anonymous ones unless All.
func (cli *CLI) VolumePrune(ctx context.Context, opts VolumePruneOptions) error {
	if !opts.Force {
		what := "anonymous local volumes"
		if opts.All {
			what = "all local volumes"
		}
		fmt.Fprintf(cli.Out, "WARNING! This will remove %s not used by at least one container.\nAre you sure you want to continue? [y/N] ", what)
		if !confirmed(cli.In) {
			return nil
		}
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Volumes().Prune(ctx, &volumesv1.PruneRequest{All: opts.All, Filters: opts.Filters})
	if err != nil {
		return err
	}
	if d := resp.GetDeleted(); len(d) > 0 {
		fmt.Fprintln(cli.Out, "Deleted Volumes:")
		for _, n := range d {
			fmt.Fprintln(cli.Out, n)
		}
		fmt.Fprintln(cli.Out)
	}
	fmt.Fprintln(cli.Out, "Total reclaimed space:", units.HumanSize(float64(resp.GetSpaceReclaimed())))
	return nil
}
