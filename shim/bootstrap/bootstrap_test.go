package bootstrap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGroup(t *testing.T) {
	dir := t.TempDir()
	if g := Group(dir, "c1"); g != "c1" {
		t.Errorf("no config: group %q, want the id", g)
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}`)
	if g := Group(dir, "c1"); g != "pod1" {
		t.Errorf("CRI sandbox: group %q, want pod1", g)
	}
	write(`{"annotations":{"io.berth.group":"g2"}}`)
	if g := Group(dir, "c1"); g != "g2" {
		t.Errorf("berth group: group %q, want g2", g)
	}
}

func TestSocketPath(t *testing.T) {
	a := SocketPath(SocketDir, "/run/containerd/containerd.sock", "default", "c1")
	b := SocketPath(SocketDir, "/run/containerd/containerd.sock", "other", "c1")
	c := SocketPath(SocketDir, "/run/containerd/containerd.sock", "default", "c2")
	if a == b || a == c || b == c {
		t.Fatalf("socket paths collide: %s %s %s", a, b, c)
	}
	if !strings.HasPrefix(a, SocketDir+"/") || len(a) >= 108 {
		t.Fatalf("socket path %q: want under %s and shorter than a sun_path", a, SocketDir)
	}
}

func TestServerEnv(t *testing.T) {
	for _, containerd := range []string{"2", ""} {
		t.Setenv("GOMAXPROCS", containerd)
		// The server starts with one P...
		for _, kv := range serverEnv(nil) {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		if got := os.Getenv("GOMAXPROCS"); got != "1" {
			t.Fatalf("server GOMAXPROCS %q, want 1", got)
		}
		// ...and gives the commands it runs containerd's value back.
		RestoreEnv()
		got, ok := os.LookupEnv("GOMAXPROCS")
		if got != containerd || ok != (containerd != "") {
			t.Errorf("after RestoreEnv, GOMAXPROCS %q (set %v), want containerd's %q", got, ok, containerd)
		}
		if _, ok := os.LookupEnv(savedProcs); ok {
			t.Errorf("%s left in the environment", savedProcs)
		}
	}
}
