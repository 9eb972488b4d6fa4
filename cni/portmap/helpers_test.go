package portmap

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/berth-project/berth/cni/internal/nftrule"
	"github.com/berth-project/berth/cni/plugin"
	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/integration/testenv/netenv"
)

// versions are the spec versions every test runs across.
var versions = plugin.Versions.SupportedVersions()

// env is one test's world: a throwaway network namespace that plays the
// host (the plugin runs in it, so its nftables rules and sysctls never
// touch the real host), with an address of its own (10.98.y.1 on a
// stand-in uplink) and loopback up; our bridge and host-local binaries
// attach containers to a bridge of the test's own, over a subnet of its
// own.
type env struct {
	host      *netenv.Host
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
	host := netenv.NewHost(t, &net.IPNet{IP: net.IPv4(10, 98, byte(x+1), 1).To4(), Mask: net.CIDRMask(24, 32)})
	return &env{
		host:      host,
		hostAddr:  host.Addr,
		bridge:    netenv.RandomName("pt"),
		network:   netenv.RandomName("pt-net-"),
		subnet:    &net.IPNet{IP: net.IPv4(10, 98, byte(x), 0).To4(), Mask: net.CIDRMask(24, 32)},
		dataDir:   t.TempDir(),
		bridgeBin: bridgeBin,
		cniPath:   filepath.Dir(bridgeBin),
	}
}

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
	cont := netenv.Container(t)
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
	err := e.host.Do(func(ns.NetNS) (err error) {
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

func (e *env) in(f func() error) error { return e.host.In(f) }

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
		defer c.CloseLasting()
		for _, fam := range families {
			rs, err := ourRules(c, fam, "")
			if err != nil {
				return err
			}
			for _, r := range rs {
				out = append(out, r.Chain.Name+" "+nftrule.CommentOf(r))
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
func (e *env) ruleset(t *testing.T) string { return netenv.Ruleset(t, e.host) }

var (
	httpd = netenv.HTTPD
	fetch = netenv.Fetch
	code  = netenv.ErrCode
)
