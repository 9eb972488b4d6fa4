package portmap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/cni/plugin"
	"github.com/berth-project/berth/integration/testenv"
)

// versions are the spec versions every test runs across.
var versions = plugin.Versions.SupportedVersions()

// env is one test's world: a throwaway network namespace that plays the
// host (the plugin runs in it, so its nftables rules and sysctls never
// touch the real host), with an address of its own on a dummy interface
// (10.98.y.1 on an empty bridge standing for the uplink) and loopback up; our bridge and host-local binaries attach containers
// to a bridge of the test's own, over a subnet of its own.
type env struct {
	host      ns.NetNS
	hostAddr  net.IP
	bridge    string
	network   string
	subnet    *net.IPNet // 10.98.x.0/24
	dataDir   string
	bridgeBin string
	cniPath   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("ip"), testenv.Program("nft"), testenv.Program("busybox"))
	bridgeBin := testenv.Binary(t, "bridge")
	testenv.Binary(t, "host-local")
	x := rand.IntN(120)*2 + 2
	e := &env{
		host:      testenv.NetNS(t),
		hostAddr:  net.IPv4(10, 98, byte(x+1), 1).To4(),
		bridge:    fmt.Sprintf("pt%08x", rand.Uint32()),
		network:   fmt.Sprintf("pt-net-%08x", rand.Uint32()),
		subnet:    &net.IPNet{IP: net.IPv4(10, 98, byte(x), 0).To4(), Mask: net.CIDRMask(24, 32)},
		dataDir:   t.TempDir(),
		bridgeBin: bridgeBin,
		cniPath:   filepath.Dir(bridgeBin),
	}
	err := e.host.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		// A bridge with no ports stands for the host's uplink (the dummy
		// module may be missing).
		d := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "hostif"}}
		if err := netlink.LinkAdd(d); err != nil {
			return err
		}
		if err := netlink.AddrAdd(d, &netlink.Addr{IPNet: &net.IPNet{IP: e.hostAddr, Mask: net.CIDRMask(24, 32)}}); err != nil {
			return err
		}
		return netlink.LinkSetUp(d)
	})
	if err != nil {
		t.Fatalf("set up the host namespace: %v", err)
	}
	return e
}

func nsName(n ns.NetNS) string { return filepath.Base(n.Path()) }

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// attach makes a container namespace and attaches it to the bridge with
// our bridge plugin (detached again when the test ends); it returns the
// namespace, the bridge's result and the container's address.
func (e *env) attach(t *testing.T, version, id string) (ns.NetNS, []byte, net.IP) {
	t.Helper()
	cont := testenv.NetNS(t)
	err := cont.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		t.Fatal(err)
	}
	conf := marshal(t, map[string]any{
		"cniVersion": version, "name": e.network, "type": "bridge", "bridge": e.bridge,
		"isDefaultGateway": true, "hairpinMode": true, // hairpin: a container reaching itself through the host
		"ipam": map[string]any{"type": "host-local", "dataDir": e.dataDir,
			"ranges": []any{[]any{map[string]any{"subnet": e.subnet.String()}}}},
	})
	args := func(cmd string) *invoke.Args {
		return &invoke.Args{Command: cmd, ContainerID: id, NetNS: cont.Path(), IfName: "eth0", Path: e.cniPath}
	}
	var r types.Result
	err = e.host.Do(func(ns.NetNS) (err error) {
		r, err = invoke.ExecPluginWithResult(context.Background(), e.bridgeBin, conf, args("ADD"), nil)
		return err
	})
	if err != nil {
		t.Fatalf("bridge ADD %s: %v", id, err)
	}
	t.Cleanup(func() {
		e.host.Do(func(ns.NetNS) error {
			return invoke.ExecPluginWithoutResult(context.Background(), e.bridgeBin, conf, args("DEL"), nil)
		})
	})
	var out bytes.Buffer
	if err := r.PrintTo(&out); err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out.Bytes(), &parsed); err != nil || len(parsed.IPs) == 0 {
		t.Fatalf("bridge result without addresses: %v\n%s", err, out.Bytes())
	}
	ip, _, err := net.ParseCIDR(parsed.IPs[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	return cont, out.Bytes(), ip
}

// conf is a portmap configuration with prevResult (when not nil), the
// mappings as runtimeConfig and extra fields merged in.
func (e *env) conf(t *testing.T, version string, prev []byte, pms []PortMapping, extra map[string]any) []byte {
	t.Helper()
	c := map[string]any{
		"cniVersion":   version,
		"name":         e.network,
		"type":         "portmap",
		"capabilities": map[string]bool{"portMappings": true},
	}
	if prev != nil {
		c["prevResult"] = json.RawMessage(prev)
	}
	if pms != nil {
		c["runtimeConfig"] = map[string]any{"portMappings": pms}
	}
	maps.Copy(c, extra)
	return marshal(t, c)
}

func (e *env) args(conf []byte, netns, id string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: id, Netns: netns, IfName: "eth0", Path: e.cniPath, StdinData: conf}
}

func (e *env) in(f func() error) error { return e.host.Do(func(ns.NetNS) error { return f() }) }

func (e *env) add(t *testing.T, conf []byte, netns, id string) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	err := e.in(func() error { return add(context.Background(), e.args(conf, netns, id), &out) })
	return out.Bytes(), err
}

func (e *env) mustAdd(t *testing.T, conf []byte, netns, id string) []byte {
	t.Helper()
	out, err := e.add(t, conf, netns, id)
	if err != nil {
		t.Fatalf("ADD %s: %v", id, err)
	}
	t.Cleanup(func() { e.del(t, conf, netns, id) })
	return out
}

func (e *env) del(t *testing.T, conf []byte, netns, id string) error {
	t.Helper()
	return e.in(func() error { return del(context.Background(), e.args(conf, netns, id)) })
}

func (e *env) check(t *testing.T, conf []byte, netns, id string) error {
	t.Helper()
	return e.in(func() error { return check(context.Background(), e.args(conf, netns, id)) })
}

// rules lists the comments of the rules in our tables in the host
// namespace, with their chain.
func (e *env) rules(t *testing.T) []string {
	t.Helper()
	var out []string
	err := e.in(func() error {
		c, err := newConn()
		if err != nil {
			return err
		}
		for _, fam := range families {
			rs, err := ourRules(c, fam, "")
			if err != nil {
				return err
			}
			for _, r := range rs {
				out = append(out, r.Chain.Name+" "+ruleComment(r))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list rules: %v", err)
	}
	return out
}

// ruleset is `nft list ruleset` in the host namespace.
func (e *env) ruleset(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", nsName(e.host), "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	return string(out)
}

// httpd serves body on port in a namespace until the test ends.
func httpd(t *testing.T, in ns.NetNS, port int, body string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", nsName(in), "busybox", "httpd", "-f", "-p", fmt.Sprint(port), "-h", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start httpd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Wait until it listens.
	for i := 0; i < 50; i++ {
		if _, err := fetch(in, fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("httpd in %s does not answer on port %d", nsName(in), port)
}

// fetch gets http://addr/ from inside a namespace. It dials on the
// namespace's locked thread and speaks HTTP/1.0 itself (net/http would
// dial from another goroutine, in another namespace; busybox wget is not
// reliable everywhere).
func fetch(from ns.NetNS, addr string) (string, error) {
	var body string
	err := from.Do(func(ns.NetNS) error {
		conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
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
	if err != nil {
		return "", fmt.Errorf("GET http://%s/ from %s: %w", addr, nsName(from), err)
	}
	return body, nil
}

// code is the spec error code of err (0 when err is not a spec error).
func code(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
