//go:build linux

package podman

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunExitCode(t *testing.T) {
	e := newPodmanEnv(t)

	cidfile := filepath.Join(e.dir, "echo.cid")
	if out := e.run(e.runArgs([]string{"--rm", "--cidfile", cidfile}, "echo", "hi")...); out != "hi\n" {
		t.Errorf("podman run echo hi: output %q, want %q", out, "hi\n")
	}
	id, err := os.ReadFile(cidfile)
	if err != nil {
		t.Fatal(err)
	}
	e.requireRuntimeRan(string(id), "create", "start", "delete")

	stdout, stderr, code := e.exec(e.runArgs([]string{"--rm"}, "sh", "-c", "cat /etc/berth-release; exit 7")...)
	if code != 7 {
		t.Errorf("podman run sh -c 'exit 7': exit status %d, want 7\n%s%s", code, stdout, stderr)
	}
	if stdout != "berth test image\n" {
		t.Errorf("podman run output %q, want %q", stdout, "berth test image\n")
	}
	if out := e.run("ps", "--all", "--quiet"); out != "" {
		t.Errorf("podman run --rm left containers:\n%s", out)
	}
}

func TestDetachedExecStopRemove(t *testing.T) {
	e := newPodmanEnv(t)
	const name = "detached"
	// sh as PID 1 ignores SIGTERM unless it traps it; exiting 0 on it shows
	// that podman stop's SIGTERM reached the container.
	id := strings.TrimSpace(e.run(e.runArgs([]string{"--detach", "--name", name}, "sh", "-c", `trap "exit 0" TERM; sleep 1000 & wait`)...))
	e.requireRuntimeRan(id, "create", "start")
	if got := strings.TrimSpace(e.run("inspect", "--format", "{{.OCIRuntime}} {{.State.Status}}", name)); got != e.wrapper+" running" {
		t.Errorf("podman inspect: runtime and status %q, want %q", got, e.wrapper+" running")
	}

	out := e.run("exec", name, "sh", "-c", "cat /etc/berth-release; ulimit -Hn; cat /proc/1/cmdline")
	if want := "berth test image\n" + e.nofile + "\nsh\x00-c\x00"; !strings.HasPrefix(out, want) {
		t.Errorf("podman exec: output %q, want it to start with %q: the image's release file, the nofile limit podman set, PID 1's command line", out, want)
	}
	if stdout, stderr, code := e.exec("exec", name, "sh", "-c", "exit 3"); code != 3 {
		t.Errorf("podman exec sh -c 'exit 3': exit status %d, want 3\n%s%s", code, stdout, stderr)
	}

	e.run("stop", "--time", "60", name)
	if got := strings.TrimSpace(e.run("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)); got != "exited 0" {
		t.Errorf("after podman stop, status and exit code %q, want %q (sh trapped SIGTERM)", got, "exited 0")
	}

	e.run("rm", name)
	if out := e.run("ps", "--all", "--quiet"); out != "" {
		t.Errorf("after podman rm, podman ps --all still lists:\n%s", out)
	}
	e.requireRuntimeRan(id, "exec", "kill", "delete")
}
