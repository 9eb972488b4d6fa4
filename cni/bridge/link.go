package bridge

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/cni/plugin"
)

// dump runs a netlink dump again when a concurrent change interrupted it
// (netlink then returns partial results with ErrDumpInterrupted).
func dump[T any](f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == 4 {
			return v, err
		}
	}
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// ensureBridge finds the bridge or creates it, and sets it up. created
// says whether this call made it (so a failed ADD can remove it again).
func ensureBridge(c *NetConf) (br *netlink.Bridge, created bool, err error) {
	l, err := netlink.LinkByName(c.Bridge)
	if isNotFound(err) {
		la := netlink.NewLinkAttrs()
		la.Name = c.Bridge
		la.MTU = c.MTU
		err = netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la})
		switch {
		case err == nil:
			created = true
		case errors.Is(err, unix.EEXIST): // another ADD made it meanwhile
		default:
			return nil, false, fmt.Errorf("bridge: create bridge %s: %w", c.Bridge, err)
		}
		l, err = netlink.LinkByName(c.Bridge)
	}
	if err != nil {
		return nil, false, fmt.Errorf("bridge: look up bridge %s: %w", c.Bridge, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, false, types.NewError(plugin.ErrLinkConflict,
			fmt.Sprintf("bridge: a link named %s exists but is a %s, not a bridge", c.Bridge, l.Type()),
			"choose another \"bridge\" name or remove that link")
	}
	undo := func() {
		if created {
			netlink.LinkDel(br)
		}
	}
	if created {
		// A bridge takes the lowest MAC address of its ports unless one
		// was set: pin the one it was born with, so that the gateway's
		// address does not change under the containers as ports come and go.
		if err := netlink.LinkSetHardwareAddr(br, br.HardwareAddr); err != nil {
			undo()
			return nil, false, fmt.Errorf("bridge: set the MAC address of %s: %w", c.Bridge, err)
		}
	}
	if c.PromiscMode && br.Promisc == 0 {
		if err := netlink.SetPromiscOn(br); err != nil {
			undo()
			return nil, false, fmt.Errorf("bridge: set %s promiscuous: %w", c.Bridge, err)
		}
	}
	if br.Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(br); err != nil {
			undo()
			return nil, false, fmt.Errorf("bridge: set %s up: %w", c.Bridge, err)
		}
	}
	return br, created, nil
}

// removeBridgeIfUnused deletes a bridge that has no ports.
func removeBridgeIfUnused(name string) {
	br, err := netlink.LinkByName(name)
	if err != nil {
		return
	}
	links, err := dump(netlink.LinkList)
	if err != nil {
		return
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			return
		}
	}
	netlink.LinkDel(br)
}

// setupVeth creates the container's interface ifname in contNS with its
// peer in the current (host) namespace under a fresh unique name, and
// attaches the peer to the bridge. It returns the host end.
func setupVeth(contNS ns.NetNS, ifname string, br *netlink.Bridge, c *NetConf) (netlink.Link, error) {
	err := contNS.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName(ifname); err == nil {
			return types.NewError(types.ErrInternal, fmt.Sprintf("bridge: interface %s already exists in network namespace %s", ifname, contNS.Path()), "")
		} else if !isNotFound(err) {
			return fmt.Errorf("bridge: look up %s in the container: %w", ifname, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var hostName string
	for attempt := 0; ; attempt++ {
		hostName, err = vethName()
		if err != nil {
			return nil, err
		}
		la := netlink.NewLinkAttrs()
		la.Name = ifname
		la.MTU = c.MTU
		la.HardwareAddr = c.mac
		la.Namespace = netlink.NsFd(int(contNS.Fd()))
		veth := &netlink.Veth{LinkAttrs: la, PeerName: hostName, PeerMTU: uint32(c.MTU)}
		err = netlink.LinkAdd(veth)
		if err == nil {
			break
		}
		// EEXIST: the random host name is taken (the container name was
		// checked above); try another.
		if !errors.Is(err, unix.EEXIST) || attempt == 9 {
			return nil, fmt.Errorf("bridge: create veth pair %s/%s: %w", ifname, hostName, err)
		}
	}
	host, err := netlink.LinkByName(hostName)
	if err == nil {
		err = configureHostVeth(host, br, c)
	}
	if err != nil {
		netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName}})
		return nil, fmt.Errorf("bridge: host end %s: %w", hostName, err)
	}
	return netlink.LinkByName(hostName)
}

