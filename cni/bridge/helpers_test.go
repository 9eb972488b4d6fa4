package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/cni/plugin"
	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/integration/testenv/netenv"
)

var code = netenv.ErrCode

// versions are the spec versions every test runs across.
var versions = plugin.Versions.SupportedVersions()

// env is one test's world: a throwaway network namespace that plays the
// host (the plugin runs in it, so the bridge, sysctls and netfilter rules
// never touch the real host), a bridge name, a subnet and an IPAM data
// directory of its own, and our host-local as the IPAM plugin.
type env struct {
	host    *netenv.Host
	bridge  string
	network string
	subnet  *net.IPNet // 10.99.x.0/24
	subnet6 *net.IPNet // fd99:x::/64
	dataDir string
	cniPath string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("ip"), testenv.Program("iptables"), testenv.Program("nft"), testenv.Program("busybox"))
	hostLocal := testenv.Binary(t, "host-local")
	x := rand.IntN(250) + 2
	return &env{
		host:    netenv.NewHost(t, nil),
		bridge:  netenv.RandomName("bt"),
		network: netenv.RandomName("bt-net-"),
		subnet:  &net.IPNet{IP: net.IPv4(10, 99, byte(x), 0).To4(), Mask: net.CIDRMask(24, 32)},
		subnet6: &net.IPNet{IP: net.ParseIP(fmt.Sprintf("fd99:%x::", x)), Mask: net.CIDRMask(64, 128)},
		dataDir: t.TempDir(),
		cniPath: filepath.Dir(hostLocal),
	}
}

// conf is a configuration of the bridge with host-local over e's subnet
// (and e's IPv6 subnet when dual), with extra fields merged in.
func (e *env) conf(t *testing.T, version string, dual bool, extra map[string]any) []byte {
	t.Helper()
	ranges := []any{[]any{map[string]any{"subnet": e.subnet.String()}}}
	if dual {
		ranges = append(ranges, []any{map[string]any{"subnet": e.subnet6.String()}})
	}
	c := map[string]any{
		"cniVersion": version,
		"name":       e.network,
		"type":       "bridge",
		"bridge":     e.bridge,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": e.dataDir,
			"ranges":  ranges,
		},
	}
	maps.Copy(c, extra)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withPrev adds prevResult to a configuration.
func withPrev(t *testing.T, conf, prev []byte) []byte {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(conf, &c); err != nil {
		t.Fatal(err)
	}
	c["prevResult"] = json.RawMessage(prev)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) args(conf []byte, netns, id, ifname string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: id, Netns: netns, IfName: ifname, Path: e.cniPath, StdinData: conf}
}

// inHost runs f in the host namespace.
func (e *env) inHost(t *testing.T, f func() error) error {
	t.Helper()
	return e.host.In(f)
}

// add runs ADD in the host namespace and returns the printed result.
func (e *env) add(t *testing.T, conf []byte, cont ns.NetNS, id, ifname string) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	err := e.inHost(t, func() error { return add(context.Background(), e.args(conf, cont.Path(), id, ifname), &out) })
	return out.Bytes(), err
}

// mustAdd is add that fails the test on error, and returns the result in
// the current version too.
func (e *env) mustAdd(t *testing.T, conf []byte, cont ns.NetNS, id, ifname string) ([]byte, *types100.Result) {
	t.Helper()
	raw, err := e.add(t, conf, cont, id, ifname)
	if err != nil {
		t.Fatalf("ADD %s/%s: %v", id, ifname, err)
	}
	r, err := create.CreateFromBytes(raw)
	if err != nil {
		t.Fatalf("ADD printed an unreadable result: %v\n%s", err, raw)
	}
	cur, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatalf("convert the result: %v", err)
	}
	return raw, cur
}

func (e *env) del(t *testing.T, conf []byte, netns, id, ifname string) error {
	t.Helper()
	return e.inHost(t, func() error { return del(context.Background(), e.args(conf, netns, id, ifname)) })
}

func (e *env) mustDel(t *testing.T, conf []byte, netns, id, ifname string) {
	t.Helper()
	if err := e.del(t, conf, netns, id, ifname); err != nil {
		t.Fatalf("DEL %s/%s: %v", id, ifname, err)
	}
}

func (e *env) check(t *testing.T, conf []byte, cont ns.NetNS, id, ifname string) error {
	t.Helper()
	return e.inHost(t, func() error { return check(context.Background(), e.args(conf, cont.Path(), id, ifname)) })
}

// allocations lists the addresses host-local holds for the network.
func (e *env) allocations(t *testing.T) []string {
	t.Helper()
	return netenv.Allocations(t, filepath.Join(e.dataDir, e.network))
}

// veths lists the host ends of veth pairs the plugin made (named "veth"
// and 8 hex digits) in the host namespace.
func (e *env) veths(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, v := range netenv.Veths(t, e.host) {
		if strings.HasPrefix(v, "veth") {
			out = append(out, v)
		}
	}
	return out
}

// masqRules lists the masquerade rules in the host namespace: the
// nftables rules of our table and the iptables nat rules (both families).
func (e *env) masqRules(t *testing.T) []string {
	t.Helper()
	rules := netenv.NFTRules(t, e.host, "berth-bridge ")
	for _, cmd := range []string{"iptables", "ip6tables"} {
		rules = append(rules, netenv.NATRules(t, e.host, cmd)...)
	}
	return rules
}

// assertClean checks that nothing of an attachment is left in the host:
// no veth, no allocation, no masquerade rule.
func (e *env) assertClean(t *testing.T) {
	t.Helper()
	if v := e.veths(t); len(v) != 0 {
		t.Errorf("veths left in the host: %v", v)
	}
	if a := e.allocations(t); len(a) != 0 {
		t.Errorf("addresses left allocated: %v", a)
	}
	if r := e.masqRules(t); len(r) != 0 {
		t.Errorf("masquerade rules left: %v", r)
	}
}

// linkIn looks a link up in a namespace.
func linkIn(t *testing.T, n ns.NetNS, name string) netlink.Link {
	t.Helper()
	var l netlink.Link
	err := n.Do(func(ns.NetNS) error {
		var err error
		l, err = netlink.LinkByName(name)
		return err
	})
	if err != nil {
		t.Fatalf("link %s in %s: %v", name, n.Path(), err)
	}
	return l
}

// addrsIn lists the global addresses of a link in a namespace.
func addrsIn(t *testing.T, n ns.NetNS, name string) []string {
	t.Helper()
	var out []string
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if !a.IP.IsLinkLocalUnicast() {
				out = append(out, a.IPNet.String())
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("addresses of %s in %s: %v", name, n.Path(), err)
	}
	return out
}

// gatewayOf is the first address of a subnet.
func gatewayOf(n *net.IPNet) net.IP {
	gw := append(net.IP(nil), n.IP...)
	gw[len(gw)-1]++
	return gw
}
