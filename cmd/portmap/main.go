// Command portmap is the portmap CNI plugin (CNI spec 1.1).
package main

import (
	"github.com/berth-project/berth/cni/plugin"
	"github.com/berth-project/berth/cni/portmap"
)

func main() {
	plugin.Main("berth portmap plugin", portmap.Funcs)
}
