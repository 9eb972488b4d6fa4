package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/cni/plugin"
	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/integration/testenv/netenv"
)

func TestAddCheckDelAcrossVersions(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t)
			cont := testenv.NetNS(t)
			conf := e.conf(t, v, false, map[string]any{"isDefaultGateway": true})
			raw, res := e.mustAdd(t, conf, cont, "ctr1", "eth0")
			gw := gatewayOf(e.subnet)

			// The result, in the configuration's version.
			var shape struct {
				CNIVersion string           `json:"cniVersion"`
				Interfaces []map[string]any `json:"interfaces"`
				IPs        []map[string]any `json:"ips"`
			}
			if err := json.Unmarshal(raw, &shape); err != nil {
				t.Fatal(err)
			}
			if shape.CNIVersion != v {
				t.Errorf("result cniVersion = %q, want %q", shape.CNIVersion, v)
			}
			if len(res.Interfaces) != 3 {
				t.Fatalf("result has %d interfaces, want bridge, host veth, container: %s", len(res.Interfaces), raw)
			}
			br, host, ctr := res.Interfaces[0], res.Interfaces[1], res.Interfaces[2]
			if br.Name != e.bridge || br.Sandbox != "" || br.Mac == "" {
				t.Errorf("interface 0 = %+v, want bridge %s with a MAC", br, e.bridge)
			}
			if !strings.HasPrefix(host.Name, "veth") || host.Sandbox != "" || host.Mac == "" {
				t.Errorf("interface 1 = %+v, want a host veth with a MAC", host)
			}
			if ctr.Name != "eth0" || ctr.Sandbox != cont.Path() || ctr.Mac == "" {
				t.Errorf("interface 2 = %+v, want eth0 in %s with a MAC", ctr, cont.Path())
			}
			for i, iface := range shape.Interfaces {
				if _, ok := iface["mtu"]; ok != (v == "1.1.0") {
					t.Errorf("interface %d: mtu present = %v in a %s result (only 1.1.0 has it)", i, ok, v)
				}
			}
			if len(res.IPs) != 1 {
				t.Fatalf("result has %d ips, want 1: %s", len(res.IPs), raw)
			}
			ip := res.IPs[0]
			if ip.Interface == nil || *ip.Interface != 2 {
				t.Errorf("ips[0].interface = %v, want 2 (the container's)", ip.Interface)
			}
			if !e.subnet.Contains(ip.Address.IP) || !ip.Gateway.Equal(gw) {
				t.Errorf("ips[0] = %s gateway %s, want an address of %s and gateway %s", &ip.Address, ip.Gateway, e.subnet, gw)
			}
			if _, ok := shape.IPs[0]["version"]; ok != strings.HasPrefix(v, "0.") {
				t.Errorf("ips[0].version present = %v in a %s result (only 0.x has it)", ok, v)
			}
			if !slices.ContainsFunc(res.Routes, func(r *types.Route) bool {
				ones, _ := r.Dst.Mask.Size()
				return ones == 0 && r.GW.Equal(gw)
			}) {
				t.Errorf("routes %v lack the default route via %s", res.Routes, gw)
			}

			// The container, the bridge and the allocation.
			want := (&net.IPNet{IP: ip.Address.IP, Mask: e.subnet.Mask}).String()
			if a := addrsIn(t, cont, "eth0"); !slices.Contains(a, want) {
				t.Errorf("container eth0 has %v, want %s", a, want)
			}
			if mac := linkIn(t, cont, "eth0").Attrs().HardwareAddr.String(); mac != ctr.Mac {
				t.Errorf("container eth0 MAC %s, result says %s", mac, ctr.Mac)
			}
			assertDefaultRoute(t, cont, gw)
			gwNet := (&net.IPNet{IP: gw, Mask: e.subnet.Mask}).String()
			if a := addrsIn(t, e.host, e.bridge); !slices.Contains(a, gwNet) {
				t.Errorf("bridge has %v, want the gateway %s", a, gwNet)
			}
			hl := linkIn(t, e.host, host.Name)
			if hl.Attrs().MasterIndex != linkIn(t, e.host, e.bridge).Attrs().Index {
				t.Errorf("%s is not attached to %s", host.Name, e.bridge)
			}
			if a := e.allocations(t); len(a) != 1 || a[0] != ip.Address.IP.String() {
				t.Errorf("allocations %v, want [%s]", a, ip.Address.IP)
			}

			if ok, _ := version.GreaterThanOrEqualTo(v, "0.4.0"); ok {
				if err := e.check(t, withPrev(t, conf, raw), cont, "ctr1", "eth0"); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}

			delConf := conf
			if ok, _ := version.GreaterThanOrEqualTo(v, "0.4.0"); ok {
				delConf = withPrev(t, conf, raw)
			}
			e.mustDel(t, delConf, cont.Path(), "ctr1", "eth0")
			e.assertClean(t)
			cont.Do(func(ns.NetNS) error {
				if _, err := netlink.LinkByName("eth0"); !isNotFound(err) {
					t.Errorf("eth0 is still in the container after DEL (%v)", err)
				}
				return nil
			})
			e.mustDel(t, delConf, cont.Path(), "ctr1", "eth0") // again: nothing to do, no error
			if _, err := netlink.LinkByName(e.bridge); err == nil {
				t.Errorf("bridge %s appeared in the test's own namespace", e.bridge)
			}
		})
	}
}

