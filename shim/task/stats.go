package task

import (
	"os"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"google.golang.org/protobuf/proto"

	"github.com/berth-project/berth/shim/ociruntime"
)

// metrics converts the runtime's stats into the cgroups metrics message that
// containerd decodes for `ctr task metrics`: v1 on cgroup v1 hosts, v2 on
// unified ones.
func metrics(s *ociruntime.Stats) proto.Message {
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
			},
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
			Usage: mem(s.Memory.Usage), Swap: mem(s.Memory.Swap), Kernel: mem(s.Memory.Kernel), KernelTCP: mem(s.Memory.KernelTCP),
		},
		Blkio: &blkio,
	}
}
