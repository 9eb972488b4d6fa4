package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RuntimeBinary is the OCI runtime under test, from $RUNTIME: unset or
// "berth" is bin/berth-runtime, "runc" is runc from PATH (the oracle run
// of the suites; missing, it fails rather than skips), an absolute path is
// that binary.
func RuntimeBinary(t testing.TB) string {
	t.Helper()
	switch v := os.Getenv("RUNTIME"); {
	case v == "" || v == "berth":
		return Binary(t, "berth-runtime")
	case v == "runc":
		p, err := exec.LookPath("runc")
		if err != nil {
			t.Fatalf("RUNTIME=runc: %v", err)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	case filepath.IsAbs(v):
		return v
	default:
		t.Fatalf("RUNTIME=%q: use berth, runc or an absolute path", v)
		return ""
	}
}

// CgroupRoots are the cgroup hierarchies: the unified one, or each v1 one.
func CgroupRoots() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	return slices.DeleteFunc(roots, func(r string) bool {
		fi, err := os.Stat(r)
		return err != nil || !fi.IsDir()
	})
}

// RemoveCgroups removes the cgroup rel (the parent cgroup a test gave its
// containers) in every hierarchy. A cgroup still inside it means a
// container was not cleaned up: that fails the test (unless its name is
// one of expected, such as podman's conmon), and its processes are killed
// so that it can go.
func RemoveCgroups(t testing.TB, rel string, expected ...string) {
	t.Helper()
	for _, root := range CgroupRoots() {
		dir := filepath.Join(root, rel)
		subs, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, s := range subs {
			if !s.IsDir() {
				continue
			}
			if !slices.Contains(expected, s.Name()) {
				t.Errorf("cgroup %s was left behind", filepath.Join(dir, s.Name()))
			}
			rmCgroup(t, filepath.Join(dir, s.Name()))
		}
		rmCgroup(t, dir)
	}
}

// rmCgroup kills the processes in cgroup dir (no subgroups) and removes it.
func rmCgroup(t testing.TB, dir string) {
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
