package wire

import (
	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
)

// The cgroup metrics a Stats call answers with (cgroups' v1 and v2
// Metrics), every field of every message: a shim that containerd or a
// kubelet polls for stats would otherwise build protobuf's tables for
// these messages, about 350 KB, and keep them.

func encodeV1Metrics(e *encoder, m *v1.Metrics) {
	for _, x := range m.Hugetlb {
		e.message(1, func(e *encoder) {
			if x != nil {
				encodeV1HugetlbStat(e, x)
			}
		})
	}
	if m.Pids != nil {
		e.message(2, func(e *encoder) { encodeV1PidsStat(e, m.Pids) })
	}
	if m.CPU != nil {
		e.message(3, func(e *encoder) { encodeV1CPUStat(e, m.CPU) })
	}
	if m.Memory != nil {
		e.message(4, func(e *encoder) { encodeV1MemoryStat(e, m.Memory) })
	}
	if m.Blkio != nil {
		e.message(5, func(e *encoder) { encodeV1BlkIOStat(e, m.Blkio) })
	}
	if m.Rdma != nil {
		e.message(6, func(e *encoder) { encodeV1RdmaStat(e, m.Rdma) })
	}
	for _, x := range m.Network {
		e.message(7, func(e *encoder) {
			if x != nil {
				encodeV1NetworkStat(e, x)
			}
		})
	}
	if m.CgroupStats != nil {
		e.message(8, func(e *encoder) { encodeV1CgroupStats(e, m.CgroupStats) })
	}
	if m.MemoryOomControl != nil {
		e.message(9, func(e *encoder) { encodeV1MemoryOomControl(e, m.MemoryOomControl) })
	}
}

func encodeV1HugetlbStat(e *encoder, m *v1.HugetlbStat) {
	e.uint(1, m.Usage)
	e.uint(2, m.Max)
	e.uint(3, m.Failcnt)
	e.str(4, m.Pagesize)
}

func encodeV1PidsStat(e *encoder, m *v1.PidsStat) {
	e.uint(1, m.Current)
	e.uint(2, m.Limit)
}

func encodeV1CPUStat(e *encoder, m *v1.CPUStat) {
	if m.Usage != nil {
		e.message(1, func(e *encoder) { encodeV1CPUUsage(e, m.Usage) })
	}
	if m.Throttling != nil {
		e.message(2, func(e *encoder) { encodeV1Throttle(e, m.Throttling) })
	}
}

func encodeV1CPUUsage(e *encoder, m *v1.CPUUsage) {
	e.uint(1, m.Total)
	e.uint(2, m.Kernel)
	e.uint(3, m.User)
	e.packed(4, m.PerCPU)
}

func encodeV1Throttle(e *encoder, m *v1.Throttle) {
	e.uint(1, m.Periods)
	e.uint(2, m.ThrottledPeriods)
	e.uint(3, m.ThrottledTime)
}

