package cli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// PsOptions are the flags of `berth ps` (`berth container ls`).
type PsOptions struct {
	All     bool
	Quiet   bool
	Last    int // -n: the last N created, in every state; -1: unset
	Latest  bool
	NoTrunc bool
	Filters []string
	Format  string
}

// ContainerRow is a line of `berth ps`; --format templates see docker's
// fields, and {{.Label "key"}}.
type ContainerRow struct {
	ID           string
	Image        string
	Command      string
	CreatedAt    string
	RunningFor   string
	Ports        string
	State        string
	Status       string
	Size         string
	Names        string
	Labels       string
	Mounts       string
	Networks     string
	LocalVolumes string

	labels map[string]string
}

// Label is the value of one label, as docker's {{.Label "key"}}.
func (r ContainerRow) Label(name string) string { return r.labels[name] }

const psTable = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

var psHeaders = map[string]string{
	"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
	"RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
	"Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
}

// Ps lists containers as `docker ps` does.
func (cli *CLI) Ps(ctx context.Context, opts PsOptions) error {
	last := opts.Last
	if opts.Latest {
		last = 1
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Containers().List(ctx, &containersv1.ListRequest{All: opts.All || last > 0, Filters: opts.Filters})
	if err != nil {
		return err
	}
	ctrs := resp.GetContainers()
	if last > 0 && len(ctrs) > last {
		ctrs = ctrs[:last]
	}
	now := time.Now()
	if opts.Quiet && (opts.Format == "" || opts.Format == formatTable) {
		for _, ct := range ctrs {
			fmt.Fprintln(cli.Out, containerRow(ct, !opts.NoTrunc, now).ID)
		}
		return nil
	}
	rows := make([]any, 0, len(ctrs))
	for _, ct := range ctrs {
		rows = append(rows, containerRow(ct, !opts.NoTrunc, now))
	}
	return list(cli.Out, opts.Format, psTable, psHeaders, rows)
}

// containerRow is a container as `docker ps` shows it.
func containerRow(ct *containersv1.Container, trunc bool, now time.Time) ContainerRow {
	id, cmd := ct.GetId(), ct.GetCommand()
	if trunc {
		id = shortID(id)
		cmd = ellipsis(cmd, 20)
	}
	created := ct.GetCreated().AsTime()
	cfg := ct.GetConfig()
	var labels []string
	for k, v := range cfg.GetLabels() {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	var mounts []string
	for _, m := range cfg.GetMounts() {
		name := m.GetSource()
		if m.GetType() == "tmpfs" || name == "" {
			name = m.GetDestination()
		}
		if trunc {
			name = ellipsis(name, 15)
		}
		mounts = append(mounts, name)
	}
	var local int
	for _, m := range cfg.GetMounts() {
		if m.GetType() == "volume" {
			local++
		}
	}
	return ContainerRow{
		ID:           id,
		Image:        ct.GetImage(),
		Command:      strconv.Quote(cmd),
		CreatedAt:    created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor:   units.HumanDuration(now.Sub(created)) + " ago",
		Ports:        displayPorts(ct.GetNetwork().GetPorts()),
		State:        ct.GetState().GetStatus(),
		Status:       statusString(ct.GetState(), now),
		Size:         units.HumanSizeWithPrecision(float64(ct.GetSizeRw()), 3),
		Names:        strings.TrimPrefix(ct.GetName(), "/"),
		Labels:       strings.Join(labels, ","),
		Mounts:       strings.Join(mounts, ","),
		Networks:     ct.GetNetwork().GetNetwork(),
		LocalVolumes: strconv.Itoa(local),
		labels:       cfg.GetLabels(),
	}
}

// ellipsis cuts s to n characters, the last one "…", as docker does.
func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// statusString is docker's STATUS column: "Up 3 minutes", "Exited (0) 2
// seconds ago", "Created".
func statusString(st *containersv1.State, now time.Time) string {
	ago := func(t time.Time) string { return units.HumanDuration(now.Sub(t)) }
	started, finished := st.GetStartedAt().AsTime(), st.GetFinishedAt().AsTime()
	switch st.GetStatus() {
	case "running":
		return "Up " + ago(started)
	case "paused":
		return "Up " + ago(started) + " (Paused)"
	case "restarting":
		return fmt.Sprintf("Restarting (%d) %s ago", st.GetExitCode(), ago(finished))
	case "removing":
		return "Removal In Progress"
	case "dead":
		return "Dead"
	case "created":
		return "Created"
	}
	if st.GetStartedAt() == nil || started.Unix() <= 0 {
		return "Created"
	}
	if st.GetFinishedAt() == nil || finished.Unix() <= 0 {
		return ""
	}
	return fmt.Sprintf("Exited (%d) %s ago", st.GetExitCode(), ago(finished))
}

// displayPorts is docker's PORTS column: "127.0.0.1:8080->80/tcp", one
// per binding, sorted, unpublished ones as "80/tcp".
func displayPorts(ports []*containersv1.PortBinding) string {
	var out []string
	for _, p := range ports {
		proto := p.GetProtocol()
		if proto == "" {
			proto = "tcp"
		}
		if p.GetHostPort() == 0 {
			out = append(out, fmt.Sprintf("%d/%s", p.GetContainerPort(), proto))
			continue
		}
		ip := p.GetHostIp()
		switch {
		case ip == "":
			ip = "0.0.0.0"
		case strings.Contains(ip, ":"):
			ip = "[" + ip + "]"
		}
		out = append(out, fmt.Sprintf("%s:%d->%d/%s", ip, p.GetHostPort(), p.GetContainerPort(), proto))
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ", ")
}
