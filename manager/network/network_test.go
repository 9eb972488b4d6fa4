package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/integration/testenv/netenv"
)

// world is one test's setting: a throwaway namespace playing the host (the
// plugins run there, so the machine's links, sysctls and nftables are never
// touched, and whatever the plugins leave — the bridge, empty nftables
// tables — goes with it), and a Manager with a bridge, subnet and state
// directory of its own.
type world struct {
	host   *netenv.Host
	m      *Manager
	cfg    Config
	subnet *net.IPNet
}

func newWorld(t *testing.T) *world {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("ip"), testenv.Program("nft"))
	w := &world{host: netenv.NewHost(t, nil)}
	w.subnet = &net.IPNet{IP: net.IPv4(10, 210, byte(rand.IntN(250)+2), 0).To4(), Mask: net.CIDRMask(24, 32)}
	w.cfg = Config{
		PluginDirs: []string{filepath.Dir(testenv.Binary(t, "bridge"))},
		StateDir:   t.TempDir(),
		Bridge:     netenv.RandomName("bt"),
		Subnet:     w.subnet.String(),
	}
	// Runs before the state directory is removed: no bind mount may be
	// left under it, whatever the test did.
	t.Cleanup(func() {
		des, _ := os.ReadDir(filepath.Join(w.cfg.StateDir, "netns"))
		for _, de := range des {
			if err := removeNetNS(filepath.Join(w.cfg.StateDir, "netns", de.Name())); err != nil {
				t.Error(err)
			}
		}
	})
	m, err := New(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.m = m
	return w
}

// setup runs Setup in the host namespace and tears the container down when
// the test ends.
func (w *world) setup(t *testing.T, id string, ports []PortMapping) *Attachment {
	t.Helper()
	var a *Attachment
	err := w.host.In(func() (err error) {
		a, err = w.m.Setup(context.Background(), id, ports)
		return err
	})
	if err != nil {
		t.Fatalf("Setup(%s): %v", id, err)
	}
	t.Cleanup(func() {
		if err := w.teardown(id, ports); err != nil {
			t.Errorf("Teardown(%s): %v", id, err)
		}
	})
	return a
}

func (w *world) teardown(id string, ports []PortMapping) error {
	return w.host.In(func() error { return w.m.Teardown(context.Background(), id, ports) })
}

func (w *world) ipamDir() string { return filepath.Join(w.cfg.StateDir, "ipam", "berth-"+w.cfg.Bridge) }

func netnsOf(t *testing.T, a *Attachment) ns.NetNS {
	t.Helper()
	n, err := ns.GetNS(a.NetNSPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// serve listens on port inside n and answers each connection with reply.
func serve(t *testing.T, n ns.NetNS, port int, reply string) {
	t.Helper()
	var l net.Listener
	err := n.Do(func(ns.NetNS) (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, reply)
			c.Close()
		}
	}()
}

// dial connects to addr from inside n and returns what it reads.
func dial(n ns.NetNS, addr string) (string, error) {
	var got []byte
	err := n.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		got, err = io.ReadAll(c)
		return err
	})
	return string(got), err
}

