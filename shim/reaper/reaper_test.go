package reaper

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// One reaper per process: two would steal each other's exits.
var (
	shared     *Reaper
	sharedErr  error
	sharedOnce sync.Once
)

func testReaper(t *testing.T) *Reaper {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = New() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// noSIGCHLD fails if SIGCHLD does the waking, which would hide a broken
// pidfd wait.
func noSIGCHLD(t *testing.T, r *Reaper) {
	t.Helper()
	fired := true
	r.sigchld.Do(func() { fired = false })
	if fired {
		t.Fatal("the reaper fell back to SIGCHLD")
	}
	// Do has run: undo it, so that a later EnableOrphanReaping still
	// subscribes.
	r.sigchld = sync.Once{}
}

// start starts a process that the reaper alone waits for, and releases
// Go's handle on it (a pidfd of its own).
func start(t *testing.T, args ...string) int {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	return pid
}

func receive(t *testing.T, ch <-chan Exit, what string) Exit {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("exit of %s not delivered", what)
		return Exit{}
	}
}

func TestRun(t *testing.T) {
	r := testReaper(t)
	e, err := r.Run(context.Background(), exec.Command("sh", "-c", "exit 7"))
	if err != nil || e.Status != 7 {
		t.Fatalf("Run: %+v, %v; want status 7", e, err)
	}
	e, err = r.Run(context.Background(), exec.Command("sh", "-c", "kill -9 $$"))
	if err != nil || e.Status != 137 {
		t.Fatalf("Run of a killed command: %+v, %v; want 137", e, err)
	}
	if _, err := r.Run(context.Background(), exec.Command("/nonexistent")); err == nil {
		t.Fatal("Run of a missing binary succeeded")
	}
	noSIGCHLD(t, r)
}

func TestRunKeepsCallerAttr(t *testing.T) {
	r := testReaper(t)
	cmd := exec.Command("sh", "-c", "exit 3")
	attr := cmd.SysProcAttr
	e, err := r.Run(context.Background(), cmd)
	if err != nil || e.Status != 3 {
		t.Fatalf("Run: %+v, %v; want 3", e, err)
	}
	if cmd.SysProcAttr != attr {
		t.Fatal("Run left its SysProcAttr in the command")
	}
	noSIGCHLD(t, r)
}

