package cni

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/integration/testenv/netenv"
)

// TestPortmapChain runs the bridge and portmap chain through libcni, with
// the port mappings passed as the portMappings capability, across every
// version: the published port answers from the host on the bridge's
// address and on 127.0.0.1, CHECK passes, DEL removes every rule, and (in
// 1.1) GC removes those of attachments that are no longer valid.
func TestPortmapChain(t *testing.T) {
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			w := newWorld(t, map[string]string{"bridge": ours(t, "bridge"), "host-local": ours(t, "host-local"), "portmap": ours(t, "portmap")})
			w.subnet.IP[1] = 98 // 10.98.x.0/24
			l := w.list(t, v, map[string]any{"isDefaultGateway": true},
				map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
			n := netenv.Container(t)
			body := fmt.Sprintf("berth portmap %s", v)
			netenv.HTTPD(t, n, 8080, body)
			rtc := &libcni.RuntimeConf{ContainerID: "pm", NetNS: n.Path(), IfName: "eth0", CapabilityArgs: map[string]any{
				"portMappings": []map[string]any{{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}},
			}}
			err := w.in(func() error {
				r, err := w.cni.AddNetworkList(context.Background(), l, rtc)
				if err == nil && r.Version() != v {
					err = fmt.Errorf("result version %s, want %s", r.Version(), v)
				}
				return err
			})
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() { w.in(func() error { return w.cni.DelNetworkList(context.Background(), l, rtc) }) })
			gw := append(net.IP(nil), w.subnet.IP...)
			gw[3] = 1
			for _, addr := range []string{gw.String(), "127.0.0.1"} {
				if got, err := netenv.Fetch(w.host, addr+":18080"); err != nil || got != body {
					t.Errorf("through %s: %q, %v", addr, got, err)
				}
			}
			if v != "0.3.0" && v != "0.3.1" {
				if err := w.in(func() error { return w.cni.CheckNetworkList(context.Background(), l, rtc) }); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if v == "1.1.0" {
				if err := w.in(func() error {
					return w.cni.GCNetworkList(context.Background(), l, &libcni.GCArgs{ValidAttachments: nil})
				}); err != nil {
					t.Errorf("GC: %v", err)
				}
				if r := netenv.NFTRules(t, w.host, "berth-portmap "); len(r) != 0 {
					t.Errorf("rules left after GC of every attachment: %v", r)
				}
			}
			if err := w.in(func() error { return w.cni.DelNetworkList(context.Background(), l, rtc) }); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			w.assertClean(t)
		})
	}
}

// TestPortmapLikeReference publishes a port through one bridge+portmap
// list with every mix of the reference plugins and ours (each the other's
// drop-in: the reference bridge before our portmap, ours before the
// reference portmap) and checks that each publishes it as the reference
// pair does: a busybox httpd in the container answers through the host's
// address from the host, from another machine and from another container
// (hairpin), and through 127.0.0.1 from the host; a mapping bound to the
// host's address answers there and not on 127.0.0.1; after DEL nothing
// answers and nothing is left.
func TestPortmapLikeReference(t *testing.T) {
	testenv.RequireRoot(t)
	reference(t, "bridge")
	reference(t, "portmap")
	var want map[string]string
	for _, mix := range []struct{ name, bridge, portmap string }{
		{"reference", "reference", "reference"},
		{"berth", "berth", "berth"},
		{"reference bridge, berth portmap", "reference", "berth"},
		{"berth bridge, reference portmap", "berth", "reference"},
	} {
		t.Run(mix.name, func(t *testing.T) {
			pick := func(who, name string) string {
				if who == "reference" {
					return reference(t, name)
				}
				return ours(t, name)
			}
			got := publish(t, map[string]string{"bridge": pick(mix.bridge, "bridge"), "host-local": ours(t, "host-local"), "portmap": pick(mix.portmap, "portmap")}, mix.portmap == "reference")
			t.Logf("%v", got)
			if want == nil {
				want = got
			}
			for what, w := range want {
				if got[what] != w {
					t.Errorf("%s: %s, the reference pair: %s", what, got[what], w)
				}
			}
		})
	}
	if want == nil {
		t.Fatal("the reference pair gave no outcome to compare with")
	}
	for what, expected := range map[string]string{
		"host address":                        "answers",
		"127.0.0.1":                           "answers",
		"another machine":                     "answers",
		"another container (hairpin)":         "answers",
		"mapping bound to the host's address": "answers",
		"that mapping on 127.0.0.1":           "no answer",
		"host address after DEL":              "no answer",
	} {
		if want[what] != expected {
			t.Errorf("the reference pair: %s: %s, want %s", what, want[what], expected)
		}
	}
}

