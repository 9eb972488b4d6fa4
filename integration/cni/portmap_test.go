package cni

import (
	"context"
	"fmt"
	"github.com/berth-project/berth/integration/testenv"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
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
			if err := w.in(func() error {
				lo, err := netlink.LinkByName("lo")
				if err == nil {
					err = netlink.LinkSetUp(lo)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			l := w.list(t, v, map[string]any{"isDefaultGateway": true},
				map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
			n := testenv.NetNS(t)
			body := fmt.Sprintf("berth portmap %s", v)
			pmHTTPD(t, n, body)
			rtc := &libcni.RuntimeConf{ContainerID: "pm", NetNS: n.Path(), IfName: "eth0", CapabilityArgs: map[string]any{
				"portMappings": []map[string]any{{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}},
			}}
			var gw net.IP
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
			gw = append(net.IP(nil), w.subnet.IP...)
			gw[3] = 1
			for _, addr := range []string{gw.String(), "127.0.0.1"} {
				if got, err := pmFetch(w.host, addr+":18080"); err != nil || got != body {
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
				if r := pmRules(t, w); len(r) != 0 {
					t.Errorf("rules left after GC of every attachment: %v", r)
				}
			}
			if err := w.in(func() error { return w.cni.DelNetworkList(context.Background(), l, rtc) }); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if r := pmRules(t, w); len(r) != 0 {
				t.Errorf("rules left after DEL: %v", r)
			}
			w.assertClean(t)
		})
	}
}

// pmRules lists the rules the portmap plugin left in the host namespace.
func pmRules(t *testing.T, w *world) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", filepath.Base(w.host.Path()), "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, `comment "berth-portmap `) {
			rules = append(rules, strings.TrimSpace(l))
		}
	}
	return rules
}

// pmHTTPD serves body on port 8080 in a namespace until the test ends.
func pmHTTPD(t *testing.T, in ns.NetNS, body string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", filepath.Base(in.Path()), "busybox", "httpd", "-f", "-p", "8080", "-h", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start httpd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// pmFetch gets http://addr/ from inside a namespace, speaking HTTP/1.0 on
// the namespace's locked thread (net/http would dial from another
// goroutine, outside the namespace). It retries while the server starts.
func pmFetch(from ns.NetNS, addr string) (string, error) {
	var body string
	var err error
	for i := 0; i < 20; i++ {
		err = from.Do(func(ns.NetNS) error {
			conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
				return err
			}
			resp, err := io.ReadAll(conn)
			if err != nil {
				return err
			}
			head, b, ok := strings.Cut(string(resp), "\r\n\r\n")
			if !ok || !strings.Contains(strings.SplitN(head, "\r\n", 2)[0], " 200 ") {
				return fmt.Errorf("unexpected response %q", resp)
			}
			body = b
			return nil
		})
		if err == nil {
			return body, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("GET http://%s/ from %s: %w", addr, filepath.Base(from.Path()), err)
}
