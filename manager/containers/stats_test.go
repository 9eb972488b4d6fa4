package containers

import (
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

func TestSystemCPU(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stat")
	stat := "cpu  100 2 30 400 5 6 7 8 0 0\ncpu0 50 1 15 200 2 3 3 4 0 0\ncpu1 50 1 15 200 3 3 4 4 0 0\nintr 1 2 3\nctxt 99\n"
	if err := os.WriteFile(p, []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	usage, cpus, err := systemCPU(p)
	if err != nil {
		t.Fatal(err)
	}
	// user..softirq (steal is left out, as docker does): 550 ticks of 10ms.
	if want := uint64(550 * 10_000_000); usage != want || cpus != 2 {
		t.Errorf("systemCPU = %d, %d; want %d, 2", usage, cpus, want)
	}
	if _, _, err := systemCPU("/proc/stat"); err != nil {
		t.Errorf("the host's /proc/stat: %v", err)
	}
}

func TestHostMemory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(p, []byte("MemTotal:        8000000 kB\nMemFree:         100 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := hostMemory(p); err != nil || got != 8000000*1024 {
		t.Errorf("hostMemory = %d, %v", got, err)
	}
}

func TestNetDev(t *testing.T) {
	dev := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    9999      10    0    0    0     0          0         0     9999      10    0    0    0     0       0          0
  eth0:    1234      12    0    0    0     0          0         0      648       8    0    0    0     0       0          0
  eth1:      66       1    0    0    0     0          0         0       2        1    0    0    0     0       0          0
`
	rx, tx := netDev([]byte(dev))
	if rx != 1300 || tx != 650 {
		t.Errorf("netDev = %d, %d; want 1300, 650", rx, tx)
	}
}

func statsAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	v, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	// The shim's type URL: the message's full name.
	return &anypb.Any{TypeUrl: string(m.ProtoReflect().Descriptor().FullName()), Value: v}
}

func TestFillMetrics(t *testing.T) {
	var e containersv1.StatsEntry
	err := fillMetrics(&e, statsAny(t, &v1.Metrics{
		CPU:    &v1.CPUStat{Usage: &v1.CPUUsage{Total: 123}},
		Memory: &v1.MemoryStat{Cache: 10, Usage: &v1.MemoryEntry{Usage: 100, Limit: 64 << 20}},
		Blkio: &v1.BlkIOStat{IoServiceBytesRecursive: []*v1.BlkIOEntry{
			{Op: "Read", Value: 5}, {Op: "Write", Value: 7}, {Op: "Read", Value: 1}, {Op: "Total", Value: 13},
		}},
		Pids: &v1.PidsStat{Current: 2, Limit: 10},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if e.CpuTotalUsage != 123 || e.MemoryUsage != 100 || e.MemoryCache != 10 || e.MemoryLimit != 64<<20 ||
		e.BlockReadBytes != 6 || e.BlockWriteBytes != 7 || e.PidsCurrent != 2 || e.PidsLimit != 10 {
		t.Errorf("v1: %v", &e)
	}
	e = containersv1.StatsEntry{}
	err = fillMetrics(&e, statsAny(t, &v1.Metrics{Memory: &v1.MemoryStat{Cache: 10, TotalInactiveFile: 4, Usage: &v1.MemoryEntry{Usage: 100}}}))
	if err != nil || e.MemoryCache != 4 {
		t.Errorf("v1 with total_inactive_file: cache %d, %v", e.MemoryCache, err)
	}

	e = containersv1.StatsEntry{}
	err = fillMetrics(&e, statsAny(t, &v2.Metrics{
		CPU:    &v2.CPUStat{UsageUsec: 5},
		Memory: &v2.MemoryStat{Usage: 100, UsageLimit: 200, File: 30, InactiveFile: 20},
		Io:     &v2.IOStat{Usage: []*v2.IOEntry{{Rbytes: 1, Wbytes: 2}, {Rbytes: 3, Wbytes: 4}}},
		Pids:   &v2.PidsStat{Current: 1},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if e.CpuTotalUsage != 5000 || e.MemoryUsage != 100 || e.MemoryLimit != 200 || e.MemoryCache != 20 ||
		e.BlockReadBytes != 4 || e.BlockWriteBytes != 6 || e.PidsCurrent != 1 {
		t.Errorf("v2: %v", &e)
	}

	if err := fillMetrics(&e, &anypb.Any{TypeUrl: "example.Other"}); err == nil {
		t.Error("stats of another type: no error")
	}
	if err := fillMetrics(&e, nil); err == nil {
		t.Error("no stats: no error")
	}
}
