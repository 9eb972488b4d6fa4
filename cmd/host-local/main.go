// Command host-local is the host-local IPAM plugin (CNI spec 1.1).
package main

import (
	"github.com/berth-project/berth/cni/hostlocal"
	"github.com/berth-project/berth/cni/plugin"
)

func main() {
	plugin.Main("berth host-local IPAM plugin", hostlocal.Funcs)
}
