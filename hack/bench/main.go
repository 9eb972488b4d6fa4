// Command bench measures berth's parts against their counterparts side by
// side, alternating the two in one run so that both see the same machine
// state, and prints medians and ratios.
//
//	go run ./hack/bench runtime [-runtime bin/berth-runtime] [-ref runc] [-n 50]
//	go run ./hack/bench shim [-shim-dir bin] [-containers 20] [-n 20] [-execs 1000]
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench runtime|shim [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "runtime":
		err = benchRuntime(os.Args[2:])
	case "shim":
		err = benchShim(os.Args[2:])
	default:
		err = fmt.Errorf("unknown benchmark %q: use runtime or shim", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
