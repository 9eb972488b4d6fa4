// Package stats converts libcontainer's statistics into the JSON shape of
// runc's `events` (github.com/opencontainers/runc/types), which containerd's
// runc shim decodes for `ctr task metrics`.
package stats

import (
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/types"
)

// Convert maps libcontainer stats to the events shape.
func Convert(ls *libcontainer.Stats) *types.Stats {
	s := &types.Stats{NetworkInterfaces: ls.Interfaces}
	cg := ls.CgroupStats
	if cg == nil {
		return s
	}
	cpu := cg.CpuStats
	s.CPU = types.Cpu{
		Usage: types.CpuUsage{
			Total:        cpu.CpuUsage.TotalUsage,
			Percpu:       cpu.CpuUsage.PercpuUsage,
			PercpuKernel: cpu.CpuUsage.PercpuUsageInKernelmode,
			PercpuUser:   cpu.CpuUsage.PercpuUsageInUsermode,
			Kernel:       cpu.CpuUsage.UsageInKernelmode,
			User:         cpu.CpuUsage.UsageInUsermode,
		},
		Throttling: types.Throttling{
			Periods:          cpu.ThrottlingData.Periods,
			ThrottledPeriods: cpu.ThrottlingData.ThrottledPeriods,
			ThrottledTime:    cpu.ThrottlingData.ThrottledTime,
		},
		PSI: cpu.PSI,
	}
	cs := cg.CPUSetStats
	s.CPUSet = types.CPUSet{
		CPUs: cs.CPUs, CPUExclusive: cs.CPUExclusive, Mems: cs.Mems,
		MemHardwall: cs.MemHardwall, MemExclusive: cs.MemExclusive,
		MemoryMigrate: cs.MemoryMigrate, MemorySpreadPage: cs.MemorySpreadPage,
		MemorySpreadSlab: cs.MemorySpreadSlab, MemoryPressure: cs.MemoryPressure,
		SchedLoadBalance: cs.SchedLoadBalance, SchedRelaxDomainLevel: cs.SchedRelaxDomainLevel,
	}
	m := cg.MemoryStats
	s.Memory = types.Memory{
		Cache:     m.Cache,
		Usage:     memoryEntry(m.Usage),
		Swap:      memoryEntry(m.SwapUsage),
		Kernel:    memoryEntry(m.KernelUsage),
		KernelTCP: memoryEntry(m.KernelTCPUsage),
		Raw:       m.Stats,
		PSI:       m.PSI,
	}
	s.Pids = types.Pids{Current: cg.PidsStats.Current, Limit: cg.PidsStats.Limit}
	b := cg.BlkioStats
	s.Blkio = types.Blkio{
		IoServiceBytesRecursive: blkio(b.IoServiceBytesRecursive),
		IoServicedRecursive:     blkio(b.IoServicedRecursive),
		IoQueuedRecursive:       blkio(b.IoQueuedRecursive),
		IoServiceTimeRecursive:  blkio(b.IoServiceTimeRecursive),
		IoWaitTimeRecursive:     blkio(b.IoWaitTimeRecursive),
		IoMergedRecursive:       blkio(b.IoMergedRecursive),
		IoTimeRecursive:         blkio(b.IoTimeRecursive),
		SectorsRecursive:        blkio(b.SectorsRecursive),
		PSI:                     b.PSI,
	}
	s.Hugetlb = make(map[string]types.Hugetlb, len(cg.HugetlbStats))
	for size, h := range cg.HugetlbStats {
		s.Hugetlb[size] = types.Hugetlb{Usage: h.Usage, Max: h.MaxUsage, Failcnt: h.Failcnt}
	}
	return s
}

func memoryEntry(d cgroups.MemoryData) types.MemoryEntry {
	return types.MemoryEntry{Limit: d.Limit, Usage: d.Usage, Max: d.MaxUsage, Failcnt: d.Failcnt}
}

func blkio(in []cgroups.BlkioStatEntry) []types.BlkioEntry {
	out := make([]types.BlkioEntry, 0, len(in))
	for _, e := range in {
		out = append(out, types.BlkioEntry{Major: e.Major, Minor: e.Minor, Op: e.Op, Value: e.Value})
	}
	return out
}
