// Command containerd-shim-berth-v2 is a containerd shim v2: the process
// between containerd (or berthd) and an OCI runtime for one container or pod.
package main

import (
	"context"
	"os"

	"github.com/berth-project/berth/shim/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args))
}