func assertDefaultRoute(t *testing.T, n ns.NetNS, gw net.IP) {
	t.Helper()
	family := netlink.FAMILY_V6
	if gw.To4() != nil {
		family = netlink.FAMILY_V4
	}
	var routes []netlink.Route
	err := n.Do(func(ns.NetNS) error {
		var err error
		routes, err = netlink.RouteList(nil, family)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.Gw.Equal(gw) {
			return
		}
	}
	t.Errorf("no default route via %s in %s: %v", gw, n.Path(), routes)
}

func TestDelWithNetnsGone(t *testing.T) {
	e := newEnv(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	path := n.Path()
	t.Cleanup(func() { // when the test fails before it removes the namespace itself
		n.Close()
		testutils.UnmountNS(n)
	})
	conf := e.conf(t, "1.0.0", false, map[string]any{"isGateway": true, "ipMasq": true})
	raw, _ := e.mustAdd(t, conf, n, "gone", "eth0")
	n.Close()
	if err := testutils.UnmountNS(n); err != nil {
		t.Fatal(err)
	}
	conf = withPrev(t, conf, raw)
	e.mustDel(t, conf, path, "gone", "eth0")
	e.mustDel(t, conf, "", "gone", "eth0") // the runtime may no longer know the path
	// The kernel destroys a namespace, and the veth pair with it, in the
	// background.
	for deadline := time.Now().Add(10 * time.Second); len(e.veths(t)) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	e.assertClean(t)
}

func TestConnectivity(t *testing.T) {
	for _, dual := range []bool{false, true} {
		name := "ipv4"
		if dual {
			name = "dual-stack"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			conf := e.conf(t, "1.1.0", dual, map[string]any{"isGateway": true})
			c1, c2 := testenv.NetNS(t), testenv.NetNS(t)
			_, r1 := e.mustAdd(t, conf, c1, "c1", "eth0")
			_, r2 := e.mustAdd(t, conf, c2, "c2", "eth0")
			t.Cleanup(func() {
				e.del(t, conf, c1.Path(), "c1", "eth0")
				e.del(t, conf, c2.Path(), "c2", "eth0")
			})
			want := 1
			if dual {
				want = 2
			}
			if len(r1.IPs) != want || len(r2.IPs) != want {
				t.Fatalf("got %d and %d addresses, want %d each", len(r1.IPs), len(r2.IPs), want)
			}
			for i := range r1.IPs {
				a1, a2 := r1.IPs[i].Address.IP, r2.IPs[i].Address.IP
				if err := netenv.Ping(c1, a2); err != nil {
					t.Error(err)
				}
				if err := netenv.Ping(c2, a1); err != nil {
					t.Error(err)
				}
				if err := netenv.Ping(e.host, a1); err != nil {
					t.Errorf("the host cannot reach a container: %v", err)
				}
				if err := netenv.Ping(c1, r1.IPs[i].Gateway); err != nil {
					t.Errorf("a container cannot reach its gateway: %v", err)
				}
			}
		})
	}
}

func TestCheckDetectsDrift(t *testing.T) {
	e := newEnv(t)
	conf := e.conf(t, "1.0.0", false, map[string]any{"isGateway": true})
	cont := testenv.NetNS(t)
	raw, res := e.mustAdd(t, conf, cont, "drift", "eth0")
	t.Cleanup(func() { e.del(t, conf, cont.Path(), "drift", "eth0") })
	checkConf := withPrev(t, conf, raw)
	if err := e.check(t, checkConf, cont, "drift", "eth0"); err != nil {
		t.Fatalf("CHECK of a fresh attachment: %v", err)
	}

	// The container loses its address.
	err := cont.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.AddrDel(l, &netlink.Addr{IPNet: &res.IPs[0].Address})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.check(t, checkConf, cont, "drift", "eth0"); err == nil || !strings.Contains(err.Error(), "does not have address") {
		t.Errorf("CHECK with the address gone = %v, want an error naming the address", err)
	}

	// Without prevResult there is nothing to check against.
	if err := e.check(t, conf, cont, "drift", "eth0"); code(err) != types.ErrInvalidNetworkConfig {
		t.Errorf("CHECK without prevResult = %v, want code 7", err)
	}
}

// masqBackends are the ipMasqBackend values: the default (nftables),
// nftables and iptables.
var masqBackends = []string{"", backendNFTables, backendIPTables}

func backendName(b string) string {
	if b == "" {
		return "default"
	}
	return b
}

// masqConf is a dual-stack configuration with masquerading by backend.
func (e *env) masqConf(t *testing.T, version, backend string, extra map[string]any) []byte {
	t.Helper()
	m := map[string]any{"isDefaultGateway": true, "ipMasq": true}
	if backend != "" {
		m["ipMasqBackend"] = backend
	}
	maps.Copy(m, extra)
	return e.conf(t, version, true, m)
}

// hasMasq reports whether rules (e.masqRules) hold the masquerading of
// the attachment id/eth0.
func (e *env) hasMasq(rules []string, backend, id string) bool {
	want := masqAttachmentTag(e.network, id, "eth0")
	if backend == backendIPTables {
		want = masqChain(e.network, id, "eth0")
	}
	return slices.ContainsFunc(rules, func(r string) bool { return strings.Contains(r, want) })
}

// TestIPMasq masquerades with each backend: the rules are as documented, a
// container reaches a machine that has no route back to it (so only
// through the host's address), not without the rules (and CHECK notices
// they are gone), and DEL removes every rule.
func TestIPMasq(t *testing.T) {
	for _, backend := range masqBackends {
		t.Run(backendName(backend), func(t *testing.T) {
			e := newEnv(t)
			conf := e.masqConf(t, "1.0.0", backend, nil)
			cont := testenv.NetNS(t)
			raw, res := e.mustAdd(t, conf, cont, "masq", "eth0")
			t.Cleanup(func() { e.del(t, conf, cont.Path(), "masq", "eth0") })

			if backend == backendIPTables {
				chain := masqChain(e.network, "masq", "eth0")
				for _, ipc := range res.IPs {
					cmd, host := "ip6tables", "/128"
					if ipc.Address.IP.To4() != nil {
						cmd, host = "iptables", "/32"
					}
					rules := strings.Join(netenv.NATRules(t, e.host, cmd), "\n")
					for _, want := range []string{
						"-N " + chain,
						"-A POSTROUTING -s " + ipc.Address.IP.String() + host,
						"-j " + chain,
						"-A " + chain + " -d " + (&net.IPNet{IP: ipc.Address.IP.Mask(ipc.Address.Mask), Mask: ipc.Address.Mask}).String(),
						"-j MASQUERADE",
					} {
						if !strings.Contains(rules, want) {
							t.Errorf("%s nat rules lack %q:\n%s", cmd, want, rules)
						}
					}
				}
			} else {
				rules := netenv.NFTRules(t, e.host, "berth-bridge ")
				for _, ipc := range res.IPs {
					ip, multicast := "ip", "224.0.0.0/4"
					if ipc.Address.IP.To4() == nil {
						ip, multicast = "ip6", "ff00::/8"
					}
					subnet := &net.IPNet{IP: ipc.Address.IP.Mask(ipc.Address.Mask), Mask: ipc.Address.Mask}
					want := fmt.Sprintf("%s saddr %s %s daddr != %s %s daddr != %s masquerade comment %q",
						ip, ipc.Address.IP, ip, subnet, ip, multicast, masqAttachmentTag(e.network, "masq", "eth0")+ipc.Address.IP.String())
					if !slices.Contains(rules, want) {
						t.Errorf("nftables rules lack\n\t%s\nhave\n\t%s", want, strings.Join(rules, "\n\t"))
					}
				}
				if r := netenv.NATRules(t, e.host, "iptables"); len(r) != 0 {
					t.Errorf("iptables rules with the nftables backend: %v", r)
				}
			}

			// A machine beyond the host that knows no route to the containers.
			y := rand.IntN(250) + 2
			remoteIP := net.IPv4(10, 97, byte(y), 2).To4()
			e.host.Remote(t, &net.IPNet{IP: net.IPv4(10, 97, byte(y), 1).To4(), Mask: net.CIDRMask(24, 32)},
				&net.IPNet{IP: remoteIP, Mask: net.CIDRMask(24, 32)})
			if err := netenv.Ping(cont, remoteIP); err != nil {
				t.Errorf("the container does not reach a remote machine through masquerading: %v", err)
			}
			checkConf := withPrev(t, conf, raw)
			if err := e.check(t, checkConf, cont, "masq", "eth0"); err != nil {
				t.Errorf("CHECK: %v", err)
			}

			// Without the rules the remote cannot answer, and CHECK says so.
			if err := e.inHost(t, func() error { return teardownMasq(&nftConn{}, mustParse(t, conf), "masq", "eth0") }); err != nil {
				t.Fatal(err)
			}
			if err := netenv.Ping(cont, remoteIP); err == nil {
				t.Error("the container reaches the remote machine without masquerading: the test proves nothing")
			}
			if err := e.check(t, checkConf, cont, "masq", "eth0"); err == nil || !strings.Contains(err.Error(), "ipMasq") {
				t.Errorf("CHECK without the masquerade rules = %v, want an ipMasq error", err)
			}

			e.mustDel(t, checkConf, cont.Path(), "masq", "eth0")
			e.assertClean(t)
		})
	}
}

func mustParse(t *testing.T, conf []byte) *NetConf {
	t.Helper()
	c, err := parseConf(conf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGC(t *testing.T) {
	for _, backend := range masqBackends[1:] {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t)
			conf := e.masqConf(t, "1.1.0", backend, nil)
			keep, drop := testenv.NetNS(t), testenv.NetNS(t)
			_, rk := e.mustAdd(t, conf, keep, "keep", "eth0")
			e.mustAdd(t, conf, drop, "drop", "eth0")

			var c map[string]any
			json.Unmarshal(conf, &c)
			c["cni.dev/valid-attachments"] = []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}}
			gcConf, _ := json.Marshal(c)
			if err := e.inHost(t, func() error { return gc(context.Background(), &skel.CmdArgs{Path: e.cniPath, StdinData: gcConf}) }); err != nil {
				t.Fatalf("GC: %v", err)
			}
			if a := e.allocations(t); len(a) != 2 || !slices.Contains(a, rk.IPs[0].Address.IP.String()) || !slices.Contains(a, rk.IPs[1].Address.IP.String()) {
				t.Errorf("allocations after GC = %v, want only keep's %v", a, rk.IPs)
			}
			rules := e.masqRules(t)
			if !e.hasMasq(rules, backend, "keep") {
				t.Errorf("GC removed the masquerading of a valid attachment:\n%s", strings.Join(rules, "\n"))
			}
			if e.hasMasq(rules, backend, "drop") {
				t.Errorf("GC left the masquerading of a stale attachment:\n%s", strings.Join(rules, "\n"))
			}

			e.mustDel(t, conf, keep.Path(), "keep", "eth0")
			e.mustDel(t, conf, drop.Path(), "drop", "eth0")
			e.assertClean(t)
		})
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	status := func(conf []byte) error {
		return e.inHost(t, func() error { return status(context.Background(), &skel.CmdArgs{Path: e.cniPath, StdinData: conf}) })
	}
	if err := status(e.conf(t, "1.1.0", false, map[string]any{"ipMasq": true})); err != nil {
		t.Errorf("STATUS with host-local: %v", err)
	}
	bad := e.conf(t, "1.1.0", false, map[string]any{"ipam": map[string]any{"type": "no-such-ipam"}})
	if err := status(bad); code(err) != types.ErrPluginNotAvailable {
		t.Errorf("STATUS with a missing IPAM plugin = %v, want code 50", err)
	}
}

