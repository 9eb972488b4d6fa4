package cli

import (
	"context"

	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
)

// NetworkInspectOptions are the flags of `berth network inspect`.
type NetworkInspectOptions struct {
	Format string
}

// networkJSON is docker's network inspect object.
type networkJSON struct {
	Name       string                         `json:"Name"`
	ID         string                         `json:"Id"`
	Created    string                         `json:"Created"`
	Scope      string                         `json:"Scope"`
	Driver     string                         `json:"Driver"`
	EnableIPv6 bool                           `json:"EnableIPv6"`
	IPAM       ipamJSON                       `json:"IPAM"`
	Internal   bool                           `json:"Internal"`
	Attachable bool                           `json:"Attachable"`
	Ingress    bool                           `json:"Ingress"`
	ConfigFrom configFromJSON                 `json:"ConfigFrom"`
	ConfigOnly bool                           `json:"ConfigOnly"`
	Containers map[string]networkEndpointJSON `json:"Containers"`
	Options    map[string]string              `json:"Options"`
	Labels     map[string]string              `json:"Labels"`
}

type ipamJSON struct {
	Driver  string            `json:"Driver"`
	Options map[string]string `json:"Options"`
	Config  []ipamConfigJSON  `json:"Config"`
}

type ipamConfigJSON struct {
	Subnet  string `json:"Subnet,omitempty"`
	Gateway string `json:"Gateway,omitempty"`
}

type configFromJSON struct {
	Network string `json:"Network"`
}

type networkEndpointJSON struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// toNetworkJSON is n as docker's inspect shows it: empty maps and lists
// as {} and [], not null.
func toNetworkJSON(n *networksv1.Network) networkJSON {
	out := networkJSON{
		Name:       n.GetName(),
		ID:         n.GetId(),
		Created:    timeString(n.GetCreated()),
		Scope:      n.GetScope(),
		Driver:     n.GetDriver(),
		EnableIPv6: n.GetEnableIpv6(),
		IPAM:       ipamJSON{Driver: n.GetIpam().GetDriver(), Config: []ipamConfigJSON{}},
		Internal:   n.GetInternal(),
		Attachable: n.GetAttachable(),
		Containers: map[string]networkEndpointJSON{},
		Options:    map[string]string{},
		Labels:     map[string]string{},
	}
	if out.IPAM.Driver == "" {
		out.IPAM.Driver = "default"
	}
	for _, c := range n.GetIpam().GetConfig() {
		out.IPAM.Config = append(out.IPAM.Config, ipamConfigJSON{Subnet: c.GetSubnet(), Gateway: c.GetGateway()})
	}
	for id, e := range n.GetContainers() {
		out.Containers[id] = networkEndpointJSON{Name: e.GetName(), EndpointID: e.GetEndpointId(), MacAddress: e.GetMacAddress(),
			IPv4Address: e.GetIpv4Address(), IPv6Address: e.GetIpv6Address()}
	}
	for k, v := range n.GetOptions() {
		out.Options[k] = v
	}
	for k, v := range n.GetLabels() {
		out.Labels[k] = v
	}
	return out
}

// NetworkInspect writes the networks as docker's JSON array, or each
// through a --format template. Networks not found are reported after the
// others, and make the command fail.
func (cli *CLI) NetworkInspect(ctx context.Context, names []string, opts NetworkInspectOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	return cli.inspectEach(names, opts.Format, func(n string) (any, error) {
		resp, err := c.Networks().Get(ctx, &networksv1.GetRequest{Name: n})
		if err != nil {
			return nil, err
		}
		return toNetworkJSON(resp.GetNetwork()), nil
	})
}
