// Command berth-runtime is an OCI runtime with runc's command line.
package main

import (
	"context"
	"os"

	"github.com/berth-project/berth/runtime/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args))
}