func TestNoLeaksOverCycles(t *testing.T) {
	e := newEnv(t)
	conf := e.conf(t, "1.1.0", true, map[string]any{"isDefaultGateway": true, "ipMasq": true, "hairpinMode": true})
	c1, c2 := testenv.NetNS(t), testenv.NetNS(t)
	for i := range 5 {
		r1, _ := e.mustAdd(t, conf, c1, "cyc1", "eth0")
		r2, _ := e.mustAdd(t, conf, c2, "cyc2", "eth1")
		if i == 0 && t.Failed() {
			return
		}
		e.mustDel(t, withPrev(t, conf, r1), c1.Path(), "cyc1", "eth0")
		e.mustDel(t, withPrev(t, conf, r2), c2.Path(), "cyc2", "eth1")
	}
	e.assertClean(t)
	for _, c := range []ns.NetNS{c1, c2} {
		c.Do(func(ns.NetNS) error {
			links, _ := netlink.LinkList()
			for _, l := range links {
				if l.Attrs().Name != "lo" {
					t.Errorf("link %s left in %s", l.Attrs().Name, c.Path())
				}
			}
			return nil
		})
	}
	br := linkIn(t, e.host, e.bridge)
	e.inHost(t, func() error {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				t.Errorf("port %s left on the bridge", l.Attrs().Name)
			}
		}
		return nil
	})
}

