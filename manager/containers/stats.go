package containers

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// statsInterval is the time between two samples, docker's.
const statsInterval = time.Second

// Stats sends samples of a container's usage, as docker's stats API does.
// With stream, one a second while the container runs, the first at once,
// each carrying the one before it (pre_*: docker's precpu_stats) so that
// the client computes the CPU use over the last second from one entry.
// Without stream, one entry, sampled a second after a first sample (what
// docker's --no-stream waits for). A container that does not run gets one
// zeroed entry (docker shows its row with zeros). The stream ends when the
// container exits, ctx ends or berthd shuts down.
func (s *Service) Stats(ctx context.Context, ref string, stream bool, send func(*containersv1.StatsEntry) error) error {
	ctx, cancel := s.untilStopping(ctx)
	defer cancel()
	id, r, err := s.lookup(ref)
	if err != nil {
		return err
	}
	zero := func() error {
		return send(&containersv1.StatsEntry{Id: id, Name: r.GetName(), Read: timestamppb.Now()})
	}
	run, _, exited := s.track(id).current()
	if run == nil {
		return zero()
	}
	hostNet := r.GetConfig().GetNetworkMode() == "host"
	tick := time.NewTicker(statsInterval)
	defer tick.Stop()
	var prev *containersv1.StatsEntry
	for {
		e, err := s.sample(ctx, id, run, hostNet)
		if err != nil {
			select {
			case <-exited:
				// It exited between two samples.
				if !stream {
					return zero()
				}
				return nil
			default:
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		e.Name = r.GetName()
		if prev != nil {
			e.PreCpuTotalUsage, e.PreSystemCpuUsage = prev.GetCpuTotalUsage(), prev.GetSystemCpuUsage()
		}
		if stream || prev != nil {
			if err := send(e); err != nil {
				return err
			}
			if !stream {
				return nil
			}
		}
		prev = e
		select {
		case <-ctx.Done():
			return nil
		case <-exited:
			if !stream {
				return zero()
			}
			return nil
		case <-tick.C:
		}
	}
}

// sample takes one sample: the cgroup's metrics from the shim, the host's
// CPU time and memory, the container's network counters.
func (s *Service) sample(ctx context.Context, id string, run *running, hostNet bool) (*containersv1.StatsEntry, error) {
	resp, err := run.shim.Task.Stats(ctx, &taskapi.StatsRequest{ID: id})
	if err != nil {
		return nil, fmt.Errorf("the container's stats: %w", wireError(err))
	}
	e := &containersv1.StatsEntry{Id: id, Running: true, Read: timestamppb.Now()}
	if err := fillMetrics(e, resp.GetStats()); err != nil {
		return nil, err
	}
	if e.SystemCpuUsage, e.OnlineCpus, err = systemCPU("/proc/stat"); err != nil {
		return nil, err
	}
	if total, err := hostMemory("/proc/meminfo"); err == nil && total > 0 && (e.MemoryLimit == 0 || e.MemoryLimit > total) {
		// No limit: docker shows the host's memory.
		e.MemoryLimit = total
	}
	if !hostNet && run.pid > 0 {
		// Its network namespace's counters; a process gone between the
		// two reads leaves them zero.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", run.pid)); err == nil {
			e.NetworkRxBytes, e.NetworkTxBytes = netDev(b)
		}
	}
	return e, nil
}

// fillMetrics decodes the shim's metrics (containerd's cgroups v1 or v2
// Metrics, as containerd's own shim sends them) into e.
func fillMetrics(e *containersv1.StatsEntry, a *anypb.Any) error {
	if a == nil {
		return fmt.Errorf("the shim sent no stats: %w", errdefs.ErrUnavailable)
	}
	name := a.GetTypeUrl()
	name = name[strings.LastIndexByte(name, '/')+1:]
	switch name {
	case string((&v1.Metrics{}).ProtoReflect().Descriptor().FullName()):
		var m v1.Metrics
		if err := proto.Unmarshal(a.GetValue(), &m); err != nil {
			return fmt.Errorf("the shim's stats: %w", err)
		}
		fillV1(e, &m)
	case string((&v2.Metrics{}).ProtoReflect().Descriptor().FullName()):
		var m v2.Metrics
		if err := proto.Unmarshal(a.GetValue(), &m); err != nil {
			return fmt.Errorf("the shim's stats: %w", err)
		}
		fillV2(e, &m)
	default:
		return fmt.Errorf("stats of type %q: want cgroups v1 or v2 metrics: %w", a.GetTypeUrl(), errdefs.ErrNotImplemented)
	}
	return nil
}

func fillV1(e *containersv1.StatsEntry, m *v1.Metrics) {
	e.CpuTotalUsage = m.GetCPU().GetUsage().GetTotal()
	mem := m.GetMemory()
	e.MemoryUsage, e.MemoryLimit = mem.GetUsage().GetUsage(), mem.GetUsage().GetLimit()
	// docker subtracts total_inactive_file; where the cgroup's metrics
	// lack it, the page cache (docker's rule before 19.03).
	e.MemoryCache = mem.GetTotalInactiveFile()
	if e.MemoryCache == 0 {
		e.MemoryCache = mem.GetCache()
	}
	for _, b := range m.GetBlkio().GetIoServiceBytesRecursive() {
		switch strings.ToLower(b.GetOp()) {
		case "read":
			e.BlockReadBytes += b.GetValue()
		case "write":
			e.BlockWriteBytes += b.GetValue()
		}
	}
	e.PidsCurrent, e.PidsLimit = m.GetPids().GetCurrent(), m.GetPids().GetLimit()
}

func fillV2(e *containersv1.StatsEntry, m *v2.Metrics) {
	e.CpuTotalUsage = m.GetCPU().GetUsageUsec() * 1000
	mem := m.GetMemory()
	e.MemoryUsage, e.MemoryLimit = mem.GetUsage(), mem.GetUsageLimit()
	// docker subtracts inactive_file; where the metrics lack it, the
	// page cache (file).
	e.MemoryCache = mem.GetInactiveFile()
	if e.MemoryCache == 0 {
		e.MemoryCache = mem.GetFile()
	}
	for _, b := range m.GetIo().GetUsage() {
		e.BlockReadBytes += b.GetRbytes()
		e.BlockWriteBytes += b.GetWbytes()
	}
	e.PidsCurrent, e.PidsLimit = m.GetPids().GetCurrent(), m.GetPids().GetLimit()
}

// clockTicks is USER_HZ, which docker takes as 100 as well.
const clockTicks = 100

// systemCPU reads the host's CPU time from /proc/stat as docker does: the
// first seven fields of the "cpu" line (user to softirq), in ns, and the
// CPUs online (the "cpuN" lines).
func systemCPU(path string) (usage uint64, cpus uint32, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		if fields[0] != "cpu" {
			cpus++
			continue
		}
		if len(fields) < 8 {
			return 0, 0, fmt.Errorf("%s: the cpu line has %d fields", path, len(fields))
		}
		var ticks uint64
		for _, v := range fields[1:8] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("%s: %w", path, err)
			}
			ticks += n
		}
		usage, found = ticks*uint64(time.Second)/clockTicks, true
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !found {
		return 0, 0, fmt.Errorf("%s: no cpu line", path)
	}
	return usage, cpus, nil
}

// hostMemory is MemTotal of /proc/meminfo, in bytes.
func hostMemory(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(b)) {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("%s: no MemTotal", path)
}

// netDev sums the received and sent bytes of /proc/net/dev's interfaces
// but lo.
func netDev(b []byte) (rx, tx uint64) {
	for l := range bytes.Lines(b) {
		name, rest, ok := bytes.Cut(l, []byte(":"))
		if !ok || string(bytes.TrimSpace(name)) == "lo" {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(f[0], 10, 64)
		t, _ := strconv.ParseUint(f[8], 10, 64)
		rx, tx = rx+r, tx+t
	}
	return rx, tx
}
