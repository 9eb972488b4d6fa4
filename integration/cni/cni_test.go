package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/berth-project/berth/integration/testenv"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// mixed runs two containers on one network, checks the results and that
// they reach each other and the host reaches them, CHECKs and DELs them.
func mixed(t *testing.T, plugins map[string]string, version string) {
	w := newWorld(t, plugins)
	l := w.list(t, version, map[string]any{"isDefaultGateway": true, "ipMasq": true})
	c1, c2 := testenv.NetNS(t), testenv.NetNS(t)
	r1 := w.add(t, l, "mix1", c1)
	t.Cleanup(func() { w.del(t, l, "mix1", c1) })
	r2 := w.add(t, l, "mix2", c2)
	t.Cleanup(func() { w.del(t, l, "mix2", c2) })
	w.assertAttached(t, r1, c1)
	w.assertAttached(t, r2, c2)

	ping(t, c1, r2.IPs[0].Address.IP)
	ping(t, c2, r1.IPs[0].Address.IP)
	ping(t, w.host, r1.IPs[0].Address.IP)
	ping(t, c1, r1.IPs[0].Gateway)

	for id, n := range map[string]ns.NetNS{"mix1": c1, "mix2": c2} {
		if err := w.check(l, id, n); err != nil {
			t.Errorf("CHECK %s: %v", id, err)
		}
	}
	w.del(t, l, "mix1", c1)
	w.del(t, l, "mix2", c2)
	w.del(t, l, "mix2", c2) // again
	w.assertClean(t)
}

func TestOurBridgeOverReferenceHostLocal(t *testing.T) {
	mixed(t, map[string]string{"bridge": ours(t, "bridge"), "host-local": reference(t, "host-local")}, "1.0.0")
}

func TestReferenceBridgeOverOurHostLocal(t *testing.T) {
	mixed(t, map[string]string{"bridge": reference(t, "bridge"), "host-local": ours(t, "host-local")}, "1.0.0")
}

func TestOursAcrossVersions(t *testing.T) {
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			w := newWorld(t, map[string]string{"bridge": ours(t, "bridge"), "host-local": ours(t, "host-local")})
			l := w.list(t, v, map[string]any{"isGateway": true})
			n := testenv.NetNS(t)
			var r types.Result
			err := w.in(func() (err error) {
				r, err = w.cni.AddNetworkList(context.Background(), l, rt("v", n))
				return err
			})
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() { w.del(t, l, "v", n) })
			if r.Version() != v {
				t.Errorf("result version %s, want %s", r.Version(), v)
			}
			cur, err := types100.NewResultFromResult(r)
			if err != nil {
				t.Fatal(err)
			}
			w.assertAttached(t, cur, n)
			if v != "0.3.0" && v != "0.3.1" {
				if err := w.check(l, "v", n); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			w.del(t, l, "v", n)
			w.assertClean(t)
		})
	}
}