func TestOptions(t *testing.T) {
	e := newEnv(t)
	const mac = "0a:58:0a:63:00:42"
	cases := []struct {
		name   string
		extra  map[string]any
		cniArg string
		verify func(t *testing.T, cont ns.NetNS, res *types100.Result)
	}{
		{"mtu", map[string]any{"mtu": 1400}, "", func(t *testing.T, cont ns.NetNS, res *types100.Result) {
			if m := linkIn(t, cont, "eth0").Attrs().MTU; m != 1400 {
				t.Errorf("container MTU %d, want 1400", m)
			}
			if m := linkIn(t, e.host, res.Interfaces[1].Name).Attrs().MTU; m != 1400 {
				t.Errorf("host veth MTU %d, want 1400", m)
			}
		}},
		{"hairpin", map[string]any{"hairpinMode": true, "portIsolation": true}, "", func(t *testing.T, cont ns.NetNS, res *types100.Result) {
			host := linkIn(t, e.host, res.Interfaces[1].Name)
			var pi netlink.Protinfo
			err := e.inHost(t, func() (err error) {
				pi, err = netlink.LinkGetProtinfo(host)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !pi.Hairpin || !pi.Isolated {
				t.Errorf("host veth port: hairpin %v isolated %v, want both", pi.Hairpin, pi.Isolated)
			}
		}},
		{"promisc", map[string]any{"promiscMode": true}, "", func(t *testing.T, cont ns.NetNS, res *types100.Result) {
			if p := linkIn(t, e.host, e.bridge).Attrs().Promisc; p == 0 {
				t.Error("bridge is not promiscuous")
			}
		}},
		{"mac", map[string]any{"mac": mac}, "", nil},
		{"mac from CNI_ARGS", map[string]any{"mac": "0a:58:00:00:00:01"}, "IgnoreUnknown=1;MAC=" + mac, nil},
		{"mac from args", map[string]any{"args": map[string]any{"cni": map[string]any{"mac": mac}}}, "MAC=0a:58:00:00:00:01", nil},
		{"mac from runtimeConfig", map[string]any{"runtimeConfig": map[string]any{"mac": mac}, "args": map[string]any{"cni": map[string]any{"mac": "0a:58:00:00:00:01"}}}, "", nil},
		{"layer 2 only", map[string]any{"ipam": map[string]any{}, "isDefaultGateway": true, "ipMasq": true}, "", func(t *testing.T, cont ns.NetNS, res *types100.Result) {
			if len(res.IPs) != 0 || len(res.Routes) != 0 || len(addrsIn(t, cont, "eth0")) != 0 {
				t.Errorf("a network without IPAM gave addresses or routes: %v %v", res.IPs, res.Routes)
			}
			if r := e.masqRules(t); len(r) != 0 {
				t.Errorf("a network without IPAM got masquerade rules: %v", r)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conf := e.conf(t, "1.1.0", false, tc.extra)
			cont := testenv.NetNS(t)
			var out strings.Builder
			args := e.args(conf, cont.Path(), "opt", "eth0")
			args.Args = tc.cniArg
			err := e.inHost(t, func() error { return add(context.Background(), args, &out) })
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() { e.del(t, conf, cont.Path(), "opt", "eth0") })
			res, err := types100.NewResult([]byte(out.String()))
			if err != nil {
				t.Fatal(err)
			}
			r := res.(*types100.Result)
			if strings.HasPrefix(tc.name, "mac") {
				if got := linkIn(t, cont, "eth0").Attrs().HardwareAddr.String(); got != mac || r.Interfaces[2].Mac != mac {
					t.Errorf("container MAC %s (result %s), want %s", got, r.Interfaces[2].Mac, mac)
				}
			}
			if tc.verify != nil {
				tc.verify(t, cont, r)
			}
		})
	}
}

// TestFailuresLeaveNothing checks the errors of ADD and that a failed ADD
// undoes what it did.
func TestFailuresLeaveNothing(t *testing.T) {
	t.Run("bridge name taken by another kind of link", func(t *testing.T) {
		e := newEnv(t)
		// A veth (its peer in a scratch namespace): the one kind of
		// link every kernel that can run this plugin has.
		scratch := testenv.NetNS(t)
		err := e.inHost(t, func() error {
			return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: e.bridge}, PeerName: "peer0", PeerNamespace: netlink.NsFd(int(scratch.Fd()))})
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.add(t, e.conf(t, "1.0.0", false, nil), testenv.NetNS(t), "c", "eth0")
		if code(err) != plugin.ErrLinkConflict || !strings.Contains(err.Error(), "not a bridge") {
			t.Errorf("ADD = %v, want code %d saying it is not a bridge", err, plugin.ErrLinkConflict)
		}
		if v := netenv.Veths(t, e.host); !slices.Equal(v, []string{e.bridge}) {
			t.Errorf("host veths %v, want only the conflicting %s", v, e.bridge)
		}
		if a := e.allocations(t); len(a) != 0 {
			t.Errorf("addresses left allocated: %v", a)
		}
	})
	t.Run("missing netns", func(t *testing.T) {
		e := newEnv(t)
		var out strings.Builder
		args := e.args(e.conf(t, "1.0.0", false, nil), "/run/netns/berth-no-such-netns", "c", "eth0")
		err := e.inHost(t, func() error { return add(context.Background(), args, &out) })
		if code(err) != types.ErrInvalidNetNS {
			t.Errorf("ADD = %v, want code %d", err, types.ErrInvalidNetNS)
		}
		e.inHost(t, func() error {
			if _, err := netlink.LinkByName(e.bridge); !isNotFound(err) {
				t.Errorf("ADD into a missing netns created the bridge (%v)", err)
			}
			return nil
		})
		e.assertClean(t)
	})
	t.Run("IPAM plugin missing", func(t *testing.T) {
		e := newEnv(t)
		cont := testenv.NetNS(t)
		_, err := e.add(t, e.conf(t, "1.0.0", false, map[string]any{"ipam": map[string]any{"type": "no-such-ipam"}}), cont, "c", "eth0")
		if err == nil || !strings.Contains(err.Error(), "no-such-ipam") {
			t.Errorf("ADD = %v, want an error naming the IPAM plugin", err)
		}
		e.assertClean(t)
		e.inHost(t, func() error {
			if _, err := netlink.LinkByName(e.bridge); !isNotFound(err) {
				t.Errorf("the bridge this ADD created is still there (%v)", err)
			}
			return nil
		})
		assertNoLink(t, cont, "eth0")
	})
	t.Run("range exhausted", func(t *testing.T) {
		e := newEnv(t)
		one := gatewayOf(e.subnet)
		one[3] = 10
		conf := e.conf(t, "1.0.0", false, map[string]any{"isGateway": true, "ipam": map[string]any{
			"type": "host-local", "dataDir": e.dataDir,
			"ranges": []any{[]any{map[string]any{"subnet": e.subnet.String(), "rangeStart": one.String(), "rangeEnd": one.String()}}},
		}})
		c1, c2 := testenv.NetNS(t), testenv.NetNS(t)
		e.mustAdd(t, conf, c1, "c1", "eth0")
		_, err := e.add(t, conf, c2, "c2", "eth0")
		if code(err) != plugin.ErrRangeExhausted {
			t.Errorf("second ADD = %v, want code %d", err, plugin.ErrRangeExhausted)
		}
		assertNoLink(t, c2, "eth0")
		if v := e.veths(t); len(v) != 1 {
			t.Errorf("host veths %v, want only c1's", v)
		}
		e.mustDel(t, conf, c1.Path(), "c1", "eth0")
		e.assertClean(t)
	})
	t.Run("gateway conflict", func(t *testing.T) {
		e := newEnv(t)
		other := &net.IPNet{IP: gatewayOf(e.subnet), Mask: e.subnet.Mask}
		other.IP[3] = 200
		err := e.inHost(t, func() error {
			br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: e.bridge}}
			if err := netlink.LinkAdd(br); err != nil {
				return err
			}
			return netlink.AddrAdd(br, &netlink.Addr{IPNet: other})
		})
		if err != nil {
			t.Fatal(err)
		}
		cont := testenv.NetNS(t)
		conf := e.conf(t, "1.0.0", false, map[string]any{"isGateway": true})
		_, err = e.add(t, conf, cont, "c", "eth0")
		if code(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "forceAddress") {
			t.Errorf("ADD = %v, want code 7 suggesting forceAddress", err)
		}
		e.assertClean(t)
		assertNoLink(t, cont, "eth0")

		conf = e.conf(t, "1.0.0", false, map[string]any{"isGateway": true, "forceAddress": true})
		e.mustAdd(t, conf, cont, "c", "eth0")
		gw := (&net.IPNet{IP: gatewayOf(e.subnet), Mask: e.subnet.Mask}).String()
		if a := addrsIn(t, e.host, e.bridge); !slices.Equal(a, []string{gw}) {
			t.Errorf("with forceAddress the bridge has %v, want only %s", a, gw)
		}
		e.mustDel(t, conf, cont.Path(), "c", "eth0")
		e.assertClean(t)
	})
	t.Run("container interface exists", func(t *testing.T) {
		e := newEnv(t)
		cont := testenv.NetNS(t)
		err := cont.Do(func(ns.NetNS) error {
			return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"})
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.add(t, e.conf(t, "1.0.0", false, nil), cont, "c", "eth0")
		if err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("ADD = %v, want an error saying eth0 exists", err)
		}
		e.assertClean(t)
		if _, err := netlink.VethPeerIndex(linkIn(t, cont, "eth0").(*netlink.Veth)); err != nil || linkIn(t, cont, "peer0") == nil {
			t.Errorf("the container's own eth0 was replaced (%v)", err)
		}
	})
}

