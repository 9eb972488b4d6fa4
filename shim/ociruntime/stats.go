package ociruntime

// Stats is the part of runc's `events --stats` data the shim reports (the
// JSON shape of github.com/opencontainers/runc/types.Stats, declared here so
// that the shim does not link libcontainer).
type Stats struct {
	CPU struct {
		Usage struct {
			Total  uint64   `json:"total"`
			Percpu []uint64 `json:"percpu"`
			Kernel uint64   `json:"kernel"`
			User   uint64   `json:"user"`
		} `json:"usage"`
		Throttling struct {
			Periods          uint64 `json:"periods"`
			ThrottledPeriods uint64 `json:"throttledPeriods"`
			ThrottledTime    uint64 `json:"throttledTime"`
		} `json:"throttling"`
	} `json:"cpu"`
	Memory struct {
		Cache     uint64            `json:"cache"`
		Usage     MemoryEntry       `json:"usage"`
		Swap      MemoryEntry       `json:"swap"`
		Kernel    MemoryEntry       `json:"kernel"`
		KernelTCP MemoryEntry       `json:"kernelTCP"`
		Raw       map[string]uint64 `json:"raw"`
	} `json:"memory"`
	Pids struct {
		Current uint64 `json:"current"`
		Limit   uint64 `json:"limit"`
	} `json:"pids"`
	Blkio struct {
		IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive"`
		IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive"`
	} `json:"blkio"`
}

// MemoryEntry is one memory counter with its limit.
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage"`
	Max     uint64 `json:"max"`
	Failcnt uint64 `json:"failcnt"`
}

// BlkioEntry is one block I/O counter.
type BlkioEntry struct {
	Major uint64 `json:"major"`
	Minor uint64 `json:"minor"`
	Op    string `json:"op"`
	Value uint64 `json:"value"`
}
