// Command bridge is the bridge CNI plugin (CNI spec 1.1).
package main

import (
	"github.com/berth-project/berth/cni/bridge"
	"github.com/berth-project/berth/cni/plugin"
)

func main() {
	plugin.Main("berth bridge plugin", bridge.Funcs)
}
