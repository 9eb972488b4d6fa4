//go:build linux

package containerd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/testenv"
)

const (
	image      = testimage.DefaultName
	cmdTimeout = 2 * time.Minute // for one ctr command: a hang fails the test
)

// shared is the package's containerd, started by the first test that needs it.
var shared struct {
	once sync.Once
	d    *daemon
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.d != nil {
		if err := shared.d.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "containerd cleanup:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// daemon is a private containerd: everything it keeps is under dir.
type daemon struct {
	dir  string // root, state, runc root, FIFOs, config, log
	sock string // gRPC socket
	cmd  *exec.Cmd
	done chan struct{} // closed when containerd has exited
}

func sharedDaemon(t *testing.T) *daemon {
	t.Helper()
	shared.once.Do(func() { shared.d, shared.err = startDaemon() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.d
}

func startDaemon() (*daemon, error) {
	dir, err := os.MkdirTemp("", "berth-ctrd-") // short: the socket path must fit sun_path
	if err != nil {
		return nil, err
	}
	d := &daemon{dir: dir, sock: filepath.Join(dir, "containerd.sock"), done: make(chan struct{})}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), d.sock, d.sock+".ttrpc")
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	logFile, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	defer logFile.Close()
	d.cmd = exec.Command("containerd", "--config", configPath, "--log-level", "debug")
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	// Should the test binary die without cleaning up, containerd goes too.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	go func() { d.cmd.Wait(); close(d.done) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := exec.CommandContext(ctx, "ctr", "--address", d.sock, "version").Run()
		cancel()
		if err == nil {
			return d, nil
		}
		select {
		case <-d.done:
			err = fmt.Errorf("containerd exited: %v\n%s", d.cmd.ProcessState, d.logTail(""))
		default:
			if time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			err = fmt.Errorf("containerd did not serve %s within 30s\n%s", d.sock, d.logTail(""))
		}
		return nil, errors.Join(err, d.stop())
	}
}

// stop stops containerd (SIGTERM, then SIGKILL after 30s), kills the shims
// it left and the container processes they left, unmounts what is left
// under its directory and removes it.
func (d *daemon) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	var errs []error
	for _, pid := range d.shimPIDs() {
		errs = append(errs, fmt.Errorf("shim %d outlived its containers; killed", pid))
		unix.Kill(pid, unix.SIGKILL)
	}
	inits, _ := filepath.Glob(filepath.Join(d.dir, "state", "io.containerd.runtime.v2.task", "*", "*", "init.pid"))
	for _, f := range inits {
		if pid, err := readPID(f); err == nil && unix.Kill(pid, unix.SIGKILL) == nil {
			errs = append(errs, fmt.Errorf("container process %d (%s) was left running; killed", pid, f))
		}
	}
	errs = append(errs, unmountUnder(d.dir), os.RemoveAll(d.dir))
	return errors.Join(errs...)
}

// shimPIDs finds the shims serving this containerd: containerd starts them
// with "-address <its socket>", which no other containerd's shims have.
func (d *daemon) shimPIDs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(string(b), "\x00")
		i := slices.Index(argv, "-address")
		if strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") && i > 0 && i+1 < len(argv) && argv[i+1] == d.sock {
			pids = append(pids, pid)
		}
	}
	return pids
}

// logTail returns the last lines of containerd's log that contain substr.
func (d *daemon) logTail(substr string) string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "containerd.log"))
	var lines []string
	for l := range strings.Lines(string(b)) {
		if strings.Contains(l, substr) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-40):], "")
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mounts []string
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// runtimeBinary is the OCI runtime under test: berth-runtime, or runc from
// PATH with RUNTIME=runc.
func runtimeBinary(t *testing.T) string {
	t.Helper()
	switch r := os.Getenv("RUNTIME"); r {
	case "", "berth":
		return testenv.Binary(t, "berth-runtime")
	case "runc":
		testenv.Require(t, testenv.Program("runc"))
		p, _ := exec.LookPath("runc")
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	default:
		t.Fatalf("RUNTIME=%q: want berth (the default) or runc", r)
		return ""
	}
}

// ctrEnv is one test's view of the shared containerd: its own namespace
// with the test image imported, and the runtime behind a wrapper that logs
// each command line it is run with, which proves containerd ran it and
// shows how.
type ctrEnv struct {
	t        *testing.T
	d        *daemon
	ns       string
	runtime  string // the runtime under test
	wrapper  string // given to ctr as --runc-binary; execs runtime
	argvLog  string // one line per wrapper run
	runcRoot string // the shim's --runc-root; it adds the namespace
}

func newCtrEnv(t *testing.T) *ctrEnv {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("containerd"), testenv.Program("ctr"))
	rt := runtimeBinary(t)
	d := sharedDaemon(t)
	tmp := t.TempDir()
	e := &ctrEnv{
		t:        t,
		d:        d,
		ns:       "berth-test-" + strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(t.Name()), "-"), "-"),
		runtime:  rt,
		wrapper:  filepath.Join(tmp, "bin", filepath.Base(rt)),
		argvLog:  filepath.Join(tmp, "runtime-argv.log"),
		runcRoot: filepath.Join(d.dir, "runc"),
	}
	if err := os.MkdirAll(filepath.Dir(e.wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> '%s'\nexec '%s' \"$@\"\n", e.argvLog, rt)
	if err := os.WriteFile(e.wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		removeCgroups(t, "/"+e.ns)
		if t.Failed() {
			argv, _ := os.ReadFile(e.argvLog)
			t.Logf("runtime command lines:\n%s", argv)
			t.Logf("containerd log for namespace %s:\n%s", e.ns, d.logTail("namespace="+e.ns))
		}
	})

	archive := filepath.Join(tmp, "image.oci.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.WriteOCIArchive(f, testimage.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e.run("image", "import", archive)
	return e
}

