// Command berth-snapshotter serves berth's snapshot store (overlayfs, or a
// copying backend) as containerd's snapshots API on a unix socket, for
// containerd's proxy_plugins and for berthd.
package main

import (
	"context"
	"os"

	"github.com/berth-project/berth/snapshotter/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args, os.Stderr))
}
