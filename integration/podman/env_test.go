//go:build linux

package podman

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/testenv"
)

const cmdTimeout = 2 * time.Minute // for one podman command: a hang fails the test

// podmanEnv is a podman of the test's own: storage, run state, locks,
// events and configuration under dir, containers under cgroupParent, and the
// runtime behind a wrapper that logs each command line it is run with, which
// proves podman ran it and shows how.
type podmanEnv struct {
	t            *testing.T
	dir          string
	runtime      string // the runtime under test
	wrapper      string // given to podman as --runtime; execs runtime
	argvLog      string // one line per wrapper run
	cgroupParent string
	env          []string
	image        string // the test image, as podman load named it
	nofile       string // the containers' RLIMIT_NOFILE (soft and hard)
}

func newPodmanEnv(t *testing.T) *podmanEnv {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("podman"), testenv.Program("conmon"))
	rt := testenv.RuntimeBinary(t)
	// Short: conmon's attach socket lives deep below the run root.
	dir, err := os.MkdirTemp("", "berth-podman-")
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	e := &podmanEnv{
		t:            t,
		dir:          dir,
		runtime:      rt,
		wrapper:      filepath.Join(dir, "bin", filepath.Base(rt)), // podman treats runtimes by their name
		argvLog:      filepath.Join(dir, "runtime-argv.log"),
		cgroupParent: "/berth-test-" + name,
	}
	t.Cleanup(e.cleanup)

	// Unless told otherwise podman gives containers nofile and nproc limits
	// of 1048576 (or pid_max), which the runtime fails (EPERM) to set where
	// the hard limits are lower and root lacks CAP_SYS_RESOURCE: default to
	// the hard limits podman runs the runtime with.
	var nofile, nproc unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &nproc); err != nil {
		t.Fatal(err)
	}
	// When it loads its configuration podman (containers/common) lowers its
	// own nproc limit to kernel.pid_max, and conmon and the runtime inherit it.
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if pidMax, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			nproc.Max = min(nproc.Max, pidMax)
		}
	}
	e.nofile = rlimit(nofile.Max)
	// lock_type "file" keeps the locks in tmp_dir: the default table of shm
	// locks, /dev/shm/libpod_lock, is shared with every other podman here.
	files := map[string]string{
		"containers.conf": fmt.Sprintf(`[containers]
default_ulimits = ["nofile=%[2]s:%[2]s", "nproc=%[3]s:%[3]s"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "%[1]s/events.log"
image_copy_tmp_dir = "%[1]s/tmp"
lock_type = "file"
tmp_dir = "%[1]s/tmp"

[network]
network_config_dir = "%[1]s/networks"
`, dir, rlimit(nofile.Max), rlimit(nproc.Max)),
		"storage.conf": fmt.Sprintf(`[storage]
driver = "overlay"
graphroot = "%[1]s/root"
runroot = "%[1]s/runroot"
`, dir),
		"registries.conf":          "unqualified-search-registries = []\n",
		"policy.json":              `{"default": [{"type": "insecureAcceptAnything"}]}` + "\n",
		"bin/" + filepath.Base(rt): fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> '%s'\nexec '%s' \"$@\"\n", e.argvLog, rt),
	}
	for _, d := range []string{"bin", "tmp", "networks"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(e.wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	e.env = append(os.Environ(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
		"TMPDIR="+filepath.Join(dir, "tmp"),
	)

	archive := filepath.Join(dir, "image.docker.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.WriteDockerArchive(f, testimage.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out := e.run("load", "--signature-policy", filepath.Join(dir, "policy.json"), "--input", archive)
	m := regexp.MustCompile(`(?m)^Loaded image: (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("podman load did not name the image it loaded:\n%s", out)
	}
	e.image = m[1]
	return e
}

func rlimit(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "-1"
	}
	return strconv.FormatUint(v, 10)
}

// exec runs podman and returns its stdout, stderr and exit code. It fails
// the test when podman cannot run or times out.
func (e *podmanEnv) exec(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	stdout, stderr, code, err := e.podman(args...)
	if err != nil {
		e.t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout, stderr, code
}

// podman runs podman with the test's storage, state and runtime. Its error
// says podman could not run or timed out; an exit status is not an error.
func (e *podmanEnv) podman(args ...string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	global := []string{
		"--root", filepath.Join(e.dir, "root"),
		"--runroot", filepath.Join(e.dir, "runroot"),
		"--tmpdir", filepath.Join(e.dir, "tmp"),
		"--storage-driver", "overlay",
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
		"--runtime", e.wrapper,
	}
	cmd := exec.CommandContext(ctx, "podman", append(global, args...)...)
	cmd.Env = e.env
	cmd.WaitDelay = 5 * time.Second
	var o, s strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &s
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		return o.String(), s.String(), exit.ExitCode(), nil
	}
	return o.String(), s.String(), 0, err
}

// run runs podman, fails the test unless it exits 0 and returns its stdout.
func (e *podmanEnv) run(args ...string) string {
	e.t.Helper()
	stdout, stderr, code := e.exec(args...)
	if code != 0 {
		e.t.Fatalf("podman %s: exit status %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// runArgs is "podman run" without a network, in the test's cgroup parent,
// then flags, the test image and the command.
func (e *podmanEnv) runArgs(flags []string, cmd ...string) []string {
	args := append([]string{"run", "--network", "none", "--cgroup-parent", e.cgroupParent}, flags...)
	return append(append(args, e.image), cmd...)
}

// requireRuntimeRan checks that podman (or conmon) ran the runtime under
// test with each of cmds for container id (the full ID).
func (e *podmanEnv) requireRuntimeRan(id string, cmds ...string) {
	e.t.Helper()
	b, _ := os.ReadFile(e.argvLog)
	for _, cmd := range cmds {
		if !regexp.MustCompile(`(?m)^(.* )?` + cmd + ` (.* )?` + regexp.QuoteMeta(id) + `( .*)?$`).Match(b) {
			e.t.Errorf("podman did not run %s %s for %s; it ran:\n%s", e.runtime, cmd, id, b)
		}
	}
}

// cleanup removes what the test made: containers, storage (podman system
// reset), then whatever that left behind, which fails the test: mounts,
// conmon processes, cgroups.
func (e *podmanEnv) cleanup() {
	t := e.t
	if t.Failed() {
		argv, _ := os.ReadFile(e.argvLog)
		t.Logf("runtime command lines:\n%s", argv)
	}
	if e.env != nil { // configured
		for _, args := range [][]string{{"rm", "--all", "--force", "--time", "0"}, {"system", "reset", "--force"}} {
			if _, stderr, code, err := e.podman(args...); err != nil || code != 0 {
				t.Errorf("podman %s: exit status %d, %v\n%s", strings.Join(args, " "), code, err, stderr)
			}
		}
	}
	for _, pid := range conmonPIDs(e.dir) {
		t.Errorf("conmon %d was left running; killing it", pid)
		unix.Kill(pid, unix.SIGKILL)
	}
	if mounts := mountsUnder(e.dir); len(mounts) > 0 {
		t.Errorf("mounts left under %s: %q", e.dir, mounts)
		for _, m := range mounts {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				t.Errorf("unmount %s: %v", m, err)
			}
		}
	}
	testenv.RemoveCgroups(t, e.cgroupParent, "conmon")
	if err := os.RemoveAll(e.dir); err != nil {
		t.Error(err)
	}
}

// conmonPIDs finds the conmon processes whose arguments name files under dir.
func conmonPIDs(dir string) []int {
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
		if filepath.Base(argv[0]) == "conmon" && slices.ContainsFunc(argv, func(a string) bool { return strings.HasPrefix(a, dir+"/") }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	return mounts
}