func assertNoLink(t *testing.T, n ns.NetNS, name string) {
	t.Helper()
	n.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName(name); !isNotFound(err) {
			t.Errorf("%s exists in %s after a failed ADD (%v)", name, n.Path(), err)
		}
		return nil
	})
}

// TestDelIsLenient: DEL of an attachment that never was succeeds.
func TestDelIsLenient(t *testing.T) {
	e := newEnv(t)
	cont := testenv.NetNS(t)
	conf := e.conf(t, "1.1.0", false, map[string]any{"ipMasq": true})
	if err := e.del(t, conf, cont.Path(), "never", "eth0"); err != nil {
		t.Errorf("DEL of an unknown attachment: %v", err)
	}
	if err := e.del(t, conf, "/run/netns/berth-no-such-netns", "never", "eth0"); err != nil {
		t.Errorf("DEL with a missing netns: %v", err)
	}
	// What ADD refuses, DEL accepts: it cannot have set anything up.
	unsupported := e.conf(t, "1.1.0", false, map[string]any{"vlan": 7, "hairpinMode": true, "promiscMode": true})
	if err := e.del(t, unsupported, cont.Path(), "never", "eth0"); err != nil {
		t.Errorf("DEL with a configuration ADD refuses: %v", err)
	}
	if err := e.del(t, []byte("{"), cont.Path(), "never", "eth0"); code(err) != types.ErrDecodingFailure {
		t.Errorf("DEL with malformed JSON = %v, want code 6", err)
	}
	e.assertClean(t)
}
