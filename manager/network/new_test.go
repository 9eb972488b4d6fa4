package network

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestNew(t *testing.T) {
	plugins := t.TempDir()
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if err := os.WriteFile(filepath.Join(plugins, p), []byte("#!/bin/false\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(t.TempDir(), "network")
	m, err := New(Config{PluginDirs: []string{plugins}, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if m.cfg.Bridge != DefaultBridge || m.cfg.Subnet != DefaultSubnet {
		t.Errorf("defaults: bridge %q, subnet %q", m.cfg.Bridge, m.cfg.Subnet)
	}
	if got, want := m.NetNSPath("c1"), filepath.Join(state, "netns", "c1"); got != want {
		t.Errorf("NetNSPath = %s, want %s", got, want)
	}
	for _, d := range []string{"netns", "cache", "ipam"} {
		if fi, err := os.Stat(filepath.Join(state, d)); err != nil || !fi.IsDir() {
			t.Errorf("state directory %s: %v", d, err)
		}
	}

	for name, cfg := range map[string]Config{
		"no plugin dirs":  {StateDir: state},
		"no state dir":    {PluginDirs: []string{plugins}},
		"long bridge":     {PluginDirs: []string{plugins}, StateDir: state, Bridge: "abcdefghijklmnop"},
		"bridge with /":   {PluginDirs: []string{plugins}, StateDir: state, Bridge: "a/b"},
		"subnet host bit": {PluginDirs: []string{plugins}, StateDir: state, Subnet: "10.210.0.1/24"},
		"IPv6 subnet":     {PluginDirs: []string{plugins}, StateDir: state, Subnet: "fd00::/64"},
		"tiny subnet":     {PluginDirs: []string{plugins}, StateDir: state, Subnet: "10.210.0.0/31"},
		"MTU":             {PluginDirs: []string{plugins}, StateDir: state, MTU: -1},
	} {
		if _, err := New(cfg); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: New = %v, want invalid argument", name, err)
		}
	}

	if err := os.Remove(filepath.Join(plugins, "portmap")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{PluginDirs: []string{plugins}, StateDir: state}); !errdefs.IsNotFound(err) {
		t.Errorf("without portmap: New = %v, want not found", err)
	}
}
