package task

import (
	"os"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"

	"github.com/berth-project/berth/shim/ociruntime"
)

// metrics converts the runtime's stats into the cgroups metrics message that
// containerd decodes for `ctr task metrics`: v1 on cgroup v1 hosts, v2 on
// unified ones.
func metrics(s *ociruntime.Stats) any {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return &v2.Metrics{
			Pids: &v2.PidsStat{Current: s.Pids.Current, Limit: s.Pids.Limit},
			CPU: &v2.CPUStat{
				UsageUsec: s.CPU.Usage.Total / 1000, UserUsec: s.CPU.Usage.User / 1000, SystemUsec: s.CPU.Usage.Kernel / 1000,
				NrPeriods: s.CPU.Throttling.Periods, NrThrottled: s.CPU.Throttling.ThrottledPeriods, ThrottledUsec: s.CPU.Throttling.ThrottledTime / 1000,
			},
			Memory: &v2.MemoryStat{
				Usage: s.Memory.Usage.Usage, UsageLimit: s.Memory.Usage.Limit,
				SwapUsage: s.Memory.Swap.Usage, SwapLimit: s.Memory.Swap.Limit,
				Anon: s.Memory.Raw["anon"], File: s.Memory.Raw["file"],
				ActiveFile: s.Memory.Raw["active_file"], InactiveFile: s.Memory.Raw["inactive_file"],
			},
			Io: ioV2(s),
		}
	}
	mem := func(e ociruntime.MemoryEntry) *v1.MemoryEntry {
		return &v1.MemoryEntry{Limit: e.Limit, Usage: e.Usage, Max: e.Max, Failcnt: e.Failcnt}
	}
	var blkio v1.BlkIOStat
	for _, e := range s.Blkio.IoServiceBytesRecursive {
		blkio.IoServiceBytesRecursive = append(blkio.IoServiceBytesRecursive, &v1.BlkIOEntry{Major: e.Major, Minor: e.Minor, Op: e.Op, Value: e.Value})
	}
	for _, e := range s.Blkio.IoServicedRecursive {
		blkio.IoServicedRecursive = append(blkio.IoServicedRecursive, &v1.BlkIOEntry{Major: e.Major, Minor: e.Minor, Op: e.Op, Value: e.Value})
	}
	return &v1.Metrics{
		Pids: &v1.PidsStat{Current: s.Pids.Current, Limit: s.Pids.Limit},
		CPU: &v1.CPUStat{
			Usage:      &v1.CPUUsage{Total: s.CPU.Usage.Total, Kernel: s.CPU.Usage.Kernel, User: s.CPU.Usage.User, PerCPU: s.CPU.Usage.Percpu},
			Throttling: &v1.Throttle{Periods: s.CPU.Throttling.Periods, ThrottledPeriods: s.CPU.Throttling.ThrottledPeriods, ThrottledTime: s.CPU.Throttling.ThrottledTime},
		},
		Memory: &v1.MemoryStat{
			Cache: s.Memory.Cache, RSS: s.Memory.Raw["rss"], TotalRSS: s.Memory.Raw["total_rss"],
			InactiveFile: s.Memory.Raw["inactive_file"], TotalInactiveFile: s.Memory.Raw["total_inactive_file"],
			ActiveFile: s.Memory.Raw["active_file"], TotalActiveFile: s.Memory.Raw["total_active_file"],
			Usage: mem(s.Memory.Usage), Swap: mem(s.Memory.Swap), Kernel: mem(s.Memory.Kernel), KernelTCP: mem(s.Memory.KernelTCP),
		},
		Blkio: &blkio,
	}
}

// ioV2 folds the runtime's per-operation block I/O counters (runc reports
// cgroup v2's io.stat in v1's shape) into v2's per-device entries.
func ioV2(s *ociruntime.Stats) *v2.IOStat {
	type dev struct{ major, minor uint64 }
	byDev := map[dev]*v2.IOEntry{}
	var order []dev
	entry := func(e ociruntime.BlkioEntry) *v2.IOEntry {
		d := dev{e.Major, e.Minor}
		if byDev[d] == nil {
			byDev[d] = &v2.IOEntry{Major: e.Major, Minor: e.Minor}
			order = append(order, d)
		}
		return byDev[d]
	}
	for _, e := range s.Blkio.IoServiceBytesRecursive {
		switch e.Op {
		case "Read", "read":
			entry(e).Rbytes += e.Value
		case "Write", "write":
			entry(e).Wbytes += e.Value
		}
	}
	for _, e := range s.Blkio.IoServicedRecursive {
		switch e.Op {
		case "Read", "read":
			entry(e).Rios += e.Value
		case "Write", "write":
			entry(e).Wios += e.Value
		}
	}
	io := &v2.IOStat{}
	for _, d := range order {
		io.Usage = append(io.Usage, byDev[d])
	}
	return io
}
