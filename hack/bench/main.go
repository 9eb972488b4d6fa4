// Command bench measures berth's parts against their counterparts side by
// side, alternating the two in one run so that both see the same machine
// state, and prints medians and ratios.
//
//	go run ./hack/bench runtime [-runtime bin/berth-runtime] [-ref runc] [-n 50]
//	go run ./hack/bench shim [-shim-dir bin] [-containers 20] [-n 20] [-execs 1000]
//	go run ./hack/bench shim-soak [-shim-dir bin] [-execs 100000] [-ref] [-batch 1000]
//	go run ./hack/bench cni [-plugin-dir bin] [-ref-dir /usr/lib/cni] [-n 30]
//	go run ./hack/bench snapshot [-snapshotter bin/berth-snapshotter] [-n 5] [-big-mib 280] [-layers 20]
//	go run ./hack/bench run [-bin bin] [-n 20]
//	go run ./hack/bench idle [-bin bin] [-settle 3s]
//	go run ./hack/bench pull [-n 5] [-mib 200] [-layers 8] [-peers containerd,podman]
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench runtime|shim|shim-soak|cni|snapshot|pull|idle|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "runtime":
		err = benchRuntime(os.Args[2:])
	case "shim":
		err = benchShim(os.Args[2:])
	case "shim-soak":
		err = benchShimSoak(os.Args[2:])
	case "cni":
		err = benchCNI(os.Args[2:])
	case "snapshot":
		err = benchSnapshot(os.Args[2:])
	case "pull":
		err = benchPull(os.Args[2:])
	case "idle":
		err = benchIdle(os.Args[2:])
	case "run":
		err = benchRun(os.Args[2:])
	default:
		err = fmt.Errorf("unknown benchmark %q: use runtime, shim, shim-soak, cni, snapshot, pull, idle or run", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