func TestRunContext(t *testing.T) {
	r := testReaper(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	e, err := r.Run(ctx, exec.Command("sleep", "100"))
	if err != nil || e.Status != 128+9 {
		t.Fatalf("Run past its context: %+v, %v; want 137", e, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("killed after %v", d)
	}
	noSIGCHLD(t, r)
}

func TestRunConcurrent(t *testing.T) {
	r := testReaper(t)
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			// Some exit at once, some later, so that exits race each
			// other and the registrations.
			script := fmt.Sprintf("exit %d", i)
			if i%3 == 0 {
				script = fmt.Sprintf("sleep 0.0%d; exit %d", i%10, i)
			}
			e, err := r.Run(context.Background(), exec.Command("sh", "-c", script))
			if err != nil || e.Status != i {
				errs <- fmt.Errorf("command %d: %+v, %v", i, e, err)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("concurrent commands not all delivered")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	noSIGCHLD(t, r)
}

func TestWatch(t *testing.T) {
	r := testReaper(t)

	// A process that exited and was reaped before anyone watched it is
	// remembered: another exit reaps it as unknown.
	pid := start(t, "true")
	waitZombie(t, pid)
	if _, err := r.Run(context.Background(), exec.Command("true")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Fatalf("%d not reaped with the next exit", pid)
	}
	if e := receive(t, r.Watch(pid, time.Time{}), "an early process"); e.Pid != pid || e.Status != 0 {
		t.Fatalf("early exit %+v", e)
	}

	// An exit recorded before the watched process started belongs to an
	// earlier process that had its pid: it is not handed over (here no
	// process has the pid any more, so the exit is lost: 255).
	stale := start(t, "sh", "-c", "exit 6")
	waitZombie(t, stale)
	if _, err := r.Run(context.Background(), exec.Command("true")); err != nil {
		t.Fatal(err)
	}
	if e := receive(t, r.Watch(stale, time.Now()), "a reused pid"); e.Status != 255 {
		t.Fatalf("a process started after an exit with its pid got that exit: %+v", e)
	}

	// A zombie not reaped yet: its pidfd is readable at once.
	zombie := start(t, "sh", "-c", "exit 4")
	waitZombie(t, zombie)
	if e := receive(t, r.Watch(zombie, time.Time{}), "a zombie"); e.Status != 4 {
		t.Fatalf("zombie exit %+v, want 4", e)
	}

	// A watched process's exit is delivered when it happens.
	late := start(t, "sh", "-c", "sleep 0.2; exit 3")
	if e := receive(t, r.Watch(late, time.Time{}), "a watched process"); e.Status != 3 {
		t.Fatalf("late exit %+v, want 3", e)
	}

	// A pid that exited long ago (or never was our child) must not hang.
	if e := receive(t, r.Watch(1<<22+1, time.Time{}), "a pid that does not exist"); e.Status != 255 {
		t.Fatalf("lost exit %+v, want 255", e)
	}
	noSIGCHLD(t, r)
}

// A command's status goes to its Run even while its pid is watched as a
// container's.
func TestCommandNotMistaken(t *testing.T) {
	r := testReaper(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			cmd := exec.Command("sh", "-c", "sleep 0.05; exit 9")
			e, err := r.Run(context.Background(), cmd)
			if err != nil || e.Status != 9 {
				t.Errorf("Run: %+v, %v", e, err)
			}
		})
	}
	c := start(t, "sh", "-c", "sleep 0.1; exit 5")
	if e := receive(t, r.Watch(c, time.Time{}), "a container process"); e.Status != 5 {
		t.Fatalf("watched exit %+v", e)
	}
	wg.Wait()
}

func TestForget(t *testing.T) {
	r := testReaper(t)
	fds, gs := baseline(t)
	var pids []int
	for range 10 {
		pid := start(t, "sleep", "100")
		pids = append(pids, pid)
		ch := r.Watch(pid, time.Time{})
		r.Forget(pid)
		select {
		case e := <-ch:
			t.Fatalf("forgotten watch delivered %+v", e)
		default:
		}
	}
	settle(t, fds, gs)
	// Watching again replaces the first watch.
	pid := start(t, "sleep", "100")
	r.Watch(pid, time.Time{})
	again := r.Watch(pid, time.Time{})
	settle(t, fds+1, gs+1)
	syscall.Kill(pid, syscall.SIGKILL)
	if e := receive(t, again, "a process watched twice"); e.Status != 137 {
		t.Fatalf("exit %+v", e)
	}
	settle(t, fds, gs)
	// The forgotten ones are reaped with the next exit, as unknown.
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
		waitZombie(t, pid)
	}
	if _, err := r.Run(context.Background(), exec.Command("true")); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if e := receive(t, r.Watch(pid, time.Time{}), "a forgotten process"); e.Status != 137 {
			t.Fatalf("forgotten exit %+v", e)
		}
	}
	settle(t, fds, gs)
	noSIGCHLD(t, r)
}

func TestNoLeak(t *testing.T) {
	r := testReaper(t)
	fds, gs := baseline(t)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if _, err := r.Run(context.Background(), exec.Command("true")); err != nil {
				t.Error(err)
			}
			pid := start(t, "sh", "-c", "exit "+strconv.Itoa(i))
			if e := receive(t, r.Watch(pid, time.Time{}), "a watched process"); e.Status != i {
				t.Errorf("exit %+v, want %d", e, i)
			}
		})
	}
	wg.Wait()
	settle(t, fds, gs)
	noSIGCHLD(t, r)
}

