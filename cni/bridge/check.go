package bridge

import (
	"context"
	"fmt"
	"net"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/cni/plugin"
)

// check verifies the attachment against prevResult: the bridge, the host
// veth attached to it and peered with the container's interface, the
// container interface's MAC, addresses and routes, the gateway addresses
// and masquerade chain when configured, and the IPAM plugin's own CHECK.
func check(ctx context.Context, args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if c.PrevResult == nil {
		return plugin.InvalidConfig("bridge: CHECK needs the prevResult of the ADD")
	}
	prev, err := types100.NewResultFromResult(c.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "bridge: prevResult cannot be converted to the current version", err.Error())
	}

	contIdx := -1
	var hostNames []string
	var brIface *types100.Interface
	for i, iface := range prev.Interfaces {
		switch {
		case iface.Sandbox != "":
			if iface.Name == args.IfName && iface.Sandbox == args.Netns {
				contIdx = i
			}
		case iface.Name == c.Bridge:
			brIface = iface
		default:
			hostNames = append(hostNames, iface.Name)
		}
	}
	if contIdx < 0 {
		return fmt.Errorf("bridge: prevResult has no interface %s in sandbox %s", args.IfName, args.Netns)
	}

	l, err := netlink.LinkByName(c.Bridge)
	if err != nil {
		return fmt.Errorf("bridge: bridge %s: %w", c.Bridge, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return fmt.Errorf("bridge: %s is a %s, not a bridge", c.Bridge, l.Type())
	}
	if brIface != nil && brIface.Mac != "" && brIface.Mac != br.HardwareAddr.String() {
		return fmt.Errorf("bridge: bridge %s has MAC %s, not %s as reported", c.Bridge, br.HardwareAddr, brIface.Mac)
	}

	contNS, err := openNetNS(args.Netns)
	if err != nil {
		return err
	}
	defer contNS.Close()
	var contIndex, peerIndex int
	err = contNS.Do(func(ns.NetNS) error {
		var err error
		contIndex, peerIndex, err = checkContainer(args.IfName, contIdx, prev)
		return err
	})
	if err != nil {
		return err
	}

	host, err := netlink.LinkByIndex(peerIndex)
	if err != nil {
		return fmt.Errorf("bridge: the host end of %s (index %d): %w", args.IfName, peerIndex, err)
	}
	if len(hostNames) > 0 && !slices.Contains(hostNames, host.Attrs().Name) {
		return fmt.Errorf("bridge: the host end of %s is %s, which prevResult does not report (it has %v)", args.IfName, host.Attrs().Name, hostNames)
	}
	hv, ok := host.(*netlink.Veth)
	if !ok {
		return fmt.Errorf("bridge: the host end %s is a %s, not a veth", host.Attrs().Name, host.Type())
	}
	if hv.MasterIndex != br.Index {
		return fmt.Errorf("bridge: %s is not attached to bridge %s", hv.Name, c.Bridge)
	}
	if idx, err := netlink.VethPeerIndex(hv); err != nil || idx != contIndex {
		return fmt.Errorf("bridge: %s is not the peer of the container's %s", hv.Name, args.IfName)
	}

	if c.IsGateway {
		for _, ipc := range prev.IPs {
			if ipc.Gateway == nil {
				continue
			}
			if err := hasAddr(br, &net.IPNet{IP: ipc.Gateway, Mask: ipc.Address.Mask}); err != nil {
				return err
			}
		}
	}
	if c.IPMasq {
		for _, ipc := range prev.IPs {
			ok, what, err := masqInstalled(c, args.ContainerID, args.IfName, ipc.Address.IP)
			if err != nil {
				return fmt.Errorf("bridge: ipMasq: %w", err)
			}
			if !ok {
				return fmt.Errorf("bridge: ipMasq: %s is missing", what)
			}
		}
	}
	if c.layer3() {
		return ipam{conf: c, args: args}.run(ctx, "CHECK")
	}
	return nil
}

// checkContainer runs in the container's namespace: the interface must be
// a veth with the reported MAC, addresses and routes. It returns the
// interface's index and its peer's index in the host namespace.
func checkContainer(ifname string, idx int, prev *types100.Result) (int, int, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return 0, 0, fmt.Errorf("bridge: container interface %s: %w", ifname, err)
	}
	veth, ok := l.(*netlink.Veth)
	if !ok {
		return 0, 0, fmt.Errorf("bridge: container interface %s is a %s, not a veth", ifname, l.Type())
	}
	if mac := prev.Interfaces[idx].Mac; mac != "" && mac != veth.HardwareAddr.String() {
		return 0, 0, fmt.Errorf("bridge: container interface %s has MAC %s, not %s as reported", ifname, veth.HardwareAddr, mac)
	}
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && *ipc.Interface != idx {
			continue
		}
		if err := hasAddr(veth, &ipc.Address); err != nil {
			return 0, 0, err
		}
	}
	for _, r := range prev.Routes {
		if err := hasRoute(veth, r); err != nil {
			return 0, 0, err
		}
	}
	peer, err := netlink.VethPeerIndex(veth)
	if err != nil {
		return 0, 0, fmt.Errorf("bridge: peer of %s: %w", ifname, err)
	}
	return veth.Index, peer, nil
}

func hasAddr(l netlink.Link, want *net.IPNet) error {
	addrs, err := dump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("bridge: list addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		if a.IP.Equal(want.IP) && a.Mask.String() == want.Mask.String() {
			return nil
		}
	}
	return fmt.Errorf("bridge: %s does not have address %s", l.Attrs().Name, want)
}

// hasRoute looks for a route to r.Dst (via r.GW when given) in the
// namespace's table (r.Table, or main).
func hasRoute(l netlink.Link, r *types.Route) error {
	family := netlink.FAMILY_V6
	if isV4(r.Dst.IP) {
		family = netlink.FAMILY_V4
	}
	filter := &netlink.Route{Table: 254} // main
	if r.Table != nil {
		filter.Table = *r.Table
	}
	routes, err := dump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(family, filter, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("bridge: list routes: %w", err)
	}
	wantOnes, _ := r.Dst.Mask.Size()
	found := slices.ContainsFunc(routes, func(rt netlink.Route) bool {
		var dst net.IP
		ones := 0
		if rt.Dst != nil {
			dst = rt.Dst.IP
			ones, _ = rt.Dst.Mask.Size()
		}
		sameDst := ones == wantOnes && (ones == 0 || dst.Equal(r.Dst.IP.Mask(r.Dst.Mask)))
		sameGW := r.GW == nil || slices.ContainsFunc(nexthops(rt), func(gw net.IP) bool { return gw.Equal(r.GW) })
		return sameDst && sameGW
	})
	if !found {
		return fmt.Errorf("bridge: no route to %s via %v in the container (%s)", &r.Dst, r.GW, l.Attrs().Name)
	}
	return nil
}

// nexthops are the gateways of a route, single or multipath.
func nexthops(rt netlink.Route) []net.IP {
	gws := []net.IP{rt.Gw}
	for _, nh := range rt.MultiPath {
		gws = append(gws, nh.Gw)
	}
	return gws
}
