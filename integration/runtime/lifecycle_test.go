package runtime_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/integration/testenv"
)

// TestLifecycle walks a container through create, start, kill and delete,
// checking state at each step, for each way of naming SIGKILL.
func TestLifecycle(t *testing.T) {
	testenv.RequireRoot(t)
	for _, sig := range []string{"SIGKILL", "KILL", "9"} {
		t.Run(sig, func(t *testing.T) {
			r := newRuntime(t)
			bundle := newBundle(t, nil, sleeper...)
			id := r.create(bundle)

			s := r.state(id)
			if s.Status != "created" || s.ID != id || s.Pid <= 0 || s.Bundle != bundle || s.OCIVersion == "" {
				t.Fatalf("after create: state %+v, want status created, id %s, pid > 0, bundle %s, an ociVersion", s, id, bundle)
			}
			if _, err := os.Stat("/proc/" + strconv.Itoa(s.Pid)); err != nil {
				t.Errorf("init pid %d of the created container: %v", s.Pid, err)
			}
			if len(cgroupDirs(id)) == 0 {
				t.Errorf("no cgroup named %s while the container exists", id)
			}

			r.ok("start", id)
			if got := r.state(id); got.Status != "running" || got.Pid != s.Pid {
				t.Fatalf("after start: state %+v, want running with pid %d", got, s.Pid)
			}

			r.ok("kill", id, sig)
			if got := r.waitStatus(id, "stopped"); got.Pid != 0 {
				t.Errorf("stopped container has pid %d, want 0", got.Pid)
			}

			r.ok("delete", id)
			stderr, _ := r.fails("state", id)
			contains(t, "state after delete", stderr, "does not exist")
			r.assertNoLeftovers(id, bundle)
		})
	}
}

// TestKillDefault checks that kill sends SIGTERM when no signal is named.
func TestKillDefault(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	// As pid 1, the shell gets only the signals it handles.
	id := r.detached(newBundle(t, nil, "sh", "-c", "trap 'exit 0' TERM; echo ready > /tmp/ready; sleep 3600 & wait"))
	r.waitOutput(id, "ready\n", "cat", "/tmp/ready") // the trap is set
	r.ok("kill", id)
	r.waitStatus(id, "stopped")
}

// TestRun checks run in the foreground (exit status and output), run -d and
// --pid-file.
func TestRun(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name   string
		edit   func(*specs.Spec)
		script string
		code   int
	}{
		{"exit 0", nil, "echo hello from $(hostname)", 0},
		{"exit 3", nil, "echo hello from $(hostname); exit 3", 3},
		// In the host's pid namespace, where the shell is not an init
		// that ignores SIGKILL from inside.
		{"killed", func(s *specs.Spec) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace })
		}, "echo hello from $(hostname); kill -KILL $$", 128 + 9},
	} {
		t.Run("foreground "+tc.name, func(t *testing.T) {
			r := newRuntime(t)
			bundle := newBundle(t, tc.edit, "sh", "-c", tc.script)
			id := r.newID()
			stdout, stderr, code := r.run("run", "--bundle", bundle, id)
			if code != tc.code {
				t.Errorf("run: exit status %d, want the container's %d (stderr: %s)", code, tc.code, stderr)
			}
			if stdout != "hello from berth\n" {
				t.Errorf("run: stdout %q, want %q", stdout, "hello from berth\n")
			}
			r.fails("state", id) // run deletes the container once it exits
			r.assertNoLeftovers(id, bundle)
		})
	}
	t.Run("detach", func(t *testing.T) {
		r := newRuntime(t)
		pidFile := filepath.Join(t.TempDir(), "init.pid")
		id := r.detached(newBundle(t, nil, sleeper...), "--pid-file", pidFile)
		s := r.state(id)
		if s.Status != "running" {
			t.Fatalf("after run -d: status %s, want running", s.Status)
		}
		if pid := readPid(t, pidFile); pid != s.Pid {
			t.Errorf("--pid-file holds %d, the init is %d", pid, s.Pid)
		}
	})
	t.Run("preserve-fds", func(t *testing.T) {
		r := newRuntime(t)
		f, err := os.CreateTemp(t.TempDir(), "fd3")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("passed as fd 3\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		bundle := newBundle(t, nil, "sh", "-c", "cat <&3")
		stdout, stderr, code, err := execute(t, r.argv("run", "--preserve-fds", "1", "--bundle", bundle, r.newID()), f)
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 || stdout != "passed as fd 3\n" {
			t.Errorf("run --preserve-fds 1: exit %d, stdout %q; want 0 and the file's content (stderr: %s)", code, stdout, stderr)
		}
	})
	t.Run("create pid-file", func(t *testing.T) {
		r := newRuntime(t)
		pidFile := filepath.Join(t.TempDir(), "init.pid")
		id := r.create(newBundle(t, nil, sleeper...), "--pid-file", pidFile)
		if pid, s := readPid(t, pidFile), r.state(id); pid != s.Pid {
			t.Errorf("--pid-file holds %d, the init is %d", pid, s.Pid)
		}
	})
}

