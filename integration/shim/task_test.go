//go:build linux

package shim

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/console"

	"github.com/berth-project/berth/integration/internal/ctrd"
)

func TestRunExitCodeAndStdio(t *testing.T) {
	e := newEnv(t)

	if out, code := e.Exec(e.runArgs([]string{"--rm"}, "true", "true")...); code != 0 {
		t.Fatalf("ctr run --rm true: exit status %d, want 0\n%s", code, out)
	}
	for _, cmd := range []string{"create", "start", "delete"} {
		if !e.runtimeRan(defaultRuntimes, cmd, "true") {
			t.Errorf("the shim did not run the runtime under test (its default, %s, found on PATH) to %s the container; it ran:\n%s", strings.Join(defaultRuntimes, " or "), cmd, e.runtimeLines(e.NS))
		}
	}

	if out, code := e.Exec(e.runArgs([]string{"--rm"}, "exit7", "sh", "-c", "exit 7")...); code != 7 {
		t.Errorf("ctr run sh -c 'exit 7': exit status %d, want 7\n%s", code, out)
	}

	stdout, stderr, code := e.Output(e.runArgs([]string{"--rm"}, "streams", "sh", "-c", "echo out; echo err >&2")...)
	if code != 0 || stdout != "out\n" || stderr != "err\n" {
		t.Errorf("ctr run sh -c 'echo out; echo err >&2': exit status %d, stdout %q, stderr %q; want 0, %q, %q", code, stdout, stderr, "out\n", "err\n")
	}

	// stdin reaches the container, and so does its end: wc sees EOF. ctr
	// passes the end on (CloseIO) only once it has the task, so it must
	// not come sooner.
	stdin, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	cmd := e.Command(e.ctx(), e.runArgs([]string{"--rm"}, "stdin", "sh", "-c", "wc -l; echo stdin-closed")...)
	cmd.Stdin = stdin
	run := startBg(t, cmd)
	stdin.Close()
	io.WriteString(stdinW, "a\nb\nc\n")
	e.WaitStatus("stdin", "RUNNING")
	stdinW.Close()
	if code := run.wait(); code != 0 || !slices.Equal(strings.Fields(run.out.String()), []string{"3", "stdin-closed"}) {
		t.Errorf("ctr run sh -c 'wc -l; echo stdin-closed' with three lines on stdin: exit status %d, output %q; want 3 lines counted, then stdin-closed", code, run.out)
	}

	if out := e.Run("task", "ls", "--quiet"); out != "" {
		t.Errorf("tasks left after ctr run --rm:\n%s", out)
	}
	if out := e.Run("container", "ls", "--quiet"); out != "" {
		t.Errorf("containers left after ctr run --rm:\n%s", out)
	}
}

