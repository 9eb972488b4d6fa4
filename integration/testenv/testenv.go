// Package testenv gates tests on what they need from the machine. Tests that
// need root skip without -test.root and fail loudly when given it without
// root; needs beyond root (cgroup v2, criu, a program) are named requirements
// that skip with their reason, so a skipped test always says why.
package testenv

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

var root = flag.Bool("test.root", false, "run tests that need root (namespaces, cgroups, mounts)")

// RequireRoot skips t unless -test.root is given, and fails it when the flag
// is given but the test does not run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if !*root {
		t.Skip("needs root: run with -test.root (make test does)")
	}
	if os.Geteuid() != 0 {
		t.Fatalf("-test.root given but running as uid %d: run as root", os.Geteuid())
	}
}

// Requirement is a named need with the check that tells whether it is met.
type Requirement struct {
	Name  string
	Check func() (ok bool, reason string)
}

// Require skips t with the requirement's name and reason when it is not met.
func Require(t testing.TB, reqs ...Requirement) {
	t.Helper()
	for _, r := range reqs {
		if ok, reason := r.Check(); !ok {
			t.Skipf("requirement %q not met: %s", r.Name, reason)
		}
	}
}

// Program is met when name is on PATH.
func Program(name string) Requirement {
	return Requirement{Name: "program " + name, Check: func() (bool, string) {
		if _, err := exec.LookPath(name); err != nil {
			return false, name + " is not installed"
		}
		return true, ""
	}}
}

// RepoRoot is the top of the source tree (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the source tree")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary returns the path of a berth binary: $BERTH_BIN_DIR/name if set,
// else bin/name in the source tree (make builds it there). It fails the test
// when the binary is missing, naming the command that builds it.
func Binary(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("BERTH_BIN_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "bin")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found: run 'make' first (or set BERTH_BIN_DIR)", p)
	}
	return p
}
