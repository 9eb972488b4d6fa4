package runtime_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/testenv"
)

// TestCreateBadBundle feeds create broken bundles: it must fail with a
// message naming the problem and leave nothing behind.
func TestCreateBadBundle(t *testing.T) {
	testenv.RequireRoot(t)
	writeConfig := func(t *testing.T, dir, config string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		// bundle returns the bundle directory to create from, given a
		// fresh one holding the test image.
		bundle    func(t *testing.T, dir string) string
		want      []string // in the message of every runtime
		wantBerth []string // and of berth, whose messages say more
	}{
		{
			name: "missing config.json",
			bundle: func(t *testing.T, dir string) string {
				os.Remove(filepath.Join(dir, "config.json"))
				return dir
			},
			want: []string{"config.json", "not found"},
		},
		{
			name:   "missing bundle",
			bundle: func(t *testing.T, dir string) string { return filepath.Join(dir, "nonexistent") },
			want:   []string{"nonexistent"}, wantBerth: []string{"does not exist"},
		},
		{
			name: "malformed JSON",
			bundle: func(t *testing.T, dir string) string {
				writeConfig(t, dir, "{\n\t\"ociVersion\": \"1.0.2\",\n\t\"process\": {x}\n}\n")
				return dir
			},
			want: []string{"invalid character"}, wantBerth: []string{"line 3, column 14"},
		},
		{
			name: "wrong type",
			bundle: func(t *testing.T, dir string) string {
				b, err := os.ReadFile(filepath.Join(dir, "config.json"))
				if err != nil {
					t.Fatal(err)
				}
				config := strings.Replace(string(b), `"args": [`, `"args": "sleep 1", "x": [`, 1)
				writeConfig(t, dir, config)
				return dir
			},
			want: []string{"process.args"},
		},
		{
			name: "missing rootfs",
			bundle: func(t *testing.T, dir string) string {
				if err := os.RemoveAll(filepath.Join(dir, "rootfs")); err != nil {
					t.Fatal(err)
				}
				return dir
			},
			want: []string{"rootfs"}, wantBerth: []string{"does not exist"},
		},
		{
			// Fails late, inside the container's init: the runtime has
			// made the state, cgroups and mounts by then.
			name: "missing executable",
			bundle: func(t *testing.T, dir string) string {
				if err := testimage.WriteSpec(dir, testimage.DefaultSpec("/nonexistent")); err != nil {
					t.Fatal(err)
				}
				return dir
			},
			want: []string{"/nonexistent", "no such file"},
		},
		{
			name: "missing mount source",
			bundle: func(t *testing.T, dir string) string {
				spec := testimage.DefaultSpec(sleeper...)
				spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: filepath.Join(dir, "nonexistent-src"), Options: []string{"bind"}})
				if err := testimage.WriteSpec(dir, spec); err != nil {
					t.Fatal(err)
				}
				return dir
			},
			want: []string{"nonexistent-src"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRuntime(t)
			bundle := tc.bundle(t, newBundle(t, nil, sleeper...))
			id := r.newID()
			stderr, _ := r.fails("create", "--bundle", bundle, id)
			contains(t, "create", stderr, tc.want...)
			if r.berth() {
				contains(t, "create", stderr, tc.wantBerth...)
			}
			r.assertNoLeftovers(id, bundle)
			if out := strings.TrimSpace(r.ok("list", "-q")); out != "" {
				t.Errorf("list -q after a failed create: %q", out)
			}
		})
	}
}

