package runtime_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/testenv"
)

// safeguard bounds every wait of the suite, so that a hung runtime fails
// the test instead of hanging it. Nothing is asserted about durations.
const safeguard = 60 * time.Second

// runtime is the binary under test with a --root of its own.
type runtime struct {
	t      *testing.T
	bin    string
	root   string
	flavor string // "berth", "runc", or "" for another runtime
}

// newRuntime runs the binary $RUNTIME selects (see testenv.RuntimeBinary).
func newRuntime(t *testing.T) *runtime {
	t.Helper()
	bin := testenv.RuntimeBinary(t)
	return &runtime{t: t, bin: bin, root: t.TempDir(), flavor: flavorOf(t, bin)}
}

var flavors sync.Map // binary path -> flavor

// flavorOf tells berth from runc by the first word of --version.
func flavorOf(t *testing.T, bin string) string {
	if f, ok := flavors.Load(bin); ok {
		return f.(string)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", bin, err)
	}
	var f string
	switch first, _, _ := strings.Cut(string(out), " "); first {
	case "berth-runtime":
		f = "berth"
	case "runc":
		f = "runc"
	}
	flavors.Store(bin, f)
	return f
}

func (r *runtime) berth() bool { return r.flavor == "berth" }

// argv is the command line of the runtime with this test's --root.
func (r *runtime) argv(args ...string) []string {
	return append([]string{r.bin, "--root", r.root}, args...)
}

// run runs the runtime with args and returns what it printed and its exit
// status. The streams are files, not pipes: a detached container inherits
// them and would otherwise hold the command open until it exits.
func (r *runtime) run(args ...string) (stdout, stderr string, code int) {
	r.t.Helper()
	stdout, stderr, code, err := execute(r.t, r.argv(args...))
	if err != nil {
		r.t.Fatal(err)
	}
	return stdout, stderr, code
}

// ok runs the runtime and fails the test unless it exits 0.
func (r *runtime) ok(args ...string) string {
	r.t.Helper()
	stdout, stderr, code := r.run(args...)
	if code != 0 {
		r.t.Fatalf("%s: exit status %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// fails runs the runtime and fails the test if it exits 0.
func (r *runtime) fails(args ...string) (stderr string, code int) {
	r.t.Helper()
	stdout, stderr, code := r.run(args...)
	if code == 0 {
		r.t.Fatalf("%s: succeeded, want a failure\nstdout: %s\nstderr: %s", strings.Join(args, " "), stdout, stderr)
	}
	return stderr, code
}

// execute runs argv with stdin from /dev/null, the output in files, and
// extra as fds 3 and on.
func execute(t *testing.T, argv []string, extra ...*os.File) (stdout, stderr string, code int, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), safeguard)
	defer cancel()
	var files [2]*os.File
	for i := range files {
		if files[i], err = os.CreateTemp("", "berth-it-out"); err != nil {
			return "", "", -1, err
		}
		os.Remove(files[i].Name())
		defer files[i].Close()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = files[0], files[1], extra
	err = cmd.Run()
	if ctx.Err() != nil {
		return "", "", -1, fmt.Errorf("%s: no exit within %v", strings.Join(argv, " "), safeguard)
	}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		return "", "", -1, err
	}
	var out [2]string
	for i, f := range files {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", "", -1, err
		}
		b, err := io.ReadAll(f)
		if err != nil {
			return "", "", -1, err
		}
		out[i] = string(b)
	}
	return out[0], out[1], code, nil
}

// newID returns a container id named after the test, unique across runs,
// and registers the container's forced deletion.
func (r *runtime) newID() string {
	r.t.Helper()
	slug := strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			return c
		}
		return '-'
	}, strings.ToLower(r.t.Name()))
	if len(slug) > 48 {
		slug = slug[len(slug)-48:]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := "it-" + strings.Trim(slug, "-") + "-" + hex.EncodeToString(b)
	r.t.Cleanup(func() { r.remove(id) })
	return id
}

// remove deletes the container whatever its state and removes cgroups that
// a broken runtime may have left; leftovers are asserted elsewhere.
func (r *runtime) remove(id string) {
	if _, stderr, code, err := execute(r.t, r.argv("delete", "--force", id)); err != nil {
		r.t.Errorf("cleanup of %s: %v", id, err)
	} else if code != 0 && !strings.Contains(stderr, "not exist") {
		r.t.Logf("cleanup: delete --force %s: exit %d: %s", id, code, stderr)
	}
	for _, dir := range cgroupDirs(id) {
		if err := os.Remove(dir); err != nil {
			r.t.Errorf("cleanup: remove leftover cgroup %s: %v", dir, err)
		}
	}
}

// newBundle writes a bundle running args in a fresh directory; edit, if not
// nil, changes the default spec before it is written.
func newBundle(t *testing.T, edit func(*specs.Spec), args ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := testimage.WriteBundle(dir, testimage.Options{Args: args}); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		spec := testimage.DefaultSpec(args...)
		edit(spec)
		if err := testimage.WriteSpec(dir, spec); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sleeper is a process that runs until it is killed.
var sleeper = []string{"sleep", "3600"}

// state is what `state` and `list --format json` print.
type state struct {
	OCIVersion string `json:"ociVersion"`
	ID         string `json:"id"`
	Pid        int    `json:"pid"`
	Status     string `json:"status"`
	Bundle     string `json:"bundle"`
	Rootfs     string `json:"rootfs"`
	Created    string `json:"created"`
}

func (r *runtime) state(id string) state {
	r.t.Helper()
	var s state
	out := r.ok("state", id)
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		r.t.Fatalf("state %s: %v\n%s", id, err, out)
	}
	return s
}