func encodeV1MemoryStat(e *encoder, m *v1.MemoryStat) {
	e.uint(1, m.Cache)
	e.uint(2, m.RSS)
	e.uint(3, m.RSSHuge)
	e.uint(4, m.MappedFile)
	e.uint(5, m.Dirty)
	e.uint(6, m.Writeback)
	e.uint(7, m.PgPgIn)
	e.uint(8, m.PgPgOut)
	e.uint(9, m.PgFault)
	e.uint(10, m.PgMajFault)
	e.uint(11, m.InactiveAnon)
	e.uint(12, m.ActiveAnon)
	e.uint(13, m.InactiveFile)
	e.uint(14, m.ActiveFile)
	e.uint(15, m.Unevictable)
	e.uint(16, m.HierarchicalMemoryLimit)
	e.uint(17, m.HierarchicalSwapLimit)
	e.uint(18, m.TotalCache)
	e.uint(19, m.TotalRSS)
	e.uint(20, m.TotalRSSHuge)
	e.uint(21, m.TotalMappedFile)
	e.uint(22, m.TotalDirty)
	e.uint(23, m.TotalWriteback)
	e.uint(24, m.TotalPgPgIn)
	e.uint(25, m.TotalPgPgOut)
	e.uint(26, m.TotalPgFault)
	e.uint(27, m.TotalPgMajFault)
	e.uint(28, m.TotalInactiveAnon)
	e.uint(29, m.TotalActiveAnon)
	e.uint(30, m.TotalInactiveFile)
	e.uint(31, m.TotalActiveFile)
	e.uint(32, m.TotalUnevictable)
	if m.Usage != nil {
		e.message(33, func(e *encoder) { encodeV1MemoryEntry(e, m.Usage) })
	}
	if m.Swap != nil {
		e.message(34, func(e *encoder) { encodeV1MemoryEntry(e, m.Swap) })
	}
	if m.Kernel != nil {
		e.message(35, func(e *encoder) { encodeV1MemoryEntry(e, m.Kernel) })
	}
	if m.KernelTCP != nil {
		e.message(36, func(e *encoder) { encodeV1MemoryEntry(e, m.KernelTCP) })
	}
}

func encodeV1MemoryEntry(e *encoder, m *v1.MemoryEntry) {
	e.uint(1, m.Limit)
	e.uint(2, m.Usage)
	e.uint(3, m.Max)
	e.uint(4, m.Failcnt)
}

func encodeV1MemoryOomControl(e *encoder, m *v1.MemoryOomControl) {
	e.uint(1, m.OomKillDisable)
	e.uint(2, m.UnderOom)
	e.uint(3, m.OomKill)
}

func encodeV1BlkIOStat(e *encoder, m *v1.BlkIOStat) {
	for _, x := range m.IoServiceBytesRecursive {
		e.message(1, func(e *encoder) {
			if x != nil {
				encodeV1BlkIOEntry(e, x)
			}
		})
	}
	for _, x := range m.IoServicedRecursive {
		e.message(2, func(e *encoder) {
			if x != nil {
				encodeV1BlkIOEntry(e, x)
			}
		})
	}
	for _, x := range m.IoQueuedRecursive {
		e.message(3, func(e *encoder) {
			if x != nil {
				encodeV1BlkIOEntry(e, x)
			}
		})
	}
	for _, x := range m.IoServiceTimeRecursive {
		e.message(4, func(e *encoder) {
			if x != nil {
				encodeV1BlkIOEntry(e, x)
			}
		})
	}
	for _, x := range m.IoWaitTimeRecursive {
		e.message(5, func(e *encoder) {
			if x != nil {
				encodeV1BlkIOEntry(e, x)
			}
		})
	}
	for _, x := range m.IoMergedRecursive {
		e.message(6, func(e *encoder) {
			if x != nil {
				encodeV1BlkIOEntry(e, x)
			}
		})
	}
	for _, x := range m.IoTimeRecursive {
		e.message(7, func(e *encoder) {
			if x != nil {
				encodeV1BlkIOEntry(e, x)
			}
		})
	}
	for _, x := range m.SectorsRecursive {
		e.message(8, func(e *encoder) {
			if x != nil {
				encodeV1BlkIOEntry(e, x)
			}
		})
	}
}

func encodeV1BlkIOEntry(e *encoder, m *v1.BlkIOEntry) {
	e.str(1, m.Op)
	e.str(2, m.Device)
	e.uint(3, m.Major)
	e.uint(4, m.Minor)
	e.uint(5, m.Value)
}

func encodeV1RdmaStat(e *encoder, m *v1.RdmaStat) {
	for _, x := range m.Current {
		e.message(1, func(e *encoder) {
			if x != nil {
				encodeV1RdmaEntry(e, x)
			}
		})
	}
	for _, x := range m.Limit {
		e.message(2, func(e *encoder) {
			if x != nil {
				encodeV1RdmaEntry(e, x)
			}
		})
	}
}

