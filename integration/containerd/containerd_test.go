//go:build linux

package containerd

import (
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/integration/internal/ctrd"
)

func TestRunExitCode(t *testing.T) {
	e := newCtrEnv(t)

	if out, code := e.Exec(e.runArgs([]string{"--rm"}, "true", "true")...); code != 0 {
		t.Fatalf("ctr run true: exit status %d, want 0\n%s", code, out)
	}
	e.requireRuntimeRan("true", "create", "start", "delete")

	out, code := e.Exec(e.runArgs([]string{"--rm"}, "exit7", "sh", "-c", "cat /etc/berth-release; exit 7")...)
	if code != 7 {
		t.Errorf("ctr run sh -c 'exit 7': exit status %d, want 7\n%s", code, out)
	}
	if !strings.Contains(out, "berth test image") {
		t.Errorf("ctr run output %q lacks the container's output %q", out, "berth test image")
	}
	if _, err := e.state("exit7"); err == nil {
		t.Errorf("the runtime still has state for exit7 after ctr run --rm")
	}
}

func TestDetachedExecKillDelete(t *testing.T) {
	e := newCtrEnv(t)
	const id = "detached"
	e.Run(e.runArgs([]string{"-d"}, id, "sleep", "1000")...)
	e.requireRuntimeRan(id, "create", "start")

	pid, status := e.Task(id)
	if status != "RUNNING" {
		t.Fatalf("after ctr run -d, task %s is %q, want RUNNING", id, status)
	}
	s, err := e.state(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != "running" || s.Pid != pid {
		t.Errorf("runtime state: status %q pid %d; want running, pid %d as ctr shows", s.Status, s.Pid, pid)
	}

	out := e.Run(e.execArgs("probe", id, "sh", "-c", "cat /etc/berth-release; cat /proc/1/cmdline")...)
	if want := "berth test image\nsleep\x001000\x00"; out != want {
		t.Errorf("ctr task exec output %q, want %q", out, want)
	}
	if out, code := e.Exec(e.execArgs("fail", id, "sh", "-c", "exit 3")...); code != 3 {
		t.Errorf("ctr task exec sh -c 'exit 3': exit status %d, want 3\n%s", code, out)
	}

	e.Run("task", "kill", "--signal", "SIGKILL", id)
	e.WaitStatus(id, "STOPPED")
	e.Run("task", "delete", id)
	if _, status := e.Task(id); status != "" {
		t.Errorf("after ctr task delete, task %s is still listed as %s", id, status)
	}
	if _, err := e.state(id); err == nil {
		t.Errorf("the runtime still has state for %s after ctr task delete", id)
	}
	e.Run("container", "delete", id)
	if out := e.Run("container", "ls", "--quiet"); strings.Contains(out, id) {
		t.Errorf("after ctr container delete, ctr container ls still shows it:\n%s", out)
	}
	e.requireRuntimeRan(id, "exec", "kill", "delete")
}

// TestTTY runs ctr on a terminal, as a user at a shell does: ctr run -t
// asks the shim for a console, which the runtime hands over through
// --console-socket.
func TestTTY(t *testing.T) {
	e := newCtrEnv(t)
	ptmx, ptsName, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	pts, err := os.OpenFile(ptsName, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ctrd.CmdTimeout)
	defer cancel()
	cmd := e.Command(ctx, e.runArgs([]string{"--rm", "-t"}, "tty", "sh", "-c", "busybox tty; test -t 1 && echo stdout-is-a-tty")...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	pts.Close()
	if err != nil {
		t.Fatal(err)
	}
	output := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO once ctr, the last holder of the terminal, exits
		output <- string(b)
	}()
	err = cmd.Wait()
	out := <-output
	if err != nil {
		t.Fatalf("ctr run -t: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^/dev/pts/[0-9]+\r*$`).MatchString(out) || !strings.Contains(out, "stdout-is-a-tty") {
		t.Errorf("ctr run -t: the container's stdio is not a terminal; output %q", out)
	}
	e.requireRuntimeRan("tty", "create", "start")
	if argv, _ := os.ReadFile(e.argvLog); !regexp.MustCompile(`\bcreate .*--console-socket .*\btty\n`).Match(argv) {
		t.Errorf("containerd did not create the container with --console-socket:\n%s", argv)
	}
}

func TestPauseResume(t *testing.T) {
	e := newCtrEnv(t)
	const id = "pause"
	e.Run(e.runArgs([]string{"-d"}, id, "sleep", "1000")...)

	e.Run("task", "pause", id)
	if _, status := e.Task(id); status != "PAUSED" {
		t.Errorf("after ctr task pause, task %s is %q, want PAUSED", id, status)
	}
	if s, err := e.state(id); err != nil || s.Status != "paused" {
		t.Errorf("after ctr task pause, runtime state %+v (%v), want paused", s, err)
	}

	e.Run("task", "resume", id)
	if _, status := e.Task(id); status != "RUNNING" {
		t.Errorf("after ctr task resume, task %s is %q, want RUNNING", id, status)
	}
	if s, err := e.state(id); err != nil || s.Status != "running" {
		t.Errorf("after ctr task resume, runtime state %+v (%v), want running", s, err)
	}
	// A frozen container could not run this.
	if out := e.Run(e.execArgs("thawed", id, "echo", "thawed")...); out != "thawed\n" {
		t.Errorf("ctr task exec after resume: output %q, want %q", out, "thawed\n")
	}
	e.requireRuntimeRan(id, "create", "start", "pause", "resume", "exec")
}

func TestMetrics(t *testing.T) {
	e := newCtrEnv(t)
	const id = "metrics"
	e.Run(e.runArgs([]string{"-d"}, id, "sleep", "1000")...)
	out := e.Run("task", "metrics", id)
	if !regexp.MustCompile(`(?m)^memory\.\S+\s+[0-9]+\s*$`).MatchString(out) {
		t.Errorf("ctr task metrics shows no memory metrics:\n%s", out)
	}
	// The runtime put the container's one process in the cgroup the spec named.
	if !regexp.MustCompile(`(?m)^pids\.current\s+1\s*$`).MatchString(out) {
		t.Errorf("ctr task metrics: want pids.current 1:\n%s", out)
	}
	e.requireRuntimeRan(id, "create", "start")
}
