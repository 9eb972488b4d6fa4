package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/cni/plugin"
	"github.com/berth-project/berth/integration/testenv"
)

// versions are the spec versions every test runs across.
var versions = plugin.Versions.SupportedVersions()

// env is one test's world: a throwaway network namespace that plays the
// host (the plugin runs in it, so the bridge, sysctls and iptables rules
// never touch the real host), a bridge name, a subnet and an IPAM data
// directory of its own, and our host-local as the IPAM plugin.
type env struct {
	host    ns.NetNS
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
	testenv.Require(t, testenv.Program("ip"), testenv.Program("iptables"), testenv.Program("busybox"))
	hostLocal := testenv.Binary(t, "host-local")
	x := rand.IntN(250) + 2
	e := &env{
		host:    testenv.NetNS(t),
		bridge:  fmt.Sprintf("bt%08x", rand.Uint32()),
		network: fmt.Sprintf("bt-net-%08x", rand.Uint32()),
		subnet:  &net.IPNet{IP: net.IPv4(10, 99, byte(x), 0).To4(), Mask: net.CIDRMask(24, 32)},
		subnet6: &net.IPNet{IP: net.ParseIP(fmt.Sprintf("fd99:%x::", x)), Mask: net.CIDRMask(64, 128)},
		dataDir: t.TempDir(),
		cniPath: filepath.Dir(hostLocal),
	}
	t.Cleanup(func() {
		// The namespace takes everything in it along, but delete the bridge
		// explicitly so that a leak would show while the test still runs.
		e.host.Do(func(ns.NetNS) error {
			if l, err := netlink.LinkByName(e.bridge); err == nil {
				netlink.LinkDel(l)
			}
			return nil
		})
	})
	return e
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
	return e.host.Do(func(ns.NetNS) error { return f() })
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
	des, err := os.ReadDir(filepath.Join(e.dataDir, e.network))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, de := range des {
		if net.ParseIP(de.Name()) != nil {
			ips = append(ips, de.Name())
		}
	}
	return ips
}

// veths lists the veth links in the host namespace.
func (e *env) veths(t *testing.T) []string {
	t.Helper()
	var names []string
	err := e.inHost(t, func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			if l.Type() == "veth" {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// nat is `iptables -t nat -S` (or ip6tables) in the host namespace,
// without the policy lines.
func (e *env) nat(t *testing.T, cmd string) []string {
	t.Helper()
	out := run(t, "ip", "netns", "exec", filepath.Base(e.host.Path()), cmd, "-t", "nat", "-S")
	var rules []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "-P ") {
			rules = append(rules, l)
		}
	}
	return rules
}

// assertClean checks that nothing of an attachment is left in the host:
// no veth, no allocation, no nat rule.
func (e *env) assertClean(t *testing.T) {
	t.Helper()
	if v := e.veths(t); len(v) != 0 {
		t.Errorf("veths left in the host: %v", v)
	}
	if a := e.allocations(t); len(a) != 0 {
		t.Errorf("addresses left allocated: %v", a)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if r := e.nat(t, cmd); len(r) != 0 {
			t.Errorf("%s nat rules left: %v", cmd, r)
		}
	}
}

// ping pings addr from inside a namespace.
func ping(t *testing.T, from ns.NetNS, addr net.IP) error {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", filepath.Base(from.Path()), "busybox", "ping", "-c1", "-W2", addr.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", addr, filepath.Base(from.Path()), err, out)
	}
	return nil
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
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

// code is the spec error code of err (0 when err is not a spec error).
func code(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// gatewayOf is the first address of a subnet.
func gatewayOf(n *net.IPNet) net.IP {
	gw := append(net.IP(nil), n.IP...)
	gw[len(gw)-1]++
	return gw
}