// TestList checks list's table, JSON and quiet forms.
func TestList(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	if out := r.ok("list", "--format", "json"); strings.TrimSpace(out) != "[]" && strings.TrimSpace(out) != "null" {
		t.Errorf("list --format json with no containers: %q, want an empty array", out)
	}
	bundle := newBundle(t, nil, sleeper...)
	created := r.create(bundle)
	running := r.detached(bundle)
	want := map[string]string{created: "created", running: "running"}

	table := strings.Split(strings.TrimSpace(r.ok("list")), "\n")
	if got := fields(table[0]); got != "ID PID STATUS BUNDLE CREATED OWNER" {
		t.Errorf("list header %q, want ID PID STATUS BUNDLE CREATED OWNER", got)
	}
	rows := map[string]string{}
	for _, l := range table[1:] {
		if f := strings.Fields(l); len(f) == 6 {
			rows[f[0]] = f[2]
			if f[3] != bundle || f[5] != "root" {
				t.Errorf("list row %q: want bundle %s and owner root", l, bundle)
			}
		}
	}
	if len(rows) != 2 || rows[created] != "created" || rows[running] != "running" {
		t.Errorf("list rows:\n%s\nwant %v", strings.Join(table, "\n"), want)
	}

	var list []state
	if err := json.Unmarshal([]byte(r.ok("list", "--format", "json")), &list); err != nil {
		t.Fatalf("list --format json: %v", err)
	}
	if len(list) != 2 {
		t.Fatalf("list --format json: %d entries, want 2: %+v", len(list), list)
	}
	for _, s := range list {
		if want[s.ID] != s.Status || s.Pid != r.state(s.ID).Pid || s.Pid <= 0 {
			t.Errorf("list entry %+v: want status %q and the pid of state", s, want[s.ID])
		}
	}

	ids := strings.Fields(r.ok("list", "-q"))
	if len(ids) != 2 || want[ids[0]] == "" || want[ids[1]] == "" || ids[0] == ids[1] {
		t.Errorf("list -q printed %q, want the ids %s and %s", ids, created, running)
	}
}

// TestNoLeftovers checks that a container leaves nothing behind after a
// foreground run, after create/start/delete, and after delete --force.
func TestNoLeftovers(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	bundle := newBundle(t, nil, "true")
	id := r.newID()
	r.ok("run", "--bundle", bundle, id)
	r.assertNoLeftovers(id, bundle)

	id = r.create(bundle)
	r.ok("start", id)
	r.waitStatus(id, "stopped")
	r.ok("delete", id)
	r.assertNoLeftovers(id, bundle)

	// delete without --force kills a created container's waiting init.
	bundle = newBundle(t, nil, sleeper...)
	id = r.create(bundle)
	r.ok("delete", id)
	r.assertNoLeftovers(id, bundle)

	for _, id := range []string{r.create(bundle), r.detached(bundle)} {
		r.ok("delete", "--force", id)
		r.assertNoLeftovers(id, bundle)
	}
	if out := strings.TrimSpace(r.ok("list", "-q")); out != "" {
		t.Errorf("list -q after deleting everything: %q", out)
	}
}