// TestWrongState runs commands that do not fit the container's state or
// name what does not exist: they fail, say why, and leave the container as
// it was.
func TestWrongState(t *testing.T) {
	testenv.RequireRoot(t)

	t.Run("duplicate id", func(t *testing.T) {
		r := newRuntime(t)
		id := r.create(newBundle(t, nil, sleeper...))
		other := newBundle(t, nil, "true")
		stderr, _ := r.fails("create", "--bundle", other, id)
		contains(t, "second create", stderr, "already exists")
		if s := r.state(id); s.Status != "created" || s.Bundle == other {
			t.Fatalf("first container after a duplicate create: %+v", s)
		}
		r.ok("start", id)
		if out := r.ok("exec", id, "echo", "still here"); out != "still here\n" {
			t.Errorf("exec in the first container: %q", out)
		}
	})

	t.Run("start twice", func(t *testing.T) {
		r := newRuntime(t)
		id := r.detached(newBundle(t, nil, sleeper...))
		stderr, _ := r.fails("start", id)
		contains(t, "start of a running container", stderr, "already running")
		if s := r.state(id); s.Status != "running" {
			t.Errorf("after a second start: status %s, want running", s.Status)
		}
	})

	t.Run("start stopped", func(t *testing.T) {
		r := newRuntime(t)
		id := r.create(newBundle(t, nil, "true"))
		r.ok("start", id)
		r.waitStatus(id, "stopped")
		stderr, _ := r.fails("start", id)
		contains(t, "start of a stopped container", stderr, "stopped")
	})

	t.Run("delete running", func(t *testing.T) {
		r := newRuntime(t)
		bundle := newBundle(t, nil, sleeper...)
		id := r.detached(bundle)
		stderr, _ := r.fails("delete", id)
		contains(t, "delete of a running container", stderr, "not stopped")
		if s := r.state(id); s.Status != "running" {
			t.Fatalf("after a refused delete: status %s, want running", s.Status)
		}
		r.ok("exec", id, "true")
		r.ok("delete", "--force", id)
		r.fails("state", id)
		r.assertNoLeftovers(id, bundle)
	})

	t.Run("stopped", func(t *testing.T) {
		r := newRuntime(t)
		id := r.create(newBundle(t, nil, "true"))
		r.ok("start", id)
		r.waitStatus(id, "stopped")
		for _, args := range [][]string{{"kill", id, "KILL"}, {"pause", id}, {"update", "--memory", "64m", id}, {"events", "--stats", id}} {
			stderr, _ := r.fails(args...)
			contains(t, args[0]+" of a stopped container", stderr, "not running")
		}
		r.ok("delete", id)
	})

	t.Run("invalid id", func(t *testing.T) {
		r := newRuntime(t)
		bundle := newBundle(t, nil, "true")
		for _, id := range []string{"../escape", "a b", "a/b"} {
			stderr, _ := r.fails("create", "--bundle", bundle, id)
			contains(t, "create "+id, stderr, "invalid container ID")
		}
		if _, err := os.Lstat(filepath.Join(r.root, "..", "escape")); err == nil {
			t.Errorf("create ../escape made %s", filepath.Join(r.root, "..", "escape"))
		}
		if out := strings.TrimSpace(r.ok("list", "-q")); out != "" {
			t.Errorf("list -q after invalid ids: %q", out)
		}
	})

	t.Run("unknown signal", func(t *testing.T) {
		r := newRuntime(t)
		id := r.detached(newBundle(t, nil, sleeper...))
		for _, sig := range []string{"SIGNOPE", "NOPE"} {
			stderr, _ := r.fails("kill", id, sig)
			contains(t, "kill "+sig, stderr, "unknown signal", sig)
		}
		// runc 1.1 passes any number to kill(2) and reports EINVAL.
		if stderr, _ := r.fails("kill", id, "1000"); r.berth() {
			contains(t, "kill 1000", stderr, "1000")
		}
		if s := r.state(id); s.Status != "running" {
			t.Errorf("after kill with unknown signals: status %s, want running", s.Status)
		}
	})

	t.Run("exec empty args", func(t *testing.T) {
		r := newRuntime(t)
		id := r.detached(newBundle(t, nil, sleeper...))
		stderr, code := r.fails("exec", id)
		contains(t, "exec without args", stderr, "args cannot be empty")
		if code != 255 {
			t.Errorf("exec without args: exit %d, want 255", code)
		}
	})

	t.Run("unknown container", func(t *testing.T) {
		r := newRuntime(t)
		for _, args := range [][]string{{"state"}, {"start"}, {"kill"}, {"delete"}, {"exec"}, {"pause"}, {"ps"}} {
			args = append(args, "it-does-not-exist")
			if args[0] == "exec" {
				args = append(args, "true")
			}
			stderr, _ := r.fails(args...)
			contains(t, args[0], stderr, "does not exist")
		}
		r.ok("delete", "--force", "it-does-not-exist")
	})

	t.Run("unknown command", func(t *testing.T) {
		r := newRuntime(t)
		stderr, _ := r.fails("frobnicate")
		contains(t, "unknown command", stderr, "frobnicate")
	})
}

// TestLogFile checks that errors reach --log in --log-format json, where
// containerd's shim reads them back.
func TestLogFile(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	log := filepath.Join(t.TempDir(), "log.json")
	missing := filepath.Join(t.TempDir(), "nonexistent")
	r.fails("--log", log, "--log-format", "json", "create", "--bundle", missing, r.newID())
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var entry struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(l), &entry); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		found = found || entry.Level == "error" && strings.Contains(entry.Msg, missing)
	}
	if !found {
		t.Errorf("--log has no error naming %s:\n%s", missing, b)
	}
}