// TestSameResultAsReference runs configurations through the reference
// bridge and through ours and compares the results, but for what is random
// (MAC addresses, the host veth's name).
func TestSameResultAsReference(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra map[string]any
		dual  bool
	}{
		{"plain", nil, false},
		{"default gateway", map[string]any{"isDefaultGateway": true}, false},
		{"gateway and masquerade, dual stack", map[string]any{"isGateway": true, "ipMasq": true, "hairpinMode": true}, true},
		{"default gateway, dual stack", map[string]any{"isDefaultGateway": true}, true},
		{"layer 2", map[string]any{"ipam": map[string]any{}}, false},
		{"dns", map[string]any{"dns": map[string]any{"nameservers": []string{"10.99.250.53"}, "search": []string{"example.test"}}}, false},
		{"mtu, hairpin, forced gateway", map[string]any{"mtu": 1400, "hairpinMode": true, "forceAddress": true, "isGateway": true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			results := map[string]string{}
			bridgeName := fmt.Sprintf("bi%08x", rand.Uint32()) // the same in both worlds
			for name, bridge := range map[string]string{"reference": reference(t, "bridge"), "berth": ours(t, "bridge")} {
				w := newWorld(t, map[string]string{"bridge": bridge, "host-local": ours(t, "host-local")})
				w.subnet.IP[2] = 250 // the same addresses in both worlds
				w.bridge = bridgeName
				extra := map[string]any{}
				for k, v := range tc.extra {
					extra[k] = v
				}
				if tc.dual {
					extra["ipam"] = map[string]any{"type": "host-local", "dataDir": w.dataDir,
						"ranges": []any{[]any{map[string]any{"subnet": w.subnet.String()}}, []any{map[string]any{"subnet": "fd99:fa::/64"}}}}
				}
				l := w.list(t, "1.0.0", extra)
				n := testenv.NetNS(t)
				var r types.Result
				err := w.in(func() (err error) {
					r, err = w.cni.AddNetworkList(context.Background(), l, rt("same", n))
					return err
				})
				if err != nil {
					t.Fatalf("%s ADD: %v", name, err)
				}
				t.Cleanup(func() { w.del(t, l, "same", n) })
				cur, err := types100.NewResultFromResult(r)
				if err != nil {
					t.Fatal(err)
				}
				for _, iface := range cur.Interfaces {
					iface.Mac = "(mac)"
					if strings.HasPrefix(iface.Name, "veth") {
						iface.Name = "(veth)"
					}
					if iface.Sandbox != "" {
						iface.Sandbox = "(netns)"
					}
				}
				b, _ := json.Marshal(cur)
				results[name] = string(b)
			}
			t.Logf("reference: %s\nberth:     %s", results["reference"], results["berth"])
			if results["reference"] != results["berth"] {
				t.Errorf("results differ\nreference: %s\nberth:     %s", results["reference"], results["berth"])
			}
		})
	}
}

func TestBridgeAndLoopbackChain(t *testing.T) {
	w := newWorld(t, map[string]string{"bridge": ours(t, "bridge"), "host-local": ours(t, "host-local"), "loopback": ours(t, "loopback")})
	l := w.list(t, "1.1.0", map[string]any{"isGateway": true, "ipMasq": true}, map[string]any{"type": "loopback"})
	keep, stale := testenv.NetNS(t), testenv.NetNS(t)
	r := w.add(t, l, "keep", keep)
	t.Cleanup(func() { w.del(t, l, "keep", keep) })
	w.add(t, l, "stale", stale)
	t.Cleanup(func() { w.del(t, l, "stale", stale) })
	w.assertAttached(t, r, keep)
	keep.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("lo is not up in the container after the chain (%v)", err)
		}
		return nil
	})
	ping(t, keep, []byte{127, 0, 0, 1})
	if err := w.check(l, "keep", keep); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := w.in(func() error { return w.cni.GetStatusNetworkList(context.Background(), l) }); err != nil {
		t.Errorf("STATUS: %v", err)
	}

	// GC with only "keep" valid: libcni DELs the cached "stale"
	// attachment, then each plugin collects what is left.
	err := w.in(func() error {
		return w.cni.GCNetworkList(context.Background(), l, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}}})
	})
	if err != nil {
		t.Errorf("GC: %v", err)
	}
	stale.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			t.Error("GC left the stale attachment's eth0")
		}
		return nil
	})
	ping(t, w.host, r.IPs[0].Address.IP)
	if err := w.check(l, "keep", keep); err != nil {
		t.Errorf("CHECK after GC: %v", err)
	}
	w.del(t, l, "keep", keep)
	w.assertClean(t)
}