func TestSetup(t *testing.T) {
	w := newWorld(t)
	a := w.setup(t, "c1", nil)
	gw := slices.Clone(w.subnet.IP)
	gw[3] = 1
	if !w.subnet.Contains(a.IP) || a.PrefixLen != 24 || !a.Gateway.Equal(gw) || a.MAC == "" ||
		a.NetNSPath != w.m.NetNSPath("c1") || a.Bridge != w.cfg.Bridge || len(a.Ports) != 0 {
		t.Fatalf("attachment %+v: want an address in %s/24, gateway %s, a MAC, netns %s, bridge %s", a, w.subnet, gw, w.m.NetNSPath("c1"), w.cfg.Bridge)
	}
	err := netnsOf(t, a).Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if lo.Attrs().Flags&net.FlagUp == 0 {
			return errors.New("lo is down")
		}
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if eth.Attrs().Flags&net.FlagUp == 0 || eth.Attrs().HardwareAddr.String() != a.MAC {
			return fmt.Errorf("eth0 %+v: want up, MAC %s", eth.Attrs(), a.MAC)
		}
		addrs, err := netlink.AddrList(eth, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		if len(addrs) != 1 || !addrs[0].IP.Equal(a.IP) {
			return fmt.Errorf("eth0's addresses are %v, want %s", addrs, a.IP)
		}
		routes, err := netlink.RouteList(eth, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				if !r.Gw.Equal(gw) {
					return fmt.Errorf("default route via %s, want %s", r.Gw, gw)
				}
				return nil
			}
		}
		return fmt.Errorf("no default route in %v", routes)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = w.host.In(func() error {
		br, err := netlink.LinkByName(w.cfg.Bridge)
		if err != nil {
			return err
		}
		if _, ok := br.(*netlink.Bridge); !ok {
			return fmt.Errorf("%s is a %s", w.cfg.Bridge, br.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The netns is taken: a second Setup fails and leaves the first alone.
	err = w.host.In(func() error { _, err := w.m.Setup(context.Background(), "c1", nil); return err })
	if !errdefs.IsAlreadyExists(err) {
		t.Fatalf("a second Setup(c1) = %v, want already exists", err)
	}
	if !isNetNS(a.NetNSPath) {
		t.Fatal("a second Setup removed the first one's namespace")
	}
	if got := netenv.Allocations(t, w.ipamDir()); len(got) != 1 {
		t.Fatalf("allocations %v, want c1's only", got)
	}
	if err := w.host.In(func() error { _, err := w.m.Setup(context.Background(), "../x", nil); return err }); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Setup(../x) = %v, want invalid argument", err)
	}
}

func TestContainersReachEachOther(t *testing.T) {
	w := newWorld(t)
	a1, a2 := w.setup(t, "c1", nil), w.setup(t, "c2", nil)
	if a1.IP.Equal(a2.IP) {
		t.Fatalf("both containers have %s", a1.IP)
	}
	serve(t, netnsOf(t, a1), 8080, "hello from c1")
	got, err := dial(netnsOf(t, a2), net.JoinHostPort(a1.IP.String(), "8080"))
	if err != nil || got != "hello from c1" {
		t.Fatalf("c2 dialing c1: %q, %v", got, err)
	}
}

func TestPublishedPort(t *testing.T) {
	w := newWorld(t)
	ports, err := ParsePublish([]string{"127.0.0.1::8080"})
	if err != nil {
		t.Fatal(err)
	}
	a := w.setup(t, "web", ports)
	if len(a.Ports) != 1 || a.Ports[0] != ports[0] {
		t.Fatalf("attachment ports %v, want %v", a.Ports, ports)
	}
	serve(t, netnsOf(t, a), 8080, "published")
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[0].HostPort))
	got, err := dial(w.host, addr)
	if err != nil || got != "published" {
		t.Fatalf("dial %s from the host: %q, %v", addr, got, err)
	}
	if r := netenv.NFTRules(t, w.host, "berth-portmap "); len(r) == 0 {
		t.Fatal("no portmap rules")
	}
}

func TestSetupPicksFreeHostPort(t *testing.T) {
	w := newWorld(t)
	a := w.setup(t, "c1", []PortMapping{{HostIP: "127.0.0.1", ContainerPort: 80}})
	if len(a.Ports) != 1 || a.Ports[0].HostPort == 0 || a.Ports[0].Protocol != "tcp" {
		t.Fatalf("ports %+v: want a host port picked, tcp", a.Ports)
	}
}

// leftovers names what an attachment may leave in the host namespace and
// the state directory.
func (w *world) leftovers(t *testing.T, except ...string) []string {
	t.Helper()
	var left []string
	for _, v := range netenv.Veths(t, w.host) {
		if !slices.Contains(except, v) {
			left = append(left, "veth "+v)
		}
	}
	for _, ip := range netenv.Allocations(t, w.ipamDir()) {
		left = append(left, "allocation "+ip)
	}
	for _, p := range []string{"berth-portmap ", "berth-bridge "} {
		for _, r := range netenv.NFTRules(t, w.host, p) {
			left = append(left, "rule "+r)
		}
	}
	for _, d := range []string{"netns", "cache/results"} {
		des, _ := os.ReadDir(filepath.Join(w.cfg.StateDir, d))
		for _, de := range des {
			left = append(left, d+"/"+de.Name())
		}
	}
	return left
}

func TestTeardown(t *testing.T) {
	w := newWorld(t)
	ports := []PortMapping{{HostIP: "127.0.0.1", HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 18053, ContainerPort: 53, Protocol: "udp"}}
	w.setup(t, "c1", ports)
	if left := w.leftovers(t); len(left) == 0 {
		t.Fatal("Setup left no trace to check Teardown against")
	}
	for i := range 2 { // the second call finds nothing to do
		if err := w.teardown("c1", ports); err != nil {
			t.Fatalf("Teardown #%d: %v", i+1, err)
		}
		if left := w.leftovers(t); len(left) != 0 {
			t.Fatalf("after Teardown #%d: %v", i+1, left)
		}
	}
	// A container never set up, or one whose Setup crashed between making
	// the netns file and mounting it.
	if err := w.teardown("never", nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.m.NetNSPath("crashed"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := w.teardown("crashed", nil); err != nil {
		t.Fatal(err)
	}
	if left := w.leftovers(t); len(left) != 0 {
		t.Fatalf("after Teardown of a crashed Setup: %v", left)
	}
}

func TestTeardownWithoutCache(t *testing.T) {
	// libcni's cache lost (e.g. a state directory wiped by hand): Teardown
	// uses the current configuration and the ports it is given.
	w := newWorld(t)
	ports := []PortMapping{{HostIP: "127.0.0.1", HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}}
	w.setup(t, "c1", ports)
	if err := os.RemoveAll(filepath.Join(w.cfg.StateDir, "cache")); err != nil {
		t.Fatal(err)
	}
	if err := w.teardown("c1", ports); err != nil {
		t.Fatal(err)
	}
	if left := w.leftovers(t); len(left) != 0 {
		t.Fatalf("after Teardown: %v", left)
	}
}

func TestSetupFailureLeavesNothing(t *testing.T) {
	w := newWorld(t)
	// The bridge's name is taken by a link that is not a bridge (a veth:
	// the dummy module may be missing).
	peer := netenv.RandomName("bp")
	err := w.host.In(func() error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: w.cfg.Bridge}, PeerName: peer})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = w.host.In(func() error {
		_, err := w.m.Setup(context.Background(), "c1", []PortMapping{{HostPort: 18080, ContainerPort: 80}})
		return err
	})
	if err == nil {
		t.Fatal("Setup on a bridge name taken by a veth succeeded")
	}
	t.Logf("Setup: %v", err)
	if left := w.leftovers(t, w.cfg.Bridge, peer); len(left) != 0 {
		t.Fatalf("a failed Setup left %v", left)
	}
	// A cancelled context: Setup fails, and still undoes its work.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = w.host.In(func() error { _, err := w.m.Setup(ctx, "c2", nil); return err })
	if err == nil {
		t.Fatal("Setup with a cancelled context succeeded")
	}
	if left := w.leftovers(t, w.cfg.Bridge, peer); len(left) != 0 {
		t.Fatalf("a cancelled Setup left %v", left)
	}
}

func TestGC(t *testing.T) {
	w := newWorld(t)
	ports := []PortMapping{{HostIP: "127.0.0.1", HostPort: 18081, ContainerPort: 80, Protocol: "tcp"}}
	a1 := w.setup(t, "live", nil)
	w.setup(t, "dead", ports)
	// A namespace without any CNI state (a crash right after making it).
	if err := createNetNS(w.m.NetNSPath("orphan")); err != nil {
		t.Fatal(err)
	}
	if err := w.host.In(func() error { return w.m.GC(context.Background(), []string{"live"}) }); err != nil {
		t.Fatal(err)
	}
	if got := netenv.Allocations(t, w.ipamDir()); len(got) != 1 || got[0] != a1.IP.String() {
		t.Fatalf("allocations after GC: %v, want %s only", got, a1.IP)
	}
	if v := netenv.Veths(t, w.host); len(v) != 1 {
		t.Fatalf("veths after GC: %v, want the live container's", v)
	}
	if r := netenv.NFTRules(t, w.host, "berth-portmap "); len(r) != 0 {
		t.Fatalf("portmap rules after GC: %v", r)
	}
	des, err := os.ReadDir(filepath.Join(w.cfg.StateDir, "netns"))
	if err != nil || len(des) != 1 || des[0].Name() != "live" || !isNetNS(a1.NetNSPath) {
		t.Fatalf("netns after GC: %v, %v; want live's only", des, err)
	}
}