func configureHostVeth(host netlink.Link, br *netlink.Bridge, c *NetConf) error {
	if err := netlink.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("attach to %s: %w", br.Name, err)
	}
	if c.HairpinMode {
		if err := netlink.LinkSetHairpin(host, true); err != nil {
			return fmt.Errorf("set hairpin mode: %w", err)
		}
	}
	if c.PortIsolation {
		if err := netlink.LinkSetIsolated(host, true); err != nil {
			return fmt.Errorf("set port isolation: %w", err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

// vethName is a random host-side name, "veth" and 8 hex digits.
func vethName() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("bridge: random veth name: %w", err)
	}
	return "veth" + hex.EncodeToString(b), nil
}

// configureContainer gives the container's interface its addresses and
// routes, and sets it up. It runs inside the container's namespace.
func configureContainer(ifname string, res *types100.Result, c *NetConf) (netlink.Link, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("bridge: look up %s in the container: %w", ifname, err)
	}
	v6 := false
	for _, ipc := range res.IPs {
		if ipc.Address.IP.To4() == nil {
			v6 = true
		}
	}
	if v6 {
		if err := enableIPv6(ifname); err != nil {
			return nil, err
		}
	}
	for _, ipc := range res.IPs {
		if err := addAddr(link, &ipc.Address, !c.EnableDAD); err != nil {
			return nil, fmt.Errorf("bridge: add address %s to %s: %w", &ipc.Address, ifname, err)
		}
	}
	if c.DisableContainerInterface {
		return link, nil
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bridge: set %s up: %w", ifname, err)
	}
	if v6 && c.EnableDAD {
		if err := settle(link, 5*time.Second); err != nil {
			return nil, err
		}
	}
	gws := familyGateways(res.IPs)
	for _, r := range res.Routes {
		gw := r.GW
		if gw == nil {
			gw = gws[isV4(r.Dst.IP)]
		}
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &r.Dst, Gw: gw, Priority: r.Priority, MTU: r.MTU, AdvMSS: r.AdvMSS}
		if r.Table != nil {
			route.Table = *r.Table
		}
		if r.Scope != nil {
			route.Scope = netlink.Scope(*r.Scope)
		}
		if err := netlink.RouteAddEcmp(route); err != nil {
			return nil, fmt.Errorf("bridge: add route %s via %v dev %s: %w", &r.Dst, gw, ifname, err)
		}
	}
	return netlink.LinkByName(ifname)
}

// addAddr adds an address, without duplicate address detection when
// nodad (IPv6 would otherwise hold the address tentative for a second or
// more, and connections made at once would fail).
func addAddr(link netlink.Link, ipn *net.IPNet, nodad bool) error {
	a := &netlink.Addr{IPNet: ipn}
	if nodad && !isV4(ipn.IP) {
		a.Flags = unix.IFA_F_NODAD
	}
	return netlink.AddrAdd(link, a)
}

func enableIPv6(ifname string) error {
	key := "net/ipv6/conf/" + ifname + "/disable_ipv6"
	v, err := sysctl.Sysctl(key)
	if err != nil {
		return fmt.Errorf("bridge: read %s: %w", key, err)
	}
	if v != "0" {
		if _, err := sysctl.Sysctl(key, "0"); err != nil {
			return fmt.Errorf("bridge: enable IPv6 on %s: %w", ifname, err)
		}
	}
	return nil
}

// settle waits until no IPv6 address of link is tentative (DAD is done).
func settle(link netlink.Link, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		addrs, err := dump(func() ([]netlink.Addr, error) { return netlink.AddrList(link, netlink.FAMILY_V6) })
		if err != nil {
			return fmt.Errorf("bridge: list addresses of %s: %w", link.Attrs().Name, err)
		}
		tentative := false
		for _, a := range addrs {
			if a.Flags&unix.IFA_F_DADFAILED != 0 {
				return fmt.Errorf("bridge: duplicate address detection failed for %s on %s", a.IPNet, link.Attrs().Name)
			}
			if a.Flags&unix.IFA_F_TENTATIVE != 0 && !a.IP.IsLinkLocalUnicast() {
				tentative = true
			}
		}
		if !tentative {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bridge: addresses of %s still tentative after %s", link.Attrs().Name, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ensureGateway puts the gateway address gw on the bridge. Another address
// of the same subnet is an error unless force, which replaces it.
func ensureGateway(br netlink.Link, gw *net.IPNet, force bool) error {
	family := netlink.FAMILY_V6
	if isV4(gw.IP) {
		family = netlink.FAMILY_V4
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return netlink.AddrList(br, family) })
	if err != nil {
		return fmt.Errorf("bridge: list addresses of %s: %w", br.Attrs().Name, err)
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		if a.IP.Equal(gw.IP) && a.Mask.String() == gw.Mask.String() {
			return nil
		}
		if !a.Contains(gw.IP) && !gw.Contains(a.IP) {
			continue // another network's gateway on a shared bridge
		}
		if !force {
			return plugin.InvalidConfig("bridge: %s already has address %s, not the gateway %s: set \"forceAddress\" to replace it", br.Attrs().Name, a.IPNet, gw)
		}
		if err := netlink.AddrDel(br, &a); err != nil {
			return fmt.Errorf("bridge: remove address %s from %s: %w", a.IPNet, br.Attrs().Name, err)
		}
	}
	if err := addAddr(br, gw, true); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("bridge: add gateway address %s to %s: %w", gw, br.Attrs().Name, err)
	}
	return nil
}

// enableForwarding turns on IP forwarding for the families in ips.
func enableForwarding(ips []*types100.IPConfig) error {
	for _, ipc := range ips {
		key := "net/ipv6/conf/all/forwarding"
		if isV4(ipc.Address.IP) {
			key = "net/ipv4/ip_forward"
		}
		if v, err := sysctl.Sysctl(key); err == nil && v == "1" {
			continue
		}
		if _, err := sysctl.Sysctl(key, "1"); err != nil {
			return fmt.Errorf("bridge: enable forwarding (%s): %w", key, err)
		}
	}
	return nil
}

// familyGateways is the first gateway of each family, keyed by isV4.
func familyGateways(ips []*types100.IPConfig) map[bool]net.IP {
	gws := map[bool]net.IP{}
	for _, ipc := range ips {
		if ipc.Gateway != nil && gws[isV4(ipc.Gateway)] == nil {
			gws[isV4(ipc.Gateway)] = ipc.Gateway
		}
	}
	return gws
}

func isV4(ip net.IP) bool { return ip.To4() != nil }
