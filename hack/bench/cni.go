package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
)

// cniChain is one configuration list measured on one set of plugins: its
// own "host" network namespace (where the bridge, the masquerade and port
// mapping rules live, so the machine's own network is never touched), its
// own bridge, subnet, IPAM data directory and libcni cache.
type cniChain struct {
	side, list string
	dir        string // the plugins
	host       ns.NetNS
	conf       *libcni.NetworkConfigList
	cni        *libcni.CNIConfig
	add, del   []time.Duration
}

// benchCNI measures ADD and DEL of bridge+host-local and of
// bridge+host-local+portmap through libcni, as a runtime runs them, with
// berth's plugins and with the reference plugins (cniVersion 1.0.0, the
// newest that Debian's v1.1.1 speaks), alternating the two in one run.
// Each round attaches a fresh container namespace and detaches it; every
// namespace, and the data directories, go when the benchmark ends, also
// on an error or an interrupt.
func benchCNI(args []string) error {
	fs := flag.NewFlagSet("bench cni", flag.ExitOnError)
	pluginDir := fs.String("plugin-dir", "bin", "directory holding berth's bridge, host-local and portmap")
	refDir := fs.String("ref-dir", "/usr/lib/cni", "directory holding the reference plugins")
	n := fs.Int("n", 30, "measured ADD/DEL rounds per chain and side")
	_ = fs.Parse(args)
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var sides [2]string
	for i, d := range []string{*pluginDir, *refDir} {
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		for _, p := range []string{"bridge", "host-local", "portmap"} {
			if _, err := os.Stat(filepath.Join(abs, p)); err != nil {
				return fmt.Errorf("plugin %s: %w", p, err)
			}
		}
		sides[i] = abs
	}
	tmp, err := os.MkdirTemp("", "berth-bench-cni-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var chains []*cniChain
	defer func() {
		for _, c := range chains {
			c.host.Close()
			_ = testutils.UnmountNS(c.host)
		}
	}()
	for li, list := range []string{"bridge+host-local", "bridge+host-local+portmap"} {
		for si, dir := range sides {
			k := len(chains)
			c := &cniChain{side: []string{"berth", "reference"}[si], list: list, dir: dir}
			if c.host, err = testutils.NewNS(); err != nil {
				return fmt.Errorf("create a network namespace: %w", err)
			}
			chains = append(chains, c)
			name := fmt.Sprintf("bench%x-%d", os.Getpid(), k)
			if c.conf, err = benchConfList(name, filepath.Join(tmp, name), k, li == 1); err != nil {
				return err
			}
			c.cni = libcni.NewCNIConfigWithCacheDir([]string{dir}, filepath.Join(tmp, name+"-cache"),
				&invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}})
		}
	}

	// Two warm-up rounds (the first ADD creates the bridge) are not kept.
	// Within a round berth and the reference take turns, in an order that
	// alternates from round to round.
	for i := range *n + 2 {
		for j := range chains {
			c := chains[j^(i&1)]
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := c.round(ctx, i, i >= 2); err != nil {
				return fmt.Errorf("%s, %s: %w", c.side, c.list, err)
			}
		}
	}

	fmt.Printf("%-26s %-4s %12s %12s %8s\n", "chain (cniVersion 1.0.0)", "op", "berth", "reference", "ratio")
	for i := 0; i < len(chains); i += 2 {
		a, b := chains[i], chains[i+1]
		for _, op := range []string{"ADD", "DEL"} {
			da, db := medianDur(a.add), medianDur(b.add)
			if op == "DEL" {
				da, db = medianDur(a.del), medianDur(b.del)
			}
			fmt.Printf("%-26s %-4s %10.2fms %10.2fms %7.2fx\n", a.list, op, ms(da), ms(db), float64(da)/float64(db))
		}
	}
	fmt.Printf("(median of %d alternating rounds through libcni; berth: %s, reference: %s; each ADD into a fresh network namespace)\n",
		*n, sides[0], sides[1])
	return nil
}

// benchConfList is the list a runtime would use: a gateway bridge with
// masquerading and hairpin over host-local, and with portmap the
// portMappings capability after it (one TCP mapping per round). Chain k
// has the subnet 10.96.<k+1>.0/24, a private range that neither the tests
// nor the machine use, inside its own namespace.
func benchConfList(name, dataDir string, k int, portmap bool) (*libcni.NetworkConfigList, error) {
	subnet := fmt.Sprintf("10.96.%d.0/24", k+1)
	plugins := []any{map[string]any{
		"type":        "bridge",
		"bridge":      fmt.Sprintf("bb%x%d", os.Getpid()&0xffffff, k),
		"isGateway":   true,
		"ipMasq":      true,
		"hairpinMode": true,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": dataDir,
			"ranges":  []any{[]any{map[string]any{"subnet": subnet}}},
			"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
		},
	}}
	if portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "snat": true, "capabilities": map[string]bool{"portMappings": true}})
	}
	b, err := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": plugins})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

// round attaches a fresh container namespace and detaches it again.
func (c *cniChain) round(ctx context.Context, i int, keep bool) error {
	cont, err := testutils.NewNS()
	if err != nil {
		return fmt.Errorf("create a network namespace: %w", err)
	}
	defer func() {
		cont.Close()
		_ = testutils.UnmountNS(cont)
	}()
	rt := &libcni.RuntimeConf{
		ContainerID: fmt.Sprintf("bench-%d-%d", os.Getpid(), i),
		NetNS:       cont.Path(),
		IfName:      "eth0",
		CapabilityArgs: map[string]any{
			"portMappings": []map[string]any{{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}},
		},
	}
	var add, del time.Duration
	err = c.host.Do(func(ns.NetNS) error {
		start := time.Now()
		if _, err := c.cni.AddNetworkList(ctx, c.conf, rt); err != nil {
			// Undo what a partly failed ADD left.
			return errors.Join(fmt.Errorf("ADD: %w", err), c.cni.DelNetworkList(context.WithoutCancel(ctx), c.conf, rt))
		}
		add = time.Since(start)
		start = time.Now()
		if err := c.cni.DelNetworkList(context.WithoutCancel(ctx), c.conf, rt); err != nil {
			return fmt.Errorf("DEL: %w", err)
		}
		del = time.Since(start)
		return nil
	})
	if err != nil {
		return err
	}
	if keep {
		c.add, c.del = append(c.add, add), append(c.del, del)
	}
	return nil
}