func encodeV1RdmaEntry(e *encoder, m *v1.RdmaEntry) {
	e.str(1, m.Device)
	e.uint(2, uint64(m.HcaHandles))
	e.uint(3, uint64(m.HcaObjects))
}

func encodeV1NetworkStat(e *encoder, m *v1.NetworkStat) {
	e.str(1, m.Name)
	e.uint(2, m.RxBytes)
	e.uint(3, m.RxPackets)
	e.uint(4, m.RxErrors)
	e.uint(5, m.RxDropped)
	e.uint(6, m.TxBytes)
	e.uint(7, m.TxPackets)
	e.uint(8, m.TxErrors)
	e.uint(9, m.TxDropped)
}

func encodeV1CgroupStats(e *encoder, m *v1.CgroupStats) {
	e.uint(1, m.NrSleeping)
	e.uint(2, m.NrRunning)
	e.uint(3, m.NrStopped)
	e.uint(4, m.NrUninterruptible)
	e.uint(5, m.NrIoWait)
}

func encodeV2Metrics(e *encoder, m *v2.Metrics) {
	if m.Pids != nil {
		e.message(1, func(e *encoder) { encodeV2PidsStat(e, m.Pids) })
	}
	if m.CPU != nil {
		e.message(2, func(e *encoder) { encodeV2CPUStat(e, m.CPU) })
	}
	if m.Memory != nil {
		e.message(4, func(e *encoder) { encodeV2MemoryStat(e, m.Memory) })
	}
	if m.Rdma != nil {
		e.message(5, func(e *encoder) { encodeV2RdmaStat(e, m.Rdma) })
	}
	if m.Io != nil {
		e.message(6, func(e *encoder) { encodeV2IOStat(e, m.Io) })
	}
	for _, x := range m.Hugetlb {
		e.message(7, func(e *encoder) {
			if x != nil {
				encodeV2HugeTlbStat(e, x)
			}
		})
	}
	if m.MemoryEvents != nil {
		e.message(8, func(e *encoder) { encodeV2MemoryEvents(e, m.MemoryEvents) })
	}
	for _, x := range m.Network {
		e.message(9, func(e *encoder) {
			if x != nil {
				encodeV2NetworkStat(e, x)
			}
		})
	}
}

func encodeV2PSIData(e *encoder, m *v2.PSIData) {
	e.double(1, m.Avg10)
	e.double(2, m.Avg60)
	e.double(3, m.Avg300)
	e.uint(4, m.Total)
}

func encodeV2PSIStats(e *encoder, m *v2.PSIStats) {
	if m.Some != nil {
		e.message(1, func(e *encoder) { encodeV2PSIData(e, m.Some) })
	}
	if m.Full != nil {
		e.message(2, func(e *encoder) { encodeV2PSIData(e, m.Full) })
	}
}

func encodeV2PidsStat(e *encoder, m *v2.PidsStat) {
	e.uint(1, m.Current)
	e.uint(2, m.Limit)
}

func encodeV2CPUStat(e *encoder, m *v2.CPUStat) {
	e.uint(1, m.UsageUsec)
	e.uint(2, m.UserUsec)
	e.uint(3, m.SystemUsec)
	e.uint(4, m.NrPeriods)
	e.uint(5, m.NrThrottled)
	e.uint(6, m.ThrottledUsec)
	if m.PSI != nil {
		e.message(7, func(e *encoder) { encodeV2PSIStats(e, m.PSI) })
	}
	e.uint(8, m.NrBursts)
	e.uint(9, m.BurstUsec)
}