// waitStatus polls state until the container has the status.
func (r *runtime) waitStatus(id, status string) state {
	r.t.Helper()
	deadline := time.Now().Add(safeguard)
	for {
		s := r.state(id)
		if s.Status == status {
			return s
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("container %s is %s, want %s", id, s.Status, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOutput execs cmd in the container until it prints want.
func (r *runtime) waitOutput(id, want string, cmd ...string) {
	r.t.Helper()
	deadline := time.Now().Add(safeguard)
	for {
		out, _, _ := r.run(append([]string{"exec", id}, cmd...)...)
		if out == want {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s in %s printed %q, want %q", strings.Join(cmd, " "), id, out, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// create creates a container from bundle and returns its id.
func (r *runtime) create(bundle string, flags ...string) string {
	r.t.Helper()
	id := r.newID()
	r.ok(append(append([]string{"create", "--bundle", bundle}, flags...), id)...)
	return id
}

// detached runs a container from bundle in the background and returns its id.
func (r *runtime) detached(bundle string, flags ...string) string {
	r.t.Helper()
	id := r.newID()
	r.ok(append(append([]string{"run", "-d", "--bundle", bundle}, flags...), id)...)
	return id
}

// foreground runs a container from a bundle running args (spec changed by
// edit) and returns its output; the container must exit 0.
func (r *runtime) foreground(edit func(*specs.Spec), args ...string) string {
	r.t.Helper()
	return r.ok("run", "--bundle", newBundle(r.t, edit, args...), r.newID())
}

// contains fails the test unless s contains every one of want.
func contains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, s)
		}
	}
}

// fields normalises white space, so table output compares as words.
func fields(s string) string { return strings.Join(strings.Fields(s), " ") }

// cgroupDirs lists the cgroup directories named id on any hierarchy.
func cgroupDirs(id string) []string {
	var found []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == id {
			found = append(found, p)
			return filepath.SkipDir
		}
		return nil
	})
	return found
}

// assertNoLeftovers checks that nothing of a container remains: no state
// under --root, no cgroup, no mount naming the id or the bundle.
func (r *runtime) assertNoLeftovers(id, bundle string) {
	r.t.Helper()
	if _, err := os.Lstat(filepath.Join(r.root, id)); !errors.Is(err, fs.ErrNotExist) {
		r.t.Errorf("state of %s left under --root (%v)", id, err)
	}
	for _, dir := range cgroupDirs(id) {
		r.t.Errorf("cgroup left behind: %s", dir)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		r.t.Fatal(err)
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, id) || bundle != "" && strings.Contains(l, bundle) {
			r.t.Errorf("mount left behind: %s", l)
		}
	}
}

// cgroupFile is the path of a cgroup file of process pid: on a cgroup v1
// hierarchy of controller it is v1file, on the unified hierarchy v2file.
func cgroupFile(t *testing.T, pid int, controller, v1file, v2file string) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Statfs_t
	pureV2 := unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
	unified := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller && !pureV2 {
				return filepath.Join("/sys/fs/cgroup", parts[1], parts[2], v1file)
			}
		}
	}
	if pureV2 {
		return filepath.Join("/sys/fs/cgroup", unified, v2file)
	}
	return filepath.Join("/sys/fs/cgroup/unified", unified, v2file)
}

func readTrimmed(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(readTrimmed(t, path))
	if err != nil {
		t.Fatalf("pid file %s: %v", path, err)
	}
	return pid
}

// consoleSocket listens on a unix socket as containerd's shim does for
// --console-socket, and returns its path and a function that waits for the
// pseudoterminal master the runtime sends over it (SCM_RIGHTS).
func consoleSocket(t *testing.T) (path string, master func() *os.File) {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-it-console")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path = filepath.Join(dir, "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := receiveFD(l)
		ch <- result{f, err}
	}()
	return path, func() *os.File {
		t.Helper()
		select {
		case res := <-ch:
			if res.err != nil {
				t.Fatalf("console socket: %v", res.err)
			}
			t.Cleanup(func() { res.f.Close() })
			return res.f
		case <-time.After(safeguard):
			t.Fatal("console socket: no pty master received")
			return nil
		}
	}
}

func receiveFD(l *net.UnixListener) (*os.File, error) {
	conn, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("got %d control messages, want 1", len(msgs))
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		return nil, err
	}
	if len(fds) != 1 {
		return nil, fmt.Errorf("got %d fds, want 1", len(fds))
	}
	// Non-blocking, the file is pollable and honours read deadlines.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// expect reads from the terminal until its output contains want, and
// returns everything read.
func expect(t *testing.T, pty *os.File, want string) string {
	t.Helper()
	if err := pty.SetReadDeadline(time.Now().Add(safeguard)); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), want) {
		n, err := pty.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("terminal: want %q, read %q before: %v", want, out.String(), err)
		}
	}
	return out.String()
}
