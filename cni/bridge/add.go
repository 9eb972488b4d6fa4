package bridge

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Indexes of the result's interfaces.
const (
	bridgeIdx = iota
	hostIdx
	containerIdx
)

// add attaches the container and writes the result to out. On failure it
// undoes, in reverse order, everything it did: masquerade rules, the IPAM
// allocation, the veth pair, and the bridge if this call created it and
// nothing else uses it.
func add(ctx context.Context, args *skel.CmdArgs, out io.Writer) (err error) {
	c, err := loadConf(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	contNS, err := openNetNS(args.Netns)
	if err != nil {
		return err
	}
	defer contNS.Close()

	var nft nftConn // closed last, after any undo
	defer nft.close()
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	br, created, err := ensureBridge(c)
	if err != nil {
		return err
	}
	if created {
		undo = append(undo, func() { removeBridgeIfUnused(c.Bridge) })
	}
	host, err := setupVeth(contNS, args.IfName, br, c)
	if err != nil {
		return err
	}
	undo = append(undo, func() { netlink.LinkDel(host) })

	result := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}
	if c.layer3() {
		p := ipam{conf: c, args: args}
		ires, err := p.add(ctx)
		if err != nil {
			return err
		}
		undo = append(undo, func() { p.run(context.WithoutCancel(ctx), "DEL") })
		if len(ires.IPs) == 0 {
			return types.NewError(types.ErrInternal, fmt.Sprintf("bridge: IPAM plugin %q returned no addresses", c.IPAM.Type), "")
		}
		result.IPs, result.Routes, result.DNS = ires.IPs, ires.Routes, ires.DNS
		if err := gatewayRoutes(c, result); err != nil {
			return err
		}
	}
	if c.DNS.Nameservers != nil || c.DNS.Domain != "" || c.DNS.Search != nil || c.DNS.Options != nil {
		result.DNS = c.DNS
	}
	// Masquerade before the container is configured: the nftables
	// socket closes last (see masq.go).
	if c.IPMasq {
		undo = append(undo, func() { teardownMasq(&nft, c, args.ContainerID, args.IfName) })
		if err := setupMasq(&nft, c, args.ContainerID, args.IfName, result.IPs); err != nil {
			return err
		}
	}

	var cont netlink.Link
	err = contNS.Do(func(ns.NetNS) error {
		var cerr error
		cont, cerr = configureContainer(args.IfName, result, c)
		return cerr
	})
	if err != nil {
		return err
	}

	if c.IsGateway {
		for _, ipc := range result.IPs {
			if err := ensureGateway(br, &net.IPNet{IP: ipc.Gateway, Mask: ipc.Address.Mask}, c.ForceAddress); err != nil {
				return err
			}
		}
		if err := enableForwarding(result.IPs); err != nil {
			return err
		}
	}

	// Read the links again: the bridge's MAC and MTU follow its ports.
	brLink, err := netlink.LinkByName(c.Bridge)
	if err != nil {
		return fmt.Errorf("bridge: look up bridge %s: %w", c.Bridge, err)
	}
	hostLink, err := netlink.LinkByIndex(host.Attrs().Index)
	if err != nil {
		return fmt.Errorf("bridge: look up %s: %w", host.Attrs().Name, err)
	}
	result.Interfaces = []*types100.Interface{
		iface(brLink, "", c),
		iface(hostLink, "", c),
		iface(cont, args.Netns, c),
	}
	for _, ipc := range result.IPs {
		ipc.Interface = types100.Int(containerIdx)
	}
	return printResult(out, result, c.CNIVersion)
}

// gatewayRoutes fills in the gateways of a gateway bridge (the first
// address of the subnet when IPAM gives none) and, for a default gateway,
// adds a default route per family.
func gatewayRoutes(c *NetConf, r *types100.Result) error {
	if !c.IsGateway {
		return nil
	}
	for _, ipc := range r.IPs {
		if ipc.Gateway == nil {
			network := ipc.Address.IP.Mask(ipc.Address.Mask)
			gw := make(net.IP, len(network))
			copy(gw, network)
			gw[len(gw)-1]++
			ipc.Gateway = gw
		}
	}
	if !c.IsDefaultGateway {
		return nil
	}
	gws := familyGateways(r.IPs)
	for _, v4 := range []bool{true, false} {
		gw := gws[v4]
		if gw == nil {
			continue
		}
		bits := 128
		if v4 {
			bits = 32
		}
		dst := net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, bits)}
		if v4 {
			dst.IP = net.IPv4zero.To4()
		}
		exists := false
		for _, rt := range r.Routes {
			if ones, _ := rt.Dst.Mask.Size(); ones == 0 && isV4(rt.Dst.IP) == v4 && rt.Table == nil {
				if rt.GW != nil && !rt.GW.Equal(gw) {
					return types.NewError(types.ErrInvalidNetworkConfig,
						fmt.Sprintf("bridge: isDefaultGateway conflicts with the default route via %s that IPAM gives", rt.GW), "")
				}
				exists = true
			}
		}
		if !exists {
			r.Routes = append(r.Routes, &types.Route{Dst: dst, GW: gw})
		}
	}
	return nil
}

func iface(l netlink.Link, sandbox string, c *NetConf) *types100.Interface {
	i := &types100.Interface{Name: l.Attrs().Name, Mac: l.Attrs().HardwareAddr.String(), Sandbox: sandbox}
	if c.atLeast("1.1.0") {
		i.Mtu = l.Attrs().MTU
	}
	return i
}
