// Command loopback is the loopback CNI plugin (CNI spec 1.1).
package main

import (
	"github.com/berth-project/berth/cni/loopback"
	"github.com/berth-project/berth/cni/plugin"
)

func main() {
	plugin.Main("berth loopback plugin", loopback.Funcs)
}
