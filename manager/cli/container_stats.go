package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-units"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// StatsOptions are the flags of `berth stats`.
type StatsOptions struct {
	All      bool
	NoStream bool
	NoTrunc  bool
	Format   string
}

// StatsRow is a line of `berth stats`; --format templates see docker's
// fields.
type StatsRow struct {
	Container string // the container as named on the command line, else its ID
	Name      string
	ID        string
	CPUPerc   string
	MemUsage  string
	MemPerc   string
	NetIO     string
	BlockIO   string
	PIDs      string
}

const statsTable = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

var statsHeaders = map[string]string{
	"Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

// cpuPercent is docker's CPU %: the container's share of the host's CPU
// time over the interval between the entry's two samples, times the CPUs
// (so a container busy on two CPUs shows 200%).
func cpuPercent(e *containersv1.StatsEntry) float64 {
	cpuDelta := float64(e.GetCpuTotalUsage()) - float64(e.GetPreCpuTotalUsage())
	systemDelta := float64(e.GetSystemCpuUsage()) - float64(e.GetPreSystemCpuUsage())
	if systemDelta > 0 && cpuDelta > 0 {
		return cpuDelta / systemDelta * float64(e.GetOnlineCpus()) * 100
	}
	return 0
}

// memoryUsage is docker's MEM USAGE: the usage less the cache the kernel
// can take back.
func memoryUsage(e *containersv1.StatsEntry) uint64 {
	if c := e.GetMemoryCache(); c < e.GetMemoryUsage() {
		return e.GetMemoryUsage() - c
	}
	return e.GetMemoryUsage()
}

// statsRow formats an entry as docker does: memory in binary units
// ("1.5MiB / 7.6GiB"), I/O in decimal ones to three digits ("1.23kB").
func statsRow(container string, e *containersv1.StatsEntry, noTrunc bool) StatsRow {
	id := e.GetId()
	if !noTrunc && len(id) > 12 {
		id = id[:12]
	}
	name := strings.TrimPrefix(e.GetName(), "/")
	if name == "" {
		name = "--"
	}
	mem, limit := float64(memoryUsage(e)), float64(e.GetMemoryLimit())
	memPerc := 0.0
	if limit != 0 {
		memPerc = mem / limit * 100
	}
	io3 := func(a, b uint64) string {
		return units.HumanSizeWithPrecision(float64(a), 3) + " / " + units.HumanSizeWithPrecision(float64(b), 3)
	}
	return StatsRow{
		Container: container,
		Name:      name,
		ID:        id,
		CPUPerc:   fmt.Sprintf("%.2f%%", cpuPercent(e)),
		MemUsage:  units.BytesSize(mem) + " / " + units.BytesSize(limit),
		MemPerc:   fmt.Sprintf("%.2f%%", memPerc),
		NetIO:     io3(e.GetNetworkRxBytes(), e.GetNetworkTxBytes()),
		BlockIO:   io3(e.GetBlockReadBytes(), e.GetBlockWriteBytes()),
		PIDs:      fmt.Sprintf("%d", e.GetPidsCurrent()),
	}
}

// statsFollow is one container's stream of entries.
type statsFollow struct {
	ref   string
	entry *containersv1.StatsEntry // the last received; nil before the first
	err   error
	done  bool
	first chan struct{} // closed at the first entry or the end
}

// Stats shows containers' resource usage as `docker stats` does: the
// named containers, or with none the running ones (all with All, and
// those that start meanwhile); a table redrawn each second, or printed
// once with NoStream.
func (cli *CLI) Stats(ctx context.Context, names []string, opts StatsOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	format := opts.Format
	if format == "" {
		format = formatTable
	}
	// A bad template fails before anything is followed.
	if err := list(io.Discard, format, statsTable, statsHeaders, nil); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu      sync.Mutex
		follows []*statsFollow
		wg      sync.WaitGroup
	)
	defer wg.Wait()
	defer cancel()
	follow := func(ref string) *statsFollow {
		f := &statsFollow{ref: ref, first: make(chan struct{})}
		follows = append(follows, f)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			end := func(err error) {
				mu.Lock()
				f.done, f.err = true, err
				mu.Unlock()
				once.Do(func() { close(f.first) })
			}
			stream, err := c.Containers().Stats(ctx, &containersv1.StatsRequest{Id: ref, Stream: !opts.NoStream})
			if err != nil {
				end(c.Error(err))
				return
			}
			for {
				e, err := stream.Recv()
				if err != nil {
					if errors.Is(err, io.EOF) || ctx.Err() != nil {
						err = nil
					}
					end(c.Error(err))
					return
				}
				mu.Lock()
				f.entry = e
				mu.Unlock()
				once.Do(func() { close(f.first) })
			}
		}()
		return f
	}
	// relist follows the containers berthd lists that are not followed
	// yet, or whose stream ended but which run again.
	relist := func() error {
		resp, err := c.Containers().List(ctx, &containersv1.ListRequest{All: opts.All})
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ct := range resp.GetContainers() {
			i := slices.IndexFunc(follows, func(f *statsFollow) bool { return f.ref == ct.GetId() })
			switch {
			case i < 0:
				follow(ct.GetId())
			case follows[i].done && ct.GetState().GetStatus() == "running":
				follows = slices.Delete(follows, i, i+1)
				follow(ct.GetId())
			}
		}
		return nil
	}
	if len(names) == 0 {
		if err := relist(); err != nil {
			return err
		}
	} else {
		for _, n := range names {
			follow(n)
		}
	}
	// docker shows nothing until every container has its first sample,
	// and fails on a named container it cannot follow.
	mu.Lock()
	firsts := slices.Clone(follows)
	mu.Unlock()
	var errs []error
	for _, f := range firsts {
		select {
		case <-f.first:
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		if f.err != nil {
			errs = append(errs, f.err)
		}
		mu.Unlock()
	}
	if len(names) > 0 && len(errs) > 0 {
		return errors.Join(errs...)
	}
	rows := func() []any {
		mu.Lock()
		defer mu.Unlock()
		var out []any
		kept := follows[:0]
		for _, f := range follows {
			if f.done && !opts.NoStream && len(names) == 0 && !opts.All {
				// It stopped: docker drops it unless --all.
				continue
			}
			kept = append(kept, f)
			if f.entry == nil {
				continue
			}
			e := f.entry
			if f.done && !opts.NoStream {
				// Its stream ended: it no longer runs.
				e = &containersv1.StatsEntry{Id: e.GetId(), Name: e.GetName()}
			}
			out = append(out, statsRow(f.ref, e, opts.NoTrunc))
		}
		follows = kept
		return out
	}
	if opts.NoStream {
		return list(cli.Out, format, statsTable, statsHeaders, rows())
	}
	terminal := isTerminal(cli.Out)
	if terminal {
		fmt.Fprint(cli.Out, "\033[2J")
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var buf bytes.Buffer
		if err := list(&buf, format, statsTable, statsHeaders, rows()); err != nil {
			return err
		}
		out := buf.String()
		if terminal {
			// Redraw in place: home, each line cleared to its end, the
			// rest of the screen cleared.
			out = "\033[H" + strings.ReplaceAll(out, "\n", "\033[K\n") + "\033[J"
		}
		if _, err := io.WriteString(cli.Out, out); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if len(names) == 0 {
			if err := relist(); err != nil {
				return c.Error(err)
			}
		}
	}
}
