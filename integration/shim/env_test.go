//go:build linux

package shim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-project/berth/integration/internal/ctrd"
	"github.com/berth-project/berth/integration/testenv"
)

const (
	image = ctrd.Image
	// runcV2 is the runtime name to which ctr 1.6 sends runc options.
	runcV2 = "io.containerd.runc.v2"
	// optionRuntime is the name, in containerd's bin directory, of the
	// runtime wrapper that tests give as --runc-binary.
	optionRuntime = "berth-test-runtime"
)

// defaultRuntimes are the names of the runtime wrappers that the shims
// find first on their PATH when no runc option names a binary: runc's shim
// runs "runc", berth's "berth-runtime".
var defaultRuntimes = []string{"runc", "berth-runtime"}

// shared is the package's containerd, started by the first test that needs it.
var shared ctrd.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "containerd cleanup:", err)
		code = 1
	}
	os.Exit(code)
}

// target is what SHIM and RUNTIME_BINARY select.
type target struct {
	runtime string // ctr --runtime of the shim under test
	shim    string // its binary
	ociBin  string // the OCI runtime binary under test
}

func selectTarget(t *testing.T) target {
	t.Helper()
	var tg target
	switch s := os.Getenv("SHIM"); s {
	case "", "berth":
		tg.runtime = "io.containerd.berth.v2"
		tg.shim = testenv.Binary(t, "containerd-shim-berth-v2")
	case "runc":
		tg.runtime = runcV2
		tg.shim = lookPath(t, "containerd-shim-runc-v2")
	default:
		t.Fatalf("SHIM=%q: want berth (the default) or runc", s)
	}
	switch r := os.Getenv("RUNTIME_BINARY"); r {
	case "", "berth":
		tg.ociBin = testenv.Binary(t, "berth-runtime")
	case "runc":
		tg.ociBin = lookPath(t, "runc")
	default:
		t.Fatalf("RUNTIME_BINARY=%q: want berth (the default) or runc", r)
	}
	return tg
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	testenv.Require(t, testenv.Program(name))
	p, _ := exec.LookPath(name)
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// config is the daemon configuration for tg: the runtime wrappers first on
// containerd's PATH and, for the berth shim, its directory, where
// containerd finds containerd-shim-berth-v2, and a containerd-shim-runc-v2
// that runs it.
func (tg target) config() ctrd.Config {
	// $0 is the wrapper's path: the log is beside containerd's bin directory.
	wrapper := fmt.Sprintf("#!/bin/sh\nprintf '%%s %%s\\n' \"${0##*/}\" \"$*\" >> \"${0%%/*}/../runtime-argv.log\"\nexec '%s' \"$@\"\n", tg.ociBin)
	cfg := ctrd.Config{Bin: map[string]string{optionRuntime: wrapper}}
	for _, name := range defaultRuntimes {
		cfg.Bin[name] = wrapper
	}
	if tg.runtime != runcV2 {
		cfg.Path = []string{filepath.Dir(tg.shim)}
		cfg.Bin["containerd-shim-runc-v2"] = fmt.Sprintf("#!/bin/sh\nexec '%s' \"$@\"\n", tg.shim)
	}
	return cfg
}

// env is one test's view of a containerd running the shim under test.
type env struct {
	*ctrd.Client
	t  *testing.T
	tg target
}

// newEnv gives t a namespace on the package's shared containerd.
func newEnv(t *testing.T) *env {
	t.Helper()
	tg := checkTarget(t)
	return tg.env(t, shared.Get(t, tg.config()))
}

// newPrivateEnv gives t a containerd of its own, stopped when t ends.
func newPrivateEnv(t *testing.T) *env {
	t.Helper()
	tg := checkTarget(t)
	d, err := ctrd.Start(tg.config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("containerd cleanup: %v", err)
		}
	})
	return tg.env(t, d)
}

func checkTarget(t *testing.T) target {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("containerd"), testenv.Program("ctr"))
	return selectTarget(t)
}

func (tg target) env(t *testing.T, d *ctrd.Daemon) *env {
	t.Helper()
	e := &env{t: t, tg: tg}
	// Registered before the client's cleanup, so this runs after it.
	t.Cleanup(func() {
		// With the namespace's containers gone, the runtime may keep no
		// state of theirs.
		for _, root := range e.runtimeRoots() {
			if left, _ := os.ReadDir(root); len(left) > 0 {
				t.Errorf("runtime state left in %s: %v", root, left)
			}
			os.RemoveAll(root)
		}
		if t.Failed() {
			t.Logf("runtime command lines for namespace %s:\n%s", e.NS, e.runtimeLines(e.NS))
		}
	})
	e.Client = ctrd.NewClient(t, d, "berth-shim-")
	return e
}

// runArgs is "ctr run" with the shim under test, then flags, the image,
// the container id and its command. The container is removed when the
// test ends, if it is still there.
func (e *env) runArgs(flags []string, id string, cmd ...string) []string {
	return e.runtimeRunArgs(append([]string{"--runtime", e.tg.runtime}, flags...), id, cmd...)
}

// dropInRunArgs is like runArgs with the runtime io.containerd.runc.v2
// (with SHIM=berth, the berth shim as containerd-shim-runc-v2) and the
// runc options binary and root.
func (e *env) dropInRunArgs(binary, root string, flags []string, id string, cmd ...string) []string {
	return e.runtimeRunArgs(append([]string{"--runtime", runcV2, "--runc-binary", binary, "--runc-root", root}, flags...), id, cmd...)
}

