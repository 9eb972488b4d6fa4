package bridge

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/berth-project/berth/cni/plugin"
)

// DefaultBridge is the bridge used when the configuration names none.
const DefaultBridge = "cni0"

// NetConf is the bridge plugin's network configuration. The field names are
// those of the reference bridge plugin, so its configurations work unchanged.
type NetConf struct {
	types.PluginConf

	Bridge           string `json:"bridge"`
	IsGateway        bool   `json:"isGateway"`
	IsDefaultGateway bool   `json:"isDefaultGateway"`
	ForceAddress     bool   `json:"forceAddress"`
	IPMasq           bool   `json:"ipMasq"`
	IPMasqBackend    string `json:"ipMasqBackend,omitempty"` // "nftables" (the default) or "iptables"
	MTU              int    `json:"mtu"`
	HairpinMode      bool   `json:"hairpinMode"`
	PromiscMode      bool   `json:"promiscMode"`
	PortIsolation    bool   `json:"portIsolation"`
	EnableDAD        bool   `json:"enabledad"`
	// DisableContainerInterface leaves the container's interface down
	// (for a runtime that configures it itself); it excludes IPAM.
	DisableContainerInterface bool `json:"disableContainerInterface"`
	// MAC is the container interface's address; args.cni.mac, CNI_ARGS
	// MAC= and runtimeConfig.mac (the "mac" capability) override it.
	MAC string `json:"mac,omitempty"`

	// Accepted so that a reference configuration decodes, and refused
	// with error 2 when set: berth does not implement them (yet).
	Vlan        int               `json:"vlan"`
	VlanTrunk   []json.RawMessage `json:"vlanTrunk,omitempty"`
	MacSpoofChk bool              `json:"macspoofchk"`

	Args struct {
		CNI struct {
			MAC string `json:"mac,omitempty"`
		} `json:"cni"`
	} `json:"args"`
	RuntimeConfig struct {
		MAC string `json:"mac,omitempty"`
	} `json:"runtimeConfig"`

	// mac is the resolved container interface address (nil: random).
	mac net.HardwareAddr
}

// layer3 reports whether the network has IPAM (addresses); without it
// the bridge is a plain layer-2 switch.
func (c *NetConf) layer3() bool { return c.IPAM.Type != "" }

// atLeast reports whether the configuration's version is at least v.
func (c *NetConf) atLeast(v string) bool {
	ok, err := version.GreaterThanOrEqualTo(c.CNIVersion, v)
	return err == nil && ok
}

// parseConf decodes a configuration and fills in the defaults. It checks
// only what every command needs; validate checks the rest.
func parseConf(data []byte) (*NetConf, error) {
	c := &NetConf{}
	if err := plugin.Decode(data, c); err != nil {
		return nil, err
	}
	if !slices.Contains(plugin.Versions.SupportedVersions(), c.CNIVersion) {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("bridge: cniVersion %q is not supported", c.CNIVersion),
			"supported: "+strings.Join(plugin.Versions.SupportedVersions(), ", "))
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "bridge: prevResult is not a valid result", err.Error())
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.IsDefaultGateway {
		c.IsGateway = true
	}
	if !c.layer3() {
		// Without addresses there is no gateway and nothing to
		// masquerade: the reference plugin ignores these, and so do we.
		c.IsGateway, c.IsDefaultGateway, c.IPMasq = false, false, false
	}
	return c, nil
}

// validate checks a configuration for ADD, CHECK and STATUS and resolves
// the container's MAC address (cniArgs is CNI_ARGS). DEL and GC do without,
// so that what an ADD could not have set up can still be torn down.
func (c *NetConf) validate(cniArgs string) error {
	if err := utils.ValidateInterfaceName(c.Bridge); err != nil {
		return plugin.InvalidConfig("bridge: %q is not a valid bridge name: %s", c.Bridge, err.Msg)
	}
	if c.MTU < 0 || c.MTU > 65535 {
		return plugin.InvalidConfig("bridge: mtu %d is out of range (0 for the default, up to 65535)", c.MTU)
	}
	if c.HairpinMode && c.PromiscMode {
		return plugin.InvalidConfig("bridge: hairpinMode and promiscMode cannot both be set: the container would receive its own frames twice")
	}
	if c.DisableContainerInterface && c.layer3() {
		return plugin.InvalidConfig("bridge: disableContainerInterface cannot be used with \"ipam\": addresses and routes need the interface up")
	}
	switch {
	case c.Vlan != 0 || len(c.VlanTrunk) > 0:
		return types.NewError(types.ErrUnsupportedField, "bridge: vlan and vlanTrunk are not supported by berth's bridge plugin", "remove them, or use the reference bridge plugin for VLAN filtering")
	case c.MacSpoofChk:
		return types.NewError(types.ErrUnsupportedField, "bridge: macspoofchk is not supported by berth's bridge plugin", "remove it, or use the reference bridge plugin")
	case c.IPMasqBackend != "" && c.IPMasqBackend != backendNFTables && c.IPMasqBackend != backendIPTables:
		return plugin.InvalidConfig("bridge: ipMasqBackend %q is neither \"nftables\" (the default) nor \"iptables\"", c.IPMasqBackend)
	}
	mac, err := resolveMAC(c, cniArgs)
	if err != nil {
		return err
	}
	c.mac = mac
	return nil
}

// resolveMAC picks the container interface's MAC address from, by rising
// precedence, "mac", CNI_ARGS MAC=, args.cni.mac and runtimeConfig.mac.
func resolveMAC(c *NetConf, cniArgs string) (net.HardwareAddr, error) {
	s, from := c.MAC, "mac"
	for _, kv := range strings.Split(cniArgs, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == "MAC" && v != "" {
			s, from = v, "CNI_ARGS MAC"
		}
	}
	if c.Args.CNI.MAC != "" {
		s, from = c.Args.CNI.MAC, "args.cni.mac"
	}
	if c.RuntimeConfig.MAC != "" {
		s, from = c.RuntimeConfig.MAC, "runtimeConfig.mac"
	}
	if s == "" {
		return nil, nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, plugin.InvalidConfig("bridge: %s %q is not an Ethernet MAC address", from, s)
	}
	if mac[0]&1 != 0 {
		return nil, plugin.InvalidConfig("bridge: %s %s is a multicast address; an interface needs a unicast one", from, mac)
	}
	return mac, nil
}

// loadConf is parseConf and validate, for ADD, CHECK and STATUS.
func loadConf(data []byte, cniArgs string) (*NetConf, error) {
	c, err := parseConf(data)
	if err != nil {
		return nil, err
	}
	if err := c.validate(cniArgs); err != nil {
		return nil, err
	}
	return c, nil
}
