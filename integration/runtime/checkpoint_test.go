package runtime_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/integration/testenv"
)

// criuCanCheckpoint is met when criu is installed and `criu check` accepts
// this kernel (it does not on every one: it may fail to parse the vdso).
var criuCanCheckpoint = testenv.Requirement{Name: "criu can checkpoint on this kernel", Check: func() (bool, string) {
	if _, err := exec.LookPath("criu"); err != nil {
		return false, "criu is not installed"
	}
	out, err := exec.Command("criu", "check").CombinedOutput()
	if err != nil || strings.Contains(string(out), "Error") {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return false, "criu check: " + lines[len(lines)-1]
	}
	return true, ""
}}

func TestCheckpointRestore(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, criuCanCheckpoint)
	r := newRuntime(t)
	bundle := newBundle(t, nil, "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done")
	id := r.detached(bundle)
	r.waitOutput(id, "ok\n", "sh", "-c", "test -s /tmp/count && echo ok")
	images := filepath.Join(t.TempDir(), "images")
	r.ok("checkpoint", "--image-path", images, id)
	if _, stderr, code := r.run("state", id); code == 0 {
		r.ok("delete", "--force", id)
	} else if !strings.Contains(stderr, "not exist") {
		t.Fatalf("state after checkpoint: exit %d: %s", code, stderr)
	}
	r.ok("restore", "-d", "--image-path", images, "--bundle", bundle, id)
	if s := r.state(id); s.Status != "running" {
		t.Fatalf("restored container is %s, want running", s.Status)
	}
	// The counter the process kept in memory goes on from where it was.
	r.waitOutput(id, "ok\n", "sh", "-c", "test $(cat /tmp/count) -gt 1 && echo ok")
}

// TestBinaryIsSealed checks the CVE-2019-5736 protection: the container's
// init runs from a sealed copy or read-only view of the runtime binary, never
// from the binary on the host's disk.
func TestBinaryIsSealed(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	if !r.berth() {
		t.Skip("checks berth-runtime's debug log")
	}
	_, stderr, code := r.run("--debug", "run", "--bundle", newBundle(t, nil, "true"), r.newID())
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	contains(t, "debug log", stderr, "exeseal: using /proc/self/exe clone")
}