// baseline is the count of open fds and goroutines once those of the
// tests before have finished.
func baseline(t *testing.T) (fds, gs int) {
	t.Helper()
	same := 0
	for same < 20 {
		f, g := countFDs(t), runtime.NumGoroutine()
		if f == fds && g == gs {
			same++
		} else {
			fds, gs, same = f, g, 0
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fds, gs
}

// settle waits for the open fds and goroutines to come back to fds and gs.
func settle(t *testing.T, fds, gs int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, g := countFDs(t), runtime.NumGoroutine()
		if f == fds && g == gs {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d fds and %d goroutines, want %d and %d\n%s", f, g, fds, gs, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // ReadDir's own
}

func procState(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}

func waitZombie(t *testing.T, pid int) {
	t.Helper()
	for range 500 {
		if procState(pid) == "Z" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d did not become a zombie (state %q)", pid, procState(pid))
}

// orphan runs a command that leaves a child behind, exiting after delay,
// and returns the orphan's pid.
func orphan(t *testing.T, r *Reaper, delay string) int {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("sh", "-c", "sleep "+delay+" & echo $!")
	cmd.Stdout = out
	if e, err := r.Run(context.Background(), cmd); err != nil || e.Status != 0 {
		t.Fatalf("Run: %+v, %v", e, err)
	}
	out.Seek(0, 0)
	line, _ := bufio.NewReader(out).ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("orphan pid %q: %v", line, err)
	}
	return pid
}

// TestOrphanReaping runs in a process of its own: SIGCHLD, once subscribed,
// would wake the other tests' waits.
func TestOrphanReaping(t *testing.T) {
	if os.Getenv("REAPER_ORPHAN_TEST") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOrphanReaping$", "-test.v")
		cmd.Env = append(os.Environ(), "REAPER_ORPHAN_TEST=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestOrphanReaping") {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	// Nothing reaps an orphan nobody watches...
	pid := orphan(t, r, "0.1")
	waitZombie(t, pid)
	time.Sleep(100 * time.Millisecond)
	if procState(pid) != "Z" {
		t.Fatalf("orphan %d reaped without SIGCHLD", pid)
	}
	// ...until orphans are reaped: at once for those already gone,
	r.EnableOrphanReaping()
	if procState(pid) != "" {
		t.Fatalf("orphan %d not reaped when reaping was enabled", pid)
	}
	// and as they exit for the others, without any other exit.
	var pids []int
	for range 5 {
		pids = append(pids, orphan(t, r, "0.3"))
	}
	for _, pid := range pids {
		gone := false
		for range 500 {
			if procState(pid) == "" {
				gone = true
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !gone {
			t.Fatalf("orphan %d still there (state %q)", pid, procState(pid))
		}
	}
	// Commands and watches still work with both.
	e, err := r.Run(context.Background(), exec.Command("sh", "-c", "exit 6"))
	if err != nil || e.Status != 6 {
		t.Fatalf("Run: %+v, %v", e, err)
	}
}

func TestOwnPIDNamespace(t *testing.T) {
	specs := map[string]bool{
		`{"linux":{"namespaces":[{"type":"mount"},{"type":"pid"}]}}`:             true,
		`{"linux":{"namespaces":[{"type":"mount"},{"type":"network"}]}}`:         false,
		`{"linux":{"namespaces":[{"type":"pid","path":"/proc/self/ns/pid"}]}}`:   false,
		`{"linux":{"namespaces":[{"type":"pid","path":"/nonexistent/ns/pid"}]}}`: false,
		`{"process":{}}`: false,
		`not json`:       false,
	}
	// Another pid namespace, joined by path.
	if _, err := exec.LookPath("unshare"); err == nil {
		cmd := exec.Command("unshare", "--pid", "--fork", "sleep", "100")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		unshare := cmd.Process.Pid
		cmd.Process.Release() // its pidfd would stay open until collected
		defer syscall.Kill(unshare, syscall.SIGKILL)
		var child string
		for range 500 {
			data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", unshare, unshare))
			if child = strings.TrimSpace(string(data)); child != "" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if child == "" {
			t.Fatal("unshare started no child")
		}
		if pid, err := strconv.Atoi(child); err == nil {
			defer syscall.Kill(pid, syscall.SIGKILL)
		}
		specs[`{"linux":{"namespaces":[{"type":"pid","path":"/proc/`+child+`/ns/pid"}]}}`] = true
	}
	for spec, want := range specs {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := OwnPIDNamespace(dir); got != want {
			t.Errorf("%s: %v, want %v", spec, got, want)
		}
	}
	if OwnPIDNamespace(t.TempDir()) {
		t.Error("a bundle without config.json has a pid namespace")
	}
}
