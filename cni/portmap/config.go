package portmap

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/berth-project/berth/cni/plugin"
)

// NetConf is the portmap plugin's configuration. The field names are those
// of the reference portmap plugin, so its configurations work unchanged.
type NetConf struct {
	types.PluginConf

	// SNAT masquerades connections to a published port that come from the
	// host's loopback, so that their replies return (default true).
	SNAT *bool `json:"snat,omitempty"`
	// Accepted for compatibility with the reference iptables backend and
	// ignored: the nftables backend masquerades in its own chain.
	MarkMasqBit          *int   `json:"markMasqBit,omitempty"`
	ExternalSetMarkChain string `json:"externalSetMarkChain,omitempty"`
	// Extra match conditions in the reference plugin's iptables or nft
	// syntax: not supported, refused when not empty.
	ConditionsV4 []string `json:"conditionsV4,omitempty"`
	ConditionsV6 []string `json:"conditionsV6,omitempty"`
	// Backend is accepted for compatibility; only "nftables" (or empty) works.
	Backend string `json:"backend,omitempty"`

	RuntimeConfig struct {
		PortMappings []PortMapping `json:"portMappings,omitempty"`
	} `json:"runtimeConfig"`

	// ValidAttachments are GC's attachments to keep (spec 1.1).
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
}

// PortMapping is one published port, as runtimes pass it in the
// portMappings capability.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// mapping is a validated PortMapping.
type mapping struct {
	hostPort, containerPort uint16
	proto                   string // tcp, udp or sctp
	hostIP                  net.IP // nil: every local address
}

var protoNumbers = map[string]byte{"tcp": 6, "udp": 17, "sctp": 132}

func (c *NetConf) snat() bool { return c.SNAT == nil || *c.SNAT }

// parseConf decodes a configuration and checks what every command needs.
func parseConf(data []byte) (*NetConf, error) {
	c := &NetConf{}
	if err := plugin.Decode(data, c); err != nil {
		return nil, err
	}
	if !slices.Contains(plugin.Versions.SupportedVersions(), c.CNIVersion) {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("portmap: cniVersion %q is not supported", c.CNIVersion), "")
	}
	if c.Name == "" {
		return nil, plugin.InvalidConfig("portmap: the network has no name")
	}
	if c.Backend != "" && c.Backend != "nftables" {
		return nil, types.NewError(types.ErrUnsupportedField, fmt.Sprintf("portmap: backend %q is not supported (only nftables)", c.Backend), "")
	}
	if len(c.ConditionsV4) > 0 || len(c.ConditionsV6) > 0 {
		return nil, types.NewError(types.ErrUnsupportedField, "portmap: conditionsV4 and conditionsV6 are not supported", "")
	}
	return c, nil
}

// mappings validates the runtime's port mappings; one bad mapping fails
// them all, before anything is installed.
func (c *NetConf) mappings() ([]mapping, error) {
	var out []mapping
	for i, pm := range c.RuntimeConfig.PortMappings {
		if pm.HostPort < 1 || pm.HostPort > 65535 {
			return nil, plugin.InvalidConfig("portmap: portMappings[%d]: hostPort %d is not in 1-65535", i, pm.HostPort)
		}
		if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
			return nil, plugin.InvalidConfig("portmap: portMappings[%d]: containerPort %d is not in 1-65535", i, pm.ContainerPort)
		}
		proto := strings.ToLower(pm.Protocol)
		if _, ok := protoNumbers[proto]; !ok {
			return nil, plugin.InvalidConfig("portmap: portMappings[%d]: protocol %q is not tcp, udp or sctp", i, pm.Protocol)
		}
		m := mapping{hostPort: uint16(pm.HostPort), containerPort: uint16(pm.ContainerPort), proto: proto}
		if pm.HostIP != "" {
			ip := net.ParseIP(pm.HostIP)
			if ip == nil {
				return nil, plugin.InvalidConfig("portmap: portMappings[%d]: hostIP %q is not an IP address", i, pm.HostIP)
			}
			if !ip.IsUnspecified() {
				m.hostIP = ip
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// prevResult is the previous plugin's result in the current version, or
// nil when there is none.
func (c *NetConf) prevResult() (*types100.Result, error) {
	if c.RawPrevResult == nil {
		return nil, nil
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "portmap: prevResult cannot be read", err.Error())
	}
	r, err := types100.NewResultFromResult(c.PrevResult)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "portmap: prevResult cannot be converted", err.Error())
	}
	return r, nil
}

// containerAddrs are the container's addresses in prevResult (those on an
// interface in a sandbox, or with no interface named), with their subnets.
func containerAddrs(r *types100.Result) []net.IPNet {
	var out []net.IPNet
	for _, ipc := range r.IPs {
		if ipc.Interface != nil {
			i := *ipc.Interface
			if i < 0 || i >= len(r.Interfaces) || r.Interfaces[i].Sandbox == "" {
				continue
			}
		}
		out = append(out, ipc.Address)
	}
	return out
}

// hostInterfaces are the names of prevResult's interfaces outside the
// sandbox (the bridge and the host veth).
func hostInterfaces(r *types100.Result) []string {
	var out []string
	for _, i := range r.Interfaces {
		if i.Sandbox == "" && i.Name != "" {
			out = append(out, i.Name)
		}
	}
	return out
}