func (e *env) runtimeRunArgs(flags []string, id string, cmd ...string) []string {
	e.RemoveOnCleanup(id)
	args := append([]string{"run", "--fifo-dir", e.D.FIFODir()}, flags...)
	return append(append(args, image, id), cmd...)
}

// execArgs is "ctr task exec" of cmd in container id as process execID.
func (e *env) execArgs(execID, id string, cmd ...string) []string {
	return append([]string{"task", "exec", "--fifo-dir", e.D.FIFODir(), "--exec-id", execID, id}, cmd...)
}

func (e *env) argvLogPath() string { return filepath.Join(e.D.Dir, "runtime-argv.log") }

// runtimeRan tells whether one of the runtime wrappers named in wrappers
// ran the runtime command cmd (a regular expression) for container id; the
// log lines are "wrapper args".
func (e *env) runtimeRan(wrappers []string, cmd, id string) bool {
	b, _ := os.ReadFile(e.argvLogPath())
	names := make([]string, len(wrappers))
	for i, w := range wrappers {
		names[i] = regexp.QuoteMeta(w)
	}
	return regexp.MustCompile(`(?m)^(` + strings.Join(names, "|") + `) (.* )?` + cmd + ` (.* )?` + regexp.QuoteMeta(id) + `( .*)?$`).Match(b)
}

// runtimeLines are the logged runtime command lines that hold s.
func (e *env) runtimeLines(s string) string {
	b, _ := os.ReadFile(e.argvLogPath())
	var lines []string
	for l := range strings.Lines(string(b)) {
		if strings.Contains(l, s) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "")
}

// runtimeRoots are the runtime state roots (--root) that the shims ran
// the runtime with for this namespace: each shim adds the namespace to its
// root.
func (e *env) runtimeRoots() []string {
	var roots []string
	for _, m := range regexp.MustCompile(`--root (\S+)`).FindAllStringSubmatch(e.runtimeLines(e.NS), -1) {
		if filepath.Base(m[1]) == e.NS && !slices.Contains(roots, m[1]) {
			roots = append(roots, m[1])
		}
	}
	return roots
}

// bundle is the task's bundle directory, where containerd keeps its state.
func (e *env) bundle(id string) string {
	return filepath.Join(e.D.Dir, "state", "io.containerd.runtime.v2.task", e.NS, id)
}

// shimOf returns the one shim that serves container id.
func (e *env) shimOf(id string) ctrd.Shim {
	e.t.Helper()
	var found []ctrd.Shim
	for _, s := range e.Shims() {
		if s.ID == id {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		e.t.Fatalf("want one shim serving %s/%s, found %d: %+v", e.NS, id, len(found), found)
	}
	return found[0]
}

// bg is a command running in the background, killed (by its PID) when the
// test ends if it is still running.
type bg struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

func startBg(t *testing.T, cmd *exec.Cmd) *bg {
	t.Helper()
	b := &bg{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = b.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = b.out
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not exit after SIGKILL", cmd)
		}
	})
	return b
}

// wait waits for the command to exit and returns its exit code.
func (b *bg) wait() int {
	b.t.Helper()
	select {
	case <-b.done:
		return ctrd.ExitCode(b.err)
	case <-time.After(ctrd.WaitTimeout):
		b.t.Fatalf("%s still runs after %v; output:\n%s", b.cmd, ctrd.WaitTimeout, b.out)
		return 0
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.buf)
}

// processGone tells whether pid, started at startTime (see startTime), has
// exited: it is no longer there, or a zombie, or another process took its pid.
func processGone(pid int, start string) bool {
	s, state := startTime(pid)
	return s == "" || s != start || state == "Z" || state == "X"
}

// startTime returns pid's start time (field 22 of /proc/pid/stat), which
// tells a process from a later one with the same pid, and its state.
func startTime(pid int) (start, state string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", ""
	}
	i := strings.LastIndexByte(string(b), ')') // the command may hold spaces
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 20 {
		return "", ""
	}
	return f[19], f[0]
}

// containerCgroups are the cgroup directories of container id (ctr puts
// it in /<namespace>/<id>) that exist.
func (e *env) containerCgroups(id string) []string {
	var dirs []string
	for _, root := range testenv.CgroupRoots() {
		if dir := filepath.Join(root, e.NS, id); isDir(dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// freezerState is "FROZEN" or "THAWED" for container id's cgroup, as the
// kernel keeps it (cgroup v1 freezer.state, or v2 cgroup.freeze); "" when
// neither can be read.
func (e *env) freezerState(id string) string {
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/freezer", e.NS, id, "freezer.state")); err == nil {
		return strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", e.NS, id, "cgroup.freeze")); err == nil {
		return map[string]string{"1": "FROZEN", "0": "THAWED"}[strings.TrimSpace(string(b))]
	}
	return ""
}

// waitUntil polls cond until it holds or the deadline passes; it returns
// whether it held.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// pids parses "ctr task ps": a header, then one line per process.
func pids(out string) []int {
	var ps []int
	for l := range strings.Lines(out) {
		if f := strings.Fields(l); len(f) > 0 {
			if pid, err := strconv.Atoi(f[0]); err == nil {
				ps = append(ps, pid)
			}
		}
	}
	return ps
}

// ctx bounds a background ctr.
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), ctrd.CmdTimeout)
	e.t.Cleanup(cancel)
	return ctx
}
