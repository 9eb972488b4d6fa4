//go:build linux

package berthd

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/berth-project/berth/integration/internal/ctrd"
	"github.com/berth-project/berth/integration/testenv"
)

// daemon is a berthd the test started.
type daemon struct {
	t     *testing.T
	dir   string // holds root, state and the log
	root  string
	state string
	sock  string
	host  string // unix://sock
	log   string
	cmd   *exec.Cmd
	done  chan struct{}
	// snapshotters are the snapshotter PIDs seen, so that cleanup can
	// make sure none outlives the test.
	snapshotters map[int]bool
	cgroupParent string
	// With a network: the namespace berthd runs in, its bridge and subnet.
	netns          ns.NetNS
	bridge, subnet string
}

// options adjust a daemon before it starts.
type options struct {
	root, state string   // default: in the daemon's directory
	sock        string   // default: berthd.sock in state
	args        []string // more berthd flags
	// network gives the daemon its bridge network, in a network namespace
	// of the test's own (bridge, NAT and port rules go with it); without,
	// the daemon runs with --no-network.
	network bool
}

// newDir makes a temporary directory with a short path (sockets must fit
// sun_path) that is unmounted below and removed when the test ends.
func newDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berthd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ctrd.UnmountUnder(dir); err != nil {
			t.Error(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// startDaemon starts berthd and waits until it serves. Its cleanup stops
// it with SIGTERM (SIGKILL after 30s) and fails the test if it did not
// exit cleanly or left a snapshotter behind.
func startDaemon(t *testing.T, o options) *daemon {
	t.Helper()
	d := newDaemon(t, o)
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	return d
}

func newDaemon(t *testing.T, o options) *daemon {
	t.Helper()
	testenv.RequireRoot(t)
	bin := testenv.Binary(t, "berthd")
	testenv.Binary(t, "berth-snapshotter") // berthd finds it beside itself
	dir := newDir(t)
	d := &daemon{
		t:            t,
		dir:          dir,
		root:         o.root,
		state:        o.state,
		log:          filepath.Join(dir, "berthd.log"),
		done:         make(chan struct{}),
		snapshotters: map[int]bool{},
	}
	if d.root == "" {
		d.root = filepath.Join(dir, "root")
	}
	if d.state == "" {
		d.state = filepath.Join(dir, "run")
	}
	d.sock = o.sock
	if d.sock == "" {
		d.sock = filepath.Join(d.state, "berthd.sock")
	}
	d.host = "unix://" + d.sock
	// The containers' cgroups go under a parent of the test's own, removed
	// at the end.
	d.cgroupParent = fmt.Sprintf("/berth-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	args := append([]string{"--root", d.root, "--state", d.state, "-H", d.host, "--log-level", "debug", "--cgroup-parent", d.cgroupParent}, o.args...)
	if o.network {
		d.netns = testenv.NetNS(t)
		d.bridge = fmt.Sprintf("bb%x", time.Now().UnixNano()%0xfffffff)
		d.subnet = fmt.Sprintf("10.212.%d.0/24", time.Now().UnixNano()%250+1)
		args = append(args, "--bridge", d.bridge, "--subnet", d.subnet)
		// berthd runs in the namespace (and so do its shims and
		// containers' network plumbing): nsenter puts it there.
		args = append([]string{"--net=" + d.netns.Path(), bin}, args...)
		bin = "nsenter"
	} else {
		args = append(args, "--no-network")
	}
	d.cmd = exec.Command(bin, args...)
	// Should the test binary die without cleaning up, berthd goes too
	// (and stops its snapshotter).
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t.Cleanup(d.cleanup)
	return d
}

// start starts the process and waits for its socket; a daemon that
// exits first is an error carrying its log.
func (d *daemon) start() error {
	logFile, err := os.Create(d.log)
	if err != nil {
		return err
	}
	defer logFile.Close()
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	if err := d.cmd.Start(); err != nil {
		close(d.done)
		return err
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			break
		}
		select {
		case <-d.done:
			return fmt.Errorf("berthd exited: %v\n%s", d.cmd.ProcessState, d.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("berthd did not serve %s within 30s\n%s", d.sock, d.logTail())
		}
	}
	d.snapshotterPID() // remember it for cleanup
	return nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to timeout for the exit.
func (d *daemon) stop(timeout time.Duration) error {
	if d.cmd.Process == nil || d.exited() {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if !d.cmd.ProcessState.Success() {
			return fmt.Errorf("berthd did not exit cleanly on SIGTERM: %v", d.cmd.ProcessState)
		}
		return nil
	case <-time.After(timeout):
		d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("berthd did not stop within %s of SIGTERM; killed it", timeout)
	}
}

func (d *daemon) cleanup() {
	t := d.t
	// Containers run on in their shims when berthd stops: they go first.
	if d.cmd.Process != nil && !d.exited() {
		if ids := strings.Fields(d.berth("", "ps", "-aq").stdout); len(ids) > 0 {
			if r := d.berth("", append([]string{"rm", "-f"}, ids...)...); r.code != 0 {
				t.Errorf("remove the containers left: %v", r)
			}
		}
	}
	defer testenv.RemoveCgroups(t, d.cgroupParent)
	if err := d.stop(30 * time.Second); err != nil {
		t.Errorf("%v\n%s", err, d.logTail())
	}
	for pid := range d.snapshotters {
		if alive(pid) {
			t.Errorf("the snapshotter (pid %d) outlived berthd; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if t.Failed() {
		t.Logf("berthd log:\n%s", d.logTail())
	}
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.log)
	lines := strings.SplitAfter(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-60):], "")
}

// snapshotterPID is the PID of berthd's berth-snapshotter child, 0 when
// it has none.
func (d *daemon) snapshotterPID() int {
	for _, pid := range children(d.pid()) {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && filepath.Base(exe) == "berth-snapshotter" {
			d.snapshotters[pid] = true
			return pid
		}
	}
	return 0
}

// waitSnapshotter waits for a snapshotter child other than old.
func (d *daemon) waitSnapshotter(old int) int {
	d.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if pid := d.snapshotterPID(); pid != 0 && pid != old {
			return pid
		}
	}
	d.t.Fatalf("no new snapshotter child of berthd (pid %d) within 30s\n%s", d.pid(), d.logTail())
	return 0
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// alive tells whether pid is a process that has not exited (zombies
// count as gone).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// result is what a berth command did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// berth runs the berth binary with args, and env added to the
// environment; BERTH_HOST is cleared unless env sets it.
func berth(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t, "berth"), args...)
	cmd.Env = append(withoutHost(os.Environ()), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("berth %q: %v", args, err)
	}
	return r
}

func withoutHost(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "BERTH_HOST=") {
			out = append(out, e)
		}
	}
	return out
}

// run runs berth against d and fails the test unless it exits 0.
func (d *daemon) run(args ...string) string {
	d.t.Helper()
	r := berth(d.t, nil, "", append([]string{"-H", d.host}, args...)...)
	if r.code != 0 {
		d.t.Fatalf("berth %q: %v", args, r)
	}
	return r.stdout
}

// berth runs berth against d.
func (d *daemon) berth(stdin string, args ...string) result {
	d.t.Helper()
	return berth(d.t, nil, stdin, append([]string{"-H", d.host}, args...)...)
}
