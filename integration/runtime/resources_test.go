package runtime_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-project/berth/integration/testenv"
)

// TestPauseResume freezes and thaws a container.
func TestPauseResume(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	id := r.detached(newBundle(t, nil, sleeper...))
	r.ok("pause", id)
	if s := r.state(id); s.Status != "paused" {
		t.Fatalf("after pause: status %s, want paused", s.Status)
	}
	stderr, code := r.fails("exec", id, "true")
	contains(t, "exec in a paused container", stderr, "paused")
	if code != 255 {
		t.Errorf("exec in a paused container: exit %d, want 255", code)
	}
	r.ok("resume", id)
	if s := r.state(id); s.Status != "running" {
		t.Fatalf("after resume: status %s, want running", s.Status)
	}
	if out := r.ok("exec", id, "echo", "thawed"); out != "thawed\n" {
		t.Errorf("exec after resume: %q", out)
	}

	// A paused container is deleted with --force as containerd does it.
	bundle := newBundle(t, nil, sleeper...)
	id = r.detached(bundle)
	r.ok("pause", id)
	r.ok("delete", "--force", id)
	r.fails("state", id)
	r.assertNoLeftovers(id, bundle)
}

// TestPs lists a container's processes as JSON and as ps's table.
func TestPs(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	id := r.detached(newBundle(t, nil, sleeper...))
	init := r.state(id).Pid

	var pids []int
	if err := json.Unmarshal([]byte(r.ok("ps", "--format", "json", id)), &pids); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pids, []int{init}) {
		t.Errorf("ps --format json: %v, want [%d]", pids, init)
	}

	lines := strings.Split(strings.TrimSpace(r.ok("ps", id)), "\n")
	if header := strings.Fields(lines[0]); !slices.Contains(header, "PID") || !slices.Contains(header, "CMD") {
		t.Errorf("ps: header %q, want ps -ef's columns", lines[0])
	}
	if len(lines) != 2 || !slices.Contains(strings.Fields(lines[1]), strconv.Itoa(init)) {
		t.Errorf("ps: want the header and the init %d only:\n%s", init, strings.Join(lines, "\n"))
	}
}

// TestEventsStats prints one stats event.
func TestEventsStats(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	id := r.detached(newBundle(t, nil, sleeper...))
	out := r.ok("events", "--stats", id)
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
		t.Errorf("events --stats printed %d lines, want one JSON object:\n%s", n+1, out)
	}
	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			Memory *struct {
				Usage struct {
					Usage uint64 `json:"usage"`
				} `json:"usage"`
			} `json:"memory"`
			Pids *struct {
				Current uint64 `json:"current"`
			} `json:"pids"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("events --stats: %v\n%s", err, out)
	}
	if ev.Type != "stats" || ev.ID != id {
		t.Errorf("events --stats: type %q id %q, want stats and %s", ev.Type, ev.ID, id)
	}
	if ev.Data.Memory == nil || ev.Data.Memory.Usage.Usage == 0 {
		t.Errorf("events --stats: no memory usage in %s", out)
	}
	if ev.Data.Pids == nil || ev.Data.Pids.Current != 1 {
		t.Errorf("events --stats: want pids.current 1 (the init) in %s", out)
	}
}

// TestUpdate changes a running container's limits and checks its cgroup.
func TestUpdate(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	id := r.detached(newBundle(t, nil, sleeper...))
	pid := r.state(id).Pid
	memory := cgroupFile(t, pid, "memory", "memory.limit_in_bytes", "memory.max")
	pids := cgroupFile(t, pid, "pids", "pids.max", "pids.max")

	r.ok("update", "--memory", "64m", id)
	if got := readTrimmed(t, memory); got != "67108864" {
		t.Errorf("after update --memory 64m: %s is %s, want 67108864", memory, got)
	}

	file := filepath.Join(t.TempDir(), "resources.json")
	if err := os.WriteFile(file, []byte(`{"pids": {"limit": 42}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r.ok("update", "-r", file, id)
	if got := readTrimmed(t, pids); got != "42" {
		t.Errorf("after update -r {pids: {limit: 42}}: %s is %s, want 42", pids, got)
	}
	if got := readTrimmed(t, memory); got != "67108864" {
		t.Errorf("update -r with pids only changed %s to %s, want 67108864 kept", memory, got)
	}
	if out := r.ok("exec", id, "echo", "alive"); out != "alive\n" {
		t.Errorf("exec after update: %q", out)
	}
}
