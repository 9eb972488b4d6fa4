package cni

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/berth-project/berth/cni/plugin"
	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/integration/testenv/netenv"
)

// TestRequestedAddress asks for a container's address with the ips
// capability, through libcni and the bridge, across every version (and
// with the reference bridge over our host-local): the container gets it;
// another container asking for it, or one asking for an address outside
// the range, fails with a clear error and leaves nothing behind.
func TestRequestedAddress(t *testing.T) {
	type run struct{ name, bridge, version string }
	var runs []run
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		runs = append(runs, run{v, "berth", v})
	}
	runs = append(runs, run{"reference bridge", "reference", "1.0.0"})
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			bridge := ours(t, "bridge")
			if r.bridge == "reference" {
				bridge = reference(t, "bridge")
			}
			w := newWorld(t, map[string]string{"bridge": bridge, "host-local": ours(t, "host-local")})
			l := w.list(t, r.version, map[string]any{"isGateway": true, "capabilities": map[string]bool{"ips": true}})
			want := append(net.IP(nil), w.subnet.IP...)
			want[3] = 77
			ask := func(id string, n ns.NetNS, ip string) *libcni.RuntimeConf {
				return &libcni.RuntimeConf{ContainerID: id, NetNS: n.Path(), IfName: "eth0",
					CapabilityArgs: map[string]any{"ips": []string{ip + "/24"}}}
			}
			ctx := context.Background()

			first := testenv.NetNS(t)
			rt := ask("first", first, want.String())
			var res *types100.Result
			err := w.in(func() error {
				r, err := w.cni.AddNetworkList(ctx, l, rt)
				if err == nil {
					res, err = types100.NewResultFromResult(r)
				}
				return err
			})
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() { w.in(func() error { return w.cni.DelNetworkList(ctx, l, rt) }) })
			w.assertAttached(t, res, first)
			if got := res.IPs[0].Address.IP; !got.Equal(want) {
				t.Errorf("the container got %s, want the requested %s", got, want)
			}
			ping(t, first, res.IPs[0].Gateway)
			if r.version != "0.3.0" && r.version != "0.3.1" {
				if err := w.in(func() error { return w.cni.CheckNetworkList(ctx, l, rt) }); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}

			for _, bad := range []struct {
				what, ip string
				code     uint
				msg      string
			}{
				{"an address another container holds", want.String(), plugin.ErrAddressTaken, "allocated to another attachment"},
				{"an address outside the range", "10.94.0.5", types.ErrInvalidNetworkConfig, "outside every range"},
			} {
				n := testenv.NetNS(t)
				err := w.in(func() error { _, err := w.cni.AddNetworkList(ctx, l, ask("second", n, bad.ip)); return err })
				if netenv.ErrCode(err) != bad.code || !strings.Contains(err.Error(), bad.msg) {
					t.Errorf("ADD asking for %s = %v, want code %d saying %q", bad.what, err, bad.code, bad.msg)
				}
				if r.bridge == "reference" {
					// v1.1.1 leaves the veth pair of a failed ADD to the
					// DEL that a runtime sends after it.
					w.in(func() error { return w.cni.DelNetworkList(ctx, l, ask("second", n, bad.ip)) })
				}
				if v := netenv.Veths(t, w.host); len(v) != 1 {
					t.Errorf("after a failed ADD asking for %s, host veths %v, want the first container's only", bad.what, v)
				}
				if a := netenv.Allocations(t, filepath.Join(w.dataDir, w.network)); !slices.Equal(a, []string{want.String()}) {
					t.Errorf("after a failed ADD asking for %s, allocations %v, want only %s", bad.what, a, want)
				}
			}
			w.del(t, l, "first", first)
			w.assertClean(t)
		})
	}
}

// TestIPsCapabilityHostLocal runs our host-local alone through libcni,
// across every version: the runtime's ips reach it when its configuration
// declares the capability, and not otherwise. (It needs no root, but it is
// of this suite, which runs with -test.root and the built binaries.)
func TestIPsCapabilityHostLocal(t *testing.T) {
	testenv.RequireRoot(t)
	bin := ours(t, "host-local")
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			cni := libcni.NewCNIConfigWithCacheDir([]string{filepath.Dir(bin)}, t.TempDir(), nil)
			list := func(caps bool) *libcni.NetworkConfigList {
				p := map[string]any{"type": "host-local", "ipam": map[string]any{"type": "host-local", "dataDir": dir,
					"ranges": []any{[]any{map[string]any{"subnet": "10.99.22.0/24"}}}}}
				if caps {
					p["capabilities"] = map[string]bool{"ips": true}
				}
				b, _ := json.Marshal(map[string]any{"cniVersion": v, "name": "caps", "plugins": []any{p}})
				l, err := libcni.NetworkConfFromBytes(b)
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			ctx := context.Background()
			rt := func(id string) *libcni.RuntimeConf {
				return &libcni.RuntimeConf{ContainerID: id, NetNS: "/var/run/netns/unused", IfName: "eth0",
					CapabilityArgs: map[string]any{"ips": []string{"10.99.22.77/24"}}}
			}
			for _, tc := range []struct {
				id   string
				caps bool
				want string
			}{
				{"with", true, "10.99.22.77/24"},
				// Round robin goes on after the requested address, as with
				// the reference (a request is a reservation like another).
				{"without", false, "10.99.22.78/24"},
			} {
				r, err := cni.AddNetworkList(ctx, list(tc.caps), rt(tc.id))
				if err != nil {
					t.Fatalf("ADD %s: %v", tc.id, err)
				}
				cur, err := types100.NewResultFromResult(r)
				if err != nil {
					t.Fatal(err)
				}
				if r.Version() != v || len(cur.IPs) != 1 || cur.IPs[0].Address.String() != tc.want {
					t.Errorf("ADD %s: version %s, %v; want %s, %s", tc.id, r.Version(), cur.IPs, v, tc.want)
				}
				if v != "0.3.0" && v != "0.3.1" {
					if err := cni.CheckNetworkList(ctx, list(tc.caps), rt(tc.id)); err != nil {
						t.Errorf("CHECK %s: %v", tc.id, err)
					}
				}
			}
			// Another container asking for the same address.
			if _, err := cni.AddNetworkList(ctx, list(true), rt("again")); netenv.ErrCode(err) != plugin.ErrAddressTaken {
				t.Errorf("ADD of a taken address through libcni = %v, want code %d", err, plugin.ErrAddressTaken)
			}
			for _, id := range []string{"with", "without", "again"} {
				if err := cni.DelNetworkList(ctx, list(true), rt(id)); err != nil {
					t.Errorf("DEL %s: %v", id, err)
				}
			}
			if a := netenv.Allocations(t, filepath.Join(dir, "caps")); len(a) != 0 {
				t.Errorf("left allocated: %v", a)
			}
		})
	}
}