// publish attaches a web server's container and a client's with the
// plugins, publishes the server's port 8080 on the host's port 18080 (and
// on 18081 of the host's address only), and says how each way to it
// answers.
func publish(t *testing.T, plugins map[string]string, referencePortmap bool) map[string]string {
	w := newWorld(t, plugins)
	w.subnet.IP[1] = 98 // 10.98.x.0/24
	y := byte(rand.IntN(250) + 2)
	hostAddr := net.IPv4(10, 95, y, 1).To4()
	remote := w.host.Remote(t, &net.IPNet{IP: hostAddr, Mask: net.CIDRMask(24, 32)}, &net.IPNet{IP: net.IPv4(10, 95, y, 2).To4(), Mask: net.CIDRMask(24, 32)})
	l := w.list(t, "1.0.0", map[string]any{"isDefaultGateway": true, "hairpinMode": true},
		map[string]any{"type": "portmap", "snat": true, "capabilities": map[string]bool{"portMappings": true}})
	const body = "published"
	server, client := netenv.Container(t), netenv.Container(t)
	netenv.HTTPD(t, server, 8080, body)
	mappings := func(pms ...map[string]any) map[string]any { return map[string]any{"portMappings": pms} }
	rtServer := &libcni.RuntimeConf{ContainerID: "server", NetNS: server.Path(), IfName: "eth0", CapabilityArgs: mappings(
		map[string]any{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"},
		map[string]any{"hostPort": 18081, "containerPort": 8080, "protocol": "tcp", "hostIP": hostAddr.String()},
	)}
	rtClient := &libcni.RuntimeConf{ContainerID: "client", NetNS: client.Path(), IfName: "eth0", CapabilityArgs: mappings()}
	for _, rtc := range []*libcni.RuntimeConf{rtServer, rtClient} {
		if err := w.in(func() error { _, err := w.cni.AddNetworkList(context.Background(), l, rtc); return err }); err != nil {
			t.Fatalf("ADD %s: %v", rtc.ContainerID, err)
		}
		t.Cleanup(func() { w.in(func() error { return w.cni.DelNetworkList(context.Background(), l, rtc) }) })
		err := w.in(func() error { return w.cni.CheckNetworkList(context.Background(), l, rtc) })
		switch {
		case err != nil && referencePortmap && strings.Contains(err.Error(), "ipv6"):
			// v1.1.1's CHECK looks for ip6tables rules of an IPv4-only
			// container: containernetworking/plugins#819.
			t.Logf("CHECK %s with the reference portmap: %v (a known bug)", rtc.ContainerID, err)
		case err != nil:
			t.Errorf("CHECK %s: %v", rtc.ContainerID, err)
		}
	}

	got := map[string]string{}
	try := func(what string, from ns.NetNS, addr string) {
		b, err := netenv.Fetch(from, addr)
		switch {
		case err != nil:
			got[what] = "no answer"
			t.Logf("%s (%s): %v", what, addr, err)
		case b != body:
			got[what] = fmt.Sprintf("answers %q", b)
		default:
			got[what] = "answers"
		}
	}
	published := fmt.Sprintf("%s:18080", hostAddr)
	try("host address", w.host, published)
	try("127.0.0.1", w.host, "127.0.0.1:18080")
	try("another machine", remote, published)
	try("another container (hairpin)", client, published)
	try("mapping bound to the host's address", w.host, fmt.Sprintf("%s:18081", hostAddr))
	try("that mapping on 127.0.0.1", w.host, "127.0.0.1:18081")

	for _, rtc := range []*libcni.RuntimeConf{rtServer, rtClient} {
		if err := w.in(func() error { return w.cni.DelNetworkList(context.Background(), l, rtc) }); err != nil {
			t.Errorf("DEL %s: %v", rtc.ContainerID, err)
		}
	}
	try("host address after DEL", w.host, published)
	w.assertClean(t)
	return got
}