func encodeV2MemoryStat(e *encoder, m *v2.MemoryStat) {
	e.uint(1, m.Anon)
	e.uint(2, m.File)
	e.uint(3, m.KernelStack)
	e.uint(4, m.Slab)
	e.uint(5, m.Sock)
	e.uint(6, m.Shmem)
	e.uint(7, m.FileMapped)
	e.uint(8, m.FileDirty)
	e.uint(9, m.FileWriteback)
	e.uint(10, m.AnonThp)
	e.uint(11, m.InactiveAnon)
	e.uint(12, m.ActiveAnon)
	e.uint(13, m.InactiveFile)
	e.uint(14, m.ActiveFile)
	e.uint(15, m.Unevictable)
	e.uint(16, m.SlabReclaimable)
	e.uint(17, m.SlabUnreclaimable)
	e.uint(18, m.Pgfault)
	e.uint(19, m.Pgmajfault)
	e.uint(20, m.WorkingsetRefault)
	e.uint(21, m.WorkingsetActivate)
	e.uint(22, m.WorkingsetNodereclaim)
	e.uint(23, m.Pgrefill)
	e.uint(24, m.Pgscan)
	e.uint(25, m.Pgsteal)
	e.uint(26, m.Pgactivate)
	e.uint(27, m.Pgdeactivate)
	e.uint(28, m.Pglazyfree)
	e.uint(29, m.Pglazyfreed)
	e.uint(30, m.ThpFaultAlloc)
	e.uint(31, m.ThpCollapseAlloc)
	e.uint(32, m.Usage)
	e.uint(33, m.UsageLimit)
	e.uint(34, m.SwapUsage)
	e.uint(35, m.SwapLimit)
	e.uint(36, m.MaxUsage)
	e.uint(37, m.SwapMaxUsage)
	if m.PSI != nil {
		e.message(38, func(e *encoder) { encodeV2PSIStats(e, m.PSI) })
	}
}

func encodeV2MemoryEvents(e *encoder, m *v2.MemoryEvents) {
	e.uint(1, m.Low)
	e.uint(2, m.High)
	e.uint(3, m.Max)
	e.uint(4, m.Oom)
	e.uint(5, m.OomKill)
	e.uint(6, m.OomGroupKill)
}

func encodeV2RdmaStat(e *encoder, m *v2.RdmaStat) {
	for _, x := range m.Current {
		e.message(1, func(e *encoder) {
			if x != nil {
				encodeV2RdmaEntry(e, x)
			}
		})
	}
	for _, x := range m.Limit {
		e.message(2, func(e *encoder) {
			if x != nil {
				encodeV2RdmaEntry(e, x)
			}
		})
	}
}

func encodeV2RdmaEntry(e *encoder, m *v2.RdmaEntry) {
	e.str(1, m.Device)
	e.uint(2, uint64(m.HcaHandles))
	e.uint(3, uint64(m.HcaObjects))
}

func encodeV2IOStat(e *encoder, m *v2.IOStat) {
	for _, x := range m.Usage {
		e.message(1, func(e *encoder) {
			if x != nil {
				encodeV2IOEntry(e, x)
			}
		})
	}
	if m.PSI != nil {
		e.message(2, func(e *encoder) { encodeV2PSIStats(e, m.PSI) })
	}
}

func encodeV2IOEntry(e *encoder, m *v2.IOEntry) {
	e.uint(1, m.Major)
	e.uint(2, m.Minor)
	e.uint(3, m.Rbytes)
	e.uint(4, m.Wbytes)
	e.uint(5, m.Rios)
	e.uint(6, m.Wios)
}

func encodeV2HugeTlbStat(e *encoder, m *v2.HugeTlbStat) {
	e.uint(1, m.Current)
	e.uint(2, m.Max)
	e.str(3, m.Pagesize)
	e.uint(4, m.Failcnt)
}

func encodeV2NetworkStat(e *encoder, m *v2.NetworkStat) {
	e.str(1, m.Name)
	e.uint(2, m.RxBytes)
	e.uint(3, m.RxPackets)
	e.uint(4, m.RxErrors)
	e.uint(5, m.RxDropped)
	e.uint(6, m.TxBytes)
	e.uint(7, m.TxPackets)
	e.uint(8, m.TxErrors)
	e.uint(9, m.TxDropped)
}