// TestBinaryErrors runs the bridge binary directly with bad input and
// checks the spec-shaped error it prints and its exit status.
func TestBinaryErrors(t *testing.T) {
	w := newWorld(t, map[string]string{"bridge": ours(t, "bridge"), "host-local": ours(t, "host-local")})
	bin := ours(t, "bridge")
	n := testenv.NetNS(t)
	good := `{"cniVersion":"1.0.0","name":"` + w.network + `","type":"bridge","bridge":"` + w.bridge + `","ipam":{"type":"host-local","dataDir":"` + w.dataDir + `","subnet":"` + w.subnet.String() + `"}}`
	conflict := strings.Replace(good, w.bridge, "lo", 1)
	cases := []struct {
		name, command, netns, stdin string
		code                        uint
		msg                         string
	}{
		{"malformed JSON", "ADD", n.Path(), `{"cniVersion":`, types.ErrDecodingFailure, ""},
		{"unknown version", "ADD", n.Path(), strings.Replace(good, `"1.0.0"`, `"9.9.9"`, 1), types.ErrIncompatibleCNIVersion, "incompatible"},
		{"wrong type", "ADD", n.Path(), strings.Replace(good, `"type":"bridge",`, `"type":"bridge","mtu":"1500",`, 1), types.ErrDecodingFailure, "mtu"},
		{"bridge name is another link", "ADD", n.Path(), conflict, 101, "not a bridge"},
		{"missing netns", "ADD", "/run/netns/berth-no-such-netns", good, types.ErrInvalidNetNS, "network namespace"},
		{"vlan", "ADD", n.Path(), strings.Replace(good, `"type":"bridge",`, `"type":"bridge","vlan":5,`, 1), types.ErrUnsupportedField, "vlan"},
		{"CHECK before 0.4.0", "CHECK", n.Path(), strings.Replace(good, `"1.0.0"`, `"0.3.1"`, 1), types.ErrIncompatibleCNIVersion, "CHECK"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("ip", "netns", "exec", filepath.Base(w.host.Path()), bin)
			cmd.Env = []string{"CNI_COMMAND=" + tc.command, "CNI_CONTAINERID=bad", "CNI_NETNS=" + tc.netns, "CNI_IFNAME=eth0",
				"CNI_PATH=" + filepath.Dir(bin), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
			cmd.Stdin = strings.NewReader(tc.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1 (stderr: %s)", err, &stderr)
			}
			var e struct {
				CNIVersion string `json:"cniVersion"`
				Code       uint   `json:"code"`
				Msg        string `json:"msg"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &e); err != nil {
				t.Fatalf("stdout is not a JSON error: %v\n%s", err, &stdout)
			}
			if e.Code != tc.code || e.Msg == "" || !strings.Contains(stdout.String(), tc.msg) {
				t.Errorf("error %s, want code %d mentioning %q", &stdout, tc.code, tc.msg)
			}
		})
	}
	w.assertClean(t)
	n.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			t.Error("a failed ADD left eth0 in the container")
		}
		return nil
	})
}

// TestConcurrentAttachments runs ADDs at once on a bridge that does not
// exist yet (they race to create it and to give it its gateway address),
// then DELs at once.
func TestConcurrentAttachments(t *testing.T) {
	w := newWorld(t, map[string]string{"bridge": ours(t, "bridge"), "host-local": ours(t, "host-local")})
	l := w.list(t, "1.1.0", map[string]any{"isGateway": true, "ipMasq": true})
	const n = 8
	nets := make([]ns.NetNS, n)
	for i := range nets {
		nets[i] = testenv.NetNS(t)
	}
	results := make([]types.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = w.in(func() (err error) {
				results[i], err = w.cni.AddNetworkList(context.Background(), l, rt(fmt.Sprintf("conc%d", i), nets[i]))
				return err
			})
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for i := range n {
			w.in(func() error {
				return w.cni.DelNetworkList(context.Background(), l, rt(fmt.Sprintf("conc%d", i), nets[i]))
			})
		}
	})
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("ADD conc%d: %v", i, errs[i])
		}
		r, err := types100.NewResultFromResult(results[i])
		if err != nil {
			t.Fatal(err)
		}
		w.assertAttached(t, r, nets[i])
		ping(t, nets[i], r.IPs[0].Gateway)
	}
	for i := range n {
		wg.Go(func() {
			errs[i] = w.in(func() error {
				return w.cni.DelNetworkList(context.Background(), l, rt(fmt.Sprintf("conc%d", i), nets[i]))
			})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("DEL conc%d: %v", i, errs[i])
		}
	}
	w.assertClean(t)
}
