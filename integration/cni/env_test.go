package cni

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/integration/testenv/netenv"
)

// referenceDir holds the reference plugins.
func referenceDir() string {
	if d := os.Getenv("CNI_REFERENCE_DIR"); d != "" {
		return d
	}
	return "/usr/lib/cni"
}

// ours is the path of one of berth's plugin binaries.
func ours(t *testing.T, name string) string { return testenv.Binary(t, name) }

// reference is the path of a reference plugin; the test skips without it.
func reference(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(referenceDir(), name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference plugin %s not found (install containernetworking-plugins or set CNI_REFERENCE_DIR)", p)
	}
	return p
}

// world is one test's setting: a throwaway namespace playing the host,
// where the runtime (libcni) runs the plugins; a plugin directory holding
// the mix of plugins the test chose, by type; and a bridge, network name,
// subnet and IPAM data directory of its own.
type world struct {
	host    *netenv.Host
	cni     *libcni.CNIConfig
	bridge  string
	network string
	subnet  *net.IPNet
	dataDir string
}

// newWorld makes a world whose plugins are binaries by type.
func newWorld(t *testing.T, plugins map[string]string) *world {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("ip"), testenv.Program("iptables"), testenv.Program("nft"), testenv.Program("busybox"))
	dir := t.TempDir()
	for typ, bin := range plugins {
		if err := os.Symlink(bin, filepath.Join(dir, typ)); err != nil {
			t.Fatal(err)
		}
	}
	return &world{
		host: netenv.NewHost(t, nil),
		// An explicit exec: libcni fills in a missing one lazily, which
		// races when a runtime (or TestConcurrentAttachments) calls it
		// from several goroutines at once.
		cni: libcni.NewCNIConfigWithCacheDir([]string{dir}, t.TempDir(),
			&invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}),
		bridge:  netenv.RandomName("bi"),
		network: netenv.RandomName("bi-net-"),
		subnet:  &net.IPNet{IP: net.IPv4(10, 99, byte(rand.IntN(250)+2), 0).To4(), Mask: net.CIDRMask(24, 32)},
		dataDir: t.TempDir(),
	}
}

// list is a configuration list: the bridge over host-local with e's
// subnet and the bridge fields in extra, then the plugins in more.
func (w *world) list(t *testing.T, version string, extra map[string]any, more ...map[string]any) *libcni.NetworkConfigList {
	t.Helper()
	br := map[string]any{
		"type":   "bridge",
		"bridge": w.bridge,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": w.dataDir,
			"ranges":  []any{[]any{map[string]any{"subnet": w.subnet.String()}}},
		},
	}
	for k, v := range extra {
		br[k] = v
	}
	plugins := append([]any{br}, anySlice(more)...)
	b, err := json.Marshal(map[string]any{"cniVersion": version, "name": w.network, "plugins": plugins})
	if err != nil {
		t.Fatal(err)
	}
	l, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		t.Fatalf("configuration list: %v\n%s", err, b)
	}
	return l
}

func anySlice(ms []map[string]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// in runs f in the host namespace, where the runtime runs the plugins.
func (w *world) in(f func() error) error { return w.host.In(f) }

func rt(id string, n ns.NetNS) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: n.Path(), IfName: "eth0"}
}

func (w *world) add(t *testing.T, l *libcni.NetworkConfigList, id string, n ns.NetNS) *types100.Result {
	t.Helper()
	var r types.Result
	err := w.in(func() (err error) {
		r, err = w.cni.AddNetworkList(context.Background(), l, rt(id, n))
		return err
	})
	if err != nil {
		t.Fatalf("ADD %s: %v", id, err)
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (w *world) check(l *libcni.NetworkConfigList, id string, n ns.NetNS) error {
	return w.in(func() error { return w.cni.CheckNetworkList(context.Background(), l, rt(id, n)) })
}

func (w *world) del(t *testing.T, l *libcni.NetworkConfigList, id string, n ns.NetNS) {
	t.Helper()
	if err := w.in(func() error { return w.cni.DelNetworkList(context.Background(), l, rt(id, n)) }); err != nil {
		t.Errorf("DEL %s: %v", id, err)
	}
}

// assertClean checks that no veth, allocation or NAT rule is left. The
// reference portmap keeps its shared CNI-HOSTPORT-* chains by design; the
// chains of an attachment (CNI-DN-*) must go.
func (w *world) assertClean(t *testing.T) {
	t.Helper()
	for _, v := range netenv.Veths(t, w.host) {
		if strings.HasPrefix(v, "veth") {
			t.Errorf("veth %s left in the host", v)
		}
	}
	for _, a := range netenv.Allocations(t, filepath.Join(w.dataDir, w.network)) {
		t.Errorf("address %s left allocated", a)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, r := range netenv.NATRules(t, w.host, cmd) {
			if !strings.Contains(r, "CNI-HOSTPORT-") || strings.Contains(r, "CNI-DN-") {
				t.Errorf("%s nat rule left: %s", cmd, r)
			}
		}
	}
	for _, r := range netenv.NFTRules(t, w.host, "berth-") {
		t.Errorf("nftables rule left: %s", r)
	}
}

// assertAttached checks an ADD result and the container it describes.
func (w *world) assertAttached(t *testing.T, r *types100.Result, n ns.NetNS) {
	t.Helper()
	if len(r.Interfaces) < 3 || r.Interfaces[0].Name != w.bridge || !strings.HasPrefix(r.Interfaces[1].Name, "veth") ||
		r.Interfaces[2].Name != "eth0" || r.Interfaces[2].Sandbox != n.Path() {
		t.Fatalf("result interfaces %v, want the bridge, a host veth and eth0 in %s", r.Interfaces, n.Path())
	}
	if len(r.IPs) != 1 || r.IPs[0].Interface == nil || *r.IPs[0].Interface != 2 || !w.subnet.Contains(r.IPs[0].Address.IP) {
		t.Fatalf("result ips %v, want one address of %s on interface 2", r.IPs, w.subnet)
	}
	var has bool
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, a := range addrs {
			has = has || a.IP.Equal(r.IPs[0].Address.IP)
		}
		return err
	})
	if err != nil || !has {
		t.Errorf("eth0 in %s lacks %s (%v)", n.Path(), r.IPs[0].Address.IP, err)
	}
}

func ping(t *testing.T, from ns.NetNS, addr net.IP) {
	t.Helper()
	if err := netenv.Ping(from, addr); err != nil {
		t.Error(err)
	}
}
