//go:build linux

package shim

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/integration/internal/ctrd"
)

// TestContainerdRestart restarts containerd while a container runs: the
// shim outlives it, and the new containerd finds the task through the
// shim's address in the bundle and drives it as before.
func TestContainerdRestart(t *testing.T) {
	e := newPrivateEnv(t) // a restart would disturb the other tests
	const id = "survivor"
	e.Run(e.runArgs([]string{"-d"}, id, "sleep", "1000")...)
	pid, _ := e.Task(id)
	shim := e.shimOf(id)
	shimStart, _ := startTime(shim.PID)

	if err := e.D.Restart(); err != nil {
		t.Fatal(err)
	}
	if got, status := e.Task(id); status != "RUNNING" || got != pid {
		t.Fatalf("after containerd restarted, task %s is %q with pid %d; want RUNNING with pid %d", id, status, got, pid)
	}
	if processGone(shim.PID, shimStart) {
		t.Errorf("the shim (pid %d) did not outlive containerd's restart", shim.PID)
	}
	if out := e.Run(e.execArgs("after", id, "echo", "reconnected")...); out != "reconnected\n" {
		t.Errorf("ctr task exec after containerd restarted: output %q, want %q", out, "reconnected\n")
	}
	e.Run("task", "kill", "--signal", "SIGKILL", id)
	e.WaitStatus(id, "STOPPED")
	if out := e.Run("task", "delete", id); !strings.Contains(out, "exit code 137") {
		t.Errorf("ctr task delete of a task killed with SIGKILL does not show exit code 137:\n%s", out)
	}
	e.Run("container", "rm", id)
}

// TestShimKilled kills a running task's shim with SIGKILL: containerd sees
// the connection go, runs the shim binary's delete subcommand to clean up,
// and nothing of the container may remain.
func TestShimKilled(t *testing.T) {
	e := newEnv(t)
	const id = "orphan"
	e.Run(e.runArgs([]string{"-d"}, id, "sleep", "1000")...)
	initPID, _ := e.Task(id)
	initStart, _ := startTime(initPID)
	bundle := e.bundle(id)
	address, err := os.ReadFile(filepath.Join(bundle, "address"))
	if err != nil {
		t.Fatalf("the shim's address in the bundle: %v", err)
	}
	t.Cleanup(func() {
		if !processGone(initPID, initStart) {
			t.Errorf("the container's init %d was left running; killing it", initPID)
			unix.Kill(initPID, unix.SIGKILL)
		}
		// containerd-shim-runc-v2 (1.6) leaves its socket when killed.
		if sock, ok := strings.CutPrefix(strings.TrimSpace(string(address)), "unix://"); ok {
			if err := os.Remove(sock); err == nil {
				t.Logf("removed the killed shim's socket %s", sock)
			}
		}
	})

	shim := e.shimOf(id)
	if err := unix.Kill(shim.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	status := e.WaitStatus(id, "", "STOPPED", "UNKNOWN")
	t.Logf("after its shim was killed, task %s is %q (\"\": no longer listed)", id, status)
	if out, code := e.Exec("task", "delete", id); code != 0 && !strings.Contains(out, "not found") {
		t.Errorf("ctr task delete after the shim was killed: exit status %d\n%s", code, out)
	}
	e.Run("container", "rm", id)

	left := func() (what []string) {
		if !processGone(initPID, initStart) {
			what = append(what, "the container's init process")
		}
		for _, s := range e.Shims() {
			if s.ID == id {
				what = append(what, "a shim")
			}
		}
		if cg := e.containerCgroups(id); len(cg) > 0 {
			what = append(what, "cgroups "+strings.Join(cg, " "))
		}
		if m := ctrd.Mounts(bundle); len(m) > 0 {
			what = append(what, "mounts "+strings.Join(m, " "))
		}
		if _, err := os.Stat(bundle); err == nil {
			what = append(what, "the bundle "+bundle)
		}
		return what
	}
	if !waitUntil(ctrd.WaitTimeout, func() bool { return len(left()) == 0 }) {
		t.Errorf("%v after its shim was killed and the container removed, these remain: %s", ctrd.WaitTimeout, strings.Join(left(), "; "))
	}
}

// TestMissingRuntimeBinary gives the shim a runtime binary that does not
// exist: ctr run fails naming it, and containerd keeps serving.
func TestMissingRuntimeBinary(t *testing.T) {
	e := newEnv(t)
	const id, missing = "missing", "/nonexistent/berth-no-such-runtime"
	out, code := e.Exec(e.dropInRunArgs(missing, filepath.Join(e.D.Dir, "runc-root"), []string{"--rm"}, id, "true")...)
	if code == 0 || !strings.Contains(out, missing) {
		t.Errorf("ctr run --runc-binary %s: exit status %d, output %q; want a failure naming the binary", missing, code, out)
	}
	if _, status := e.Task(id); status != "" {
		t.Errorf("the failed ctr run left task %s %s", id, status)
	}
	if !waitUntil(ctrd.WaitTimeout, func() bool {
		for _, s := range e.Shims() {
			if s.ID == id {
				return false
			}
		}
		return true
	}) {
		t.Errorf("the shim of the failed ctr run is still running after %v", ctrd.WaitTimeout)
	}

	if out, code := e.Exec(e.runArgs([]string{"--rm"}, "after-missing", "echo", "still-serving")...); code != 0 || out != "still-serving\n" {
		t.Errorf("ctr run after the failed one: exit status %d, output %q; want 0, %q", code, out, "still-serving\n")
	}
}

// TestRuncOptions passes runc options (ctr --runc-binary, --runc-root) to
// the shim, which must run that binary with that root (plus the
// namespace), and not the runc on its PATH.
func TestRuncOptions(t *testing.T) {
	e := newEnv(t)
	const id = "options"
	root := filepath.Join(e.D.Dir, "runc-root")
	binary := filepath.Join(e.D.BinDir(), optionRuntime)
	if out, code := e.Exec(e.dropInRunArgs(binary, root, []string{"--rm"}, id, "sh", "-c", "exit 3")...); code != 3 {
		t.Errorf("ctr run --runc-binary %s sh -c 'exit 3': exit status %d, want 3\n%s", binary, code, out)
	}
	for _, cmd := range []string{"create", "start", "delete"} {
		if !e.runtimeRan([]string{optionRuntime}, "--root "+regexp.QuoteMeta(filepath.Join(root, e.NS))+" (.* )?"+cmd, id) {
			t.Errorf("the shim did not run the --runc-binary with --root %s/%s to %s the container; it ran:\n%s", root, e.NS, cmd, e.runtimeLines(e.NS))
		}
	}
	if e.runtimeRan(defaultRuntimes, "create", id) {
		t.Errorf("the shim ran its default runtime, not the --runc-binary:\n%s", e.runtimeLines(e.NS))
	}
}