func (e *ctrEnv) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", e.d.sock, "--namespace", e.ns}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// exec runs ctr and returns its combined output and exit code. It fails the
// test when ctr cannot run or times out.
func (e *ctrEnv) exec(args ...string) (string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := e.command(ctx, args...).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || ctx.Err() != nil) {
		e.t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), exitCode(err)
}

// run runs ctr, fails the test unless it exits 0 and returns its output.
func (e *ctrEnv) run(args ...string) string {
	e.t.Helper()
	out, code := e.exec(args...)
	if code != 0 {
		e.t.Fatalf("ctr %s: exit status %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// runArgs is "ctr run" with the runtime under test, then flags, the image,
// the container id and its command. Unless flags hold --rm the container is
// removed when the test ends.
func (e *ctrEnv) runArgs(flags []string, id string, cmd ...string) []string {
	if !slices.Contains(flags, "--rm") {
		e.t.Cleanup(func() { e.exec("task", "delete", "--force", id); e.exec("container", "delete", id) })
	}
	args := []string{"run", "--runc-binary", e.wrapper, "--runc-root", e.runcRoot, "--fifo-dir", e.fifoDir()}
	args = append(append(args, flags...), image, id)
	return append(args, cmd...)
}

// execArgs is "ctr task exec" of cmd in container id as process execID.
func (e *ctrEnv) execArgs(execID, id string, cmd ...string) []string {
	return append([]string{"task", "exec", "--fifo-dir", e.fifoDir(), "--exec-id", execID, id}, cmd...)
}

// fifoDir keeps ctr's stdio FIFOs beside the daemon's other files.
func (e *ctrEnv) fifoDir() string { return filepath.Join(e.d.dir, "fifo") }

// task returns the pid and status of task id as "ctr task ls" shows them.
func (e *ctrEnv) task(id string) (pid int, status string) {
	e.t.Helper()
	sc := bufio.NewScanner(strings.NewReader(e.run("task", "ls")))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == id {
			pid, _ = strconv.Atoi(f[1])
			return pid, f[2]
		}
	}
	return 0, ""
}

// waitStatus waits until "ctr task ls" shows task id in status.
func (e *ctrEnv) waitStatus(id, status string) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, got := e.task(id)
		if got == status {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("task %s is %q, not %s, after a minute", id, got, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runtimeState is what the runtime under test itself reports for id, from
// the state the shim made it keep: its "state" command's JSON.
type runtimeState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

func (e *ctrEnv) state(id string) (runtimeState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, e.runtime, "--root", filepath.Join(e.runcRoot, e.ns), "state", id)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return runtimeState{}, fmt.Errorf("%s state %s: %w: %s", e.runtime, id, err, stderr.Bytes())
	}
	var s runtimeState
	if err := json.Unmarshal(out, &s); err != nil {
		return runtimeState{}, fmt.Errorf("%s state %s: %w: %s", e.runtime, id, err, out)
	}
	return s, nil
}

// requireRuntimeRan checks that the shim ran the runtime under test, with
// this namespace's root, with each of cmds for container id.
func (e *ctrEnv) requireRuntimeRan(id string, cmds ...string) {
	e.t.Helper()
	b, _ := os.ReadFile(e.argvLog)
	root := regexp.QuoteMeta(filepath.Join(e.runcRoot, e.ns))
	for _, cmd := range cmds {
		if !regexp.MustCompile(`(?m)^--root ` + root + ` (.* )?` + cmd + ` (.* )?` + regexp.QuoteMeta(id) + `( .*)?$`).Match(b) {
			e.t.Errorf("containerd did not run %s %s for %s; it ran:\n%s", e.runtime, cmd, id, b)
		}
	}
}

// removeCgroups removes the cgroup rel (the namespace's parent cgroup that
// the runtime made for the containers) in every hierarchy. A container
// cgroup still inside it means the runtime did not clean up: that fails the
// test, and its processes are killed so that it can go.
func removeCgroups(t *testing.T, rel string) {
	t.Helper()
	roots := []string{"/sys/fs/cgroup"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil { // v1 or hybrid
		roots, _ = filepath.Glob("/sys/fs/cgroup/*")
	}
	for _, root := range roots {
		dir := filepath.Join(root, rel)
		subs, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, s := range subs {
			if s.IsDir() {
				t.Errorf("cgroup %s was left behind", filepath.Join(dir, s.Name()))
				rmCgroup(t, filepath.Join(dir, s.Name()))
			}
		}
		rmCgroup(t, dir)
	}
}

// rmCgroup kills the processes in cgroup dir (no subgroups) and removes it.
func rmCgroup(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	killed := map[int]bool{}
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !killed[pid] {
				t.Errorf("process %d was left in cgroup %s; killing it", pid, dir)
				unix.Kill(pid, unix.SIGKILL)
				killed[pid] = true
			}
		}
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
