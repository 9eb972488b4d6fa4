package bundle

import (
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Default is the spec the `spec` command writes: runc's example, made
// rootless on request, with rlimits never above the host's hard limits
// (a process without CAP_SYS_RESOURCE cannot raise them, and the container
// would fail to start).
func Default(rootless bool) *specs.Spec {
	spec := specconv.Example()
	if rootless {
		specconv.ToRootless(spec)
	}
	ClampRlimits(spec.Process)
	return spec
}

// ClampRlimits lowers rlimits that ask for more than this host allows.
func ClampRlimits(p *specs.Process) {
	if p == nil {
		return
	}
	for i, r := range p.Rlimits {
		res, ok := rlimitResource[r.Type]
		if !ok {
			continue
		}
		var host unix.Rlimit
		if err := unix.Getrlimit(res, &host); err != nil {
			continue
		}
		if r.Hard > host.Max {
			p.Rlimits[i].Hard = host.Max
		}
		if p.Rlimits[i].Soft > p.Rlimits[i].Hard {
			p.Rlimits[i].Soft = p.Rlimits[i].Hard
		}
	}
}

var rlimitResource = map[string]int{
	"RLIMIT_NOFILE":  unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":   unix.RLIMIT_NPROC,
	"RLIMIT_CORE":    unix.RLIMIT_CORE,
	"RLIMIT_STACK":   unix.RLIMIT_STACK,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
}