func TestExecKillDelete(t *testing.T) {
	e := newEnv(t)
	const id = "exec"
	e.Run(e.runArgs([]string{"-d"}, id, "sleep", "1000")...)
	initPID, status := e.Task(id)
	if status != "RUNNING" {
		t.Fatalf("after ctr run -d, task %s is %q, want RUNNING", id, status)
	}

	stdout, stderr, code := e.Output(e.execArgs("probe", id, "sh", "-c", "echo out; echo err >&2; exit 5")...)
	if code != 5 || stdout != "out\n" || stderr != "err\n" {
		t.Errorf("ctr task exec sh -c 'echo out; echo err >&2; exit 5': exit status %d, stdout %q, stderr %q; want 5, %q, %q", code, stdout, stderr, "out\n", "err\n")
	}

	// An exec id names one process of the task while it lives.
	busy := startBg(t, e.Command(e.ctx(), e.execArgs("busy", id, "sleep", "1000")...))
	var ps []int
	if !waitUntil(ctrd.WaitTimeout, func() bool { ps = pids(e.Run("task", "ps", id)); return len(ps) == 2 }) {
		t.Fatalf("ctr task ps %s: want 2 processes (init and exec busy), got %v; ctr task exec busy: %s", id, ps, busy.out)
	}
	if !slices.Contains(ps, initPID) {
		t.Errorf("ctr task ps %s lists %v, not the init process %d", id, ps, initPID)
	}
	if out, code := e.Exec(e.execArgs("busy", id, "true")...); code == 0 || !strings.Contains(out, "already exists") {
		t.Errorf("a second ctr task exec --exec-id busy while busy runs: exit status %d, output %q; want a failure: already exists", code, out)
	}
	e.Run("task", "kill", "--exec-id", "busy", "--signal", "SIGKILL", id)
	if code := busy.wait(); code != 137 {
		t.Errorf("ctr task exec busy, killed with SIGKILL: exit status %d, want 137\n%s", code, busy.out)
	}
	if ps := pids(e.Run("task", "ps", id)); !slices.Equal(ps, []int{initPID}) {
		t.Errorf("after exec busy was killed, ctr task ps %s lists %v, want only init %d", id, ps, initPID)
	}
	// The runtime is done with an exec's pid and process files once it
	// runs: none may pile up in the bundle, one pair per exec.
	if left, _ := filepath.Glob(filepath.Join(e.bundle(id), "probe*")); len(left) != 0 {
		t.Errorf("after exec probe ended and was deleted, its files remain in the bundle: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(e.bundle(id), "busy*")); len(left) != 0 {
		t.Errorf("after exec busy started, its files remain in the bundle: %v", left)
	}

	e.Run("task", "kill", "--signal", "SIGKILL", id)
	e.WaitStatus(id, "STOPPED")
	if out := e.Run("task", "delete", id); !strings.Contains(out, "exit code 137") {
		t.Errorf("ctr task delete of a task killed with SIGKILL does not show exit code 137:\n%s", out)
	}
	if _, status := e.Task(id); status != "" {
		t.Errorf("after ctr task delete, task %s is still listed as %s", id, status)
	}
	e.Run("container", "rm", id)
	if out := e.Run("container", "ls", "--quiet"); strings.Contains(out, id) {
		t.Errorf("after ctr container rm, ctr container ls still shows it:\n%s", out)
	}
}

// TestTTY runs ctr on a terminal, as a user at a shell does: ctr run -t
// asks the shim for a console; typed input reaches the shell on it, and a
// resize of ctr's terminal (ctr passes it on as ResizePty) reaches it too.
func TestTTY(t *testing.T) {
	e := newEnv(t)
	const id = "tty"
	p := startOnPty(t, e.Command(e.ctx(), e.runArgs([]string{"--rm", "-t"}, id, "sh")...), 24, 80)

	p.send("tty; echo answer-$((6*7))\n")
	p.expect(`(?m)^/dev/pts/[0-9]+\r*$`)
	p.expect(`answer-42`)

	p.send("stty size\n")
	p.expect(`(?m)^24 80\r*$`)
	if err := p.ptmx.Resize(console.WinSize{Height: 40, Width: 120}); err != nil {
		t.Fatal(err)
	}
	// ctr learns of the resize from SIGWINCH: give it a moment (at most 10s).
	p.send(`i=0; while [ "$(stty size)" != "40 120" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo size-$(stty size | tr ' ' x)` + "\n")
	if got := p.expect(`size-[0-9]+x[0-9]+`); got != "size-40x120" {
		t.Errorf("after ctr's terminal was resized to 40x120, stty size in the container prints %s", got)
	}

	p.send("exit 3\n")
	if code := p.bg.wait(); code != 3 {
		t.Errorf("ctr run -t, shell exits 3: ctr exit status %d, want 3; output:\n%q", code, p.out)
	}
}

func TestPauseResume(t *testing.T) {
	e := newEnv(t)
	const id = "pause"
	e.Run(e.runArgs([]string{"-d"}, id, "sleep", "1000")...)

	e.Run("task", "pause", id)
	if _, status := e.Task(id); status != "PAUSED" {
		t.Errorf("after ctr task pause, task %s is %q, want PAUSED", id, status)
	}
	if s := e.freezerState(id); s != "" && s != "FROZEN" {
		t.Errorf("after ctr task pause, the container's cgroup is %s, want FROZEN", s)
	}

	e.Run("task", "resume", id)
	if _, status := e.Task(id); status != "RUNNING" {
		t.Errorf("after ctr task resume, task %s is %q, want RUNNING", id, status)
	}
	if s := e.freezerState(id); s != "" && s != "THAWED" {
		t.Errorf("after ctr task resume, the container's cgroup is %s, want THAWED", s)
	}
	// A frozen container could not run this.
	if out := e.Run(e.execArgs("thawed", id, "echo", "thawed")...); out != "thawed\n" {
		t.Errorf("ctr task exec after resume: output %q, want %q", out, "thawed\n")
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	const id = "metrics"
	e.Run(e.runArgs([]string{"-d"}, id, "sleep", "1000")...)
	out := e.Run("task", "metrics", id)
	if !regexp.MustCompile(`(?m)^memory\.\S+\s+[1-9][0-9]*\s*$`).MatchString(out) {
		t.Errorf("ctr task metrics shows no memory metrics:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^pids\.current\s+1\s*$`).MatchString(out) {
		t.Errorf("ctr task metrics: want pids.current 1 (sleep alone):\n%s", out)
	}
}

func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	for _, want := range []int{0, 1, 42, 255} {
		id := fmt.Sprintf("exit%d", want)
		if out, code := e.Exec(e.runArgs([]string{"--rm"}, id, "sh", "-c", fmt.Sprintf("exit %d", want))...); code != want {
			t.Errorf("ctr run sh -c 'exit %d': exit status %d\n%s", want, code, out)
		}
	}

	// A process that a signal kills exits 128+signal.
	const id = "signals"
	e.Run(e.runArgs([]string{"-d"}, id, "sleep", "1000")...)
	if out, code := e.Exec(e.execArgs("term", id, "sh", "-c", "kill -TERM $$")...); code != 128+15 {
		t.Errorf("ctr task exec sh -c 'kill -TERM $$': exit status %d, want %d\n%s", code, 128+15, out)
	}

	// ctr task kill sends SIGTERM by default; an init with a handler for it
	// exits as it chooses.
	const trap = "trap"
	run := startBg(t, e.Command(e.ctx(), e.runArgs([]string{"--rm"}, trap, "sh", "-c", "trap 'exit 9' TERM; echo ready; while :; do sleep 0.1; done")...))
	if !waitUntil(ctrd.WaitTimeout, func() bool { return strings.Contains(run.out.String(), "ready") }) {
		t.Fatalf("the container did not set its trap within %v: %s", ctrd.WaitTimeout, run.out)
	}
	e.Run("task", "kill", trap)
	if code := run.wait(); code != 9 {
		t.Errorf("init trapping SIGTERM with exit 9, sent ctr task kill: ctr run exit status %d, want 9\n%s", code, run.out)
	}
}

// TestCreateThenStart starts the task of a container made with
// ctr container create: ctr task start creates the task and starts it.
func TestCreateThenStart(t *testing.T) {
	e := newEnv(t)
	const id = "created"
	e.RemoveOnCleanup(id)
	e.Run("container", "create", "--runtime", e.tg.runtime, "--", image, id, "sh", "-c", "echo started; exit 42")
	if _, status := e.Task(id); status != "" {
		t.Errorf("ctr container create made a task (%s); it should only make the container", status)
	}
	for i := range 2 { // a container's task can be made again once deleted
		out, code := e.Exec("task", "start", "--fifo-dir", e.D.FIFODir(), id)
		if code != 42 || out != "started\n" {
			t.Errorf("ctr task start #%d: exit status %d, output %q; want 42, %q", i+1, code, out, "started\n")
		}
		if _, status := e.Task(id); status != "" {
			t.Errorf("ctr task start #%d left its task %s", i+1, status)
		}
	}

	// Detached: the task stays, stopped, with its exit status, until deleted.
	e.Run("task", "start", "--detach", "--fifo-dir", e.D.FIFODir(), id)
	e.WaitStatus(id, "STOPPED")
	if out := e.Run("task", "delete", id); !strings.Contains(out, "exit code 42") {
		t.Errorf("ctr task delete of a task that exited 42 does not show exit code 42:\n%s", out)
	}
	e.Run("container", "rm", id)
}
