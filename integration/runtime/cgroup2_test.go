package runtime_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/integration/testenv"
)

// pureCgroupV2 runs a command in a private mount namespace whose
// /sys/fs/cgroup is the cgroup2 hierarchy alone, so that libcontainer sees a
// pure cgroup v2 host even on a hybrid one. The namespace, and the mounts
// in it, end with the command.
var pureCgroupV2 = []string{"unshare", "--mount", "--", "sh", "-c",
	`mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"`, "sh"}

// v2Root is where this host mounts the cgroup2 hierarchy.
func v2Root() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "/sys/fs/cgroup"
	}
	return "/sys/fs/cgroup/unified"
}

// v2Controller is met when the cgroup2 hierarchy's root offers controller;
// on a hybrid host cgroup v1 usually holds them all.
func v2Controller(controller string) testenv.Requirement {
	return testenv.Requirement{Name: "cgroup v2 " + controller + " controller", Check: func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(v2Root(), "cgroup.controllers"))
		if err != nil {
			return false, "no cgroup2 hierarchy: " + err.Error()
		}
		if !slices.Contains(strings.Fields(string(b)), controller) {
			return false, "the cgroup2 hierarchy offers no " + controller + " controller (" + v2Root() +
				"/cgroup.controllers: " + strings.TrimSpace(string(b)) + "): cgroup v1 holds it on this host"
		}
		return true, ""
	}}
}

// TestCgroupV2 runs the runtime on a pure cgroup v2 view of the host.
func TestCgroupV2(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("unshare"), testenv.Requirement{Name: "cgroup2 filesystem", Check: func() (bool, string) {
		if _, err := os.Stat(filepath.Join(v2Root(), "cgroup.controllers")); err != nil {
			return false, "no cgroup2 hierarchy mounted: " + err.Error()
		}
		return true, ""
	}})
	// run runs a container in the foreground on pure cgroup v2.
	run := func(t *testing.T, r *runtime, bundle, id string) string {
		t.Helper()
		stdout, stderr, code, err := execute(t, append(slices.Clone(pureCgroupV2), r.argv("run", "--bundle", bundle, id)...))
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Fatalf("run on cgroup v2: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		return stdout
	}

	t.Run("plain", func(t *testing.T) {
		r := newRuntime(t)
		// Without a cgroup namespace the container sees its cgroup's path.
		bundle := newBundle(t, func(s *specs.Spec) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.CgroupNamespace })
		}, "sh", "-c", "grep '^0::' /proc/self/cgroup; grep -c ' /sys/fs/cgroup .* - cgroup2 ' /proc/self/mountinfo")
		id := r.newID()
		if out, want := run(t, r, bundle, id), "0::/"+id+"\n1\n"; out != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
		}
		r.assertNoLeftovers(id, bundle)
	})

	for _, tc := range []struct {
		controller string
		resources  specs.LinuxResources
		file       string // in the container's cgroup
		want       string
	}{
		{"memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](32 << 20)}}, "memory.max", "33554432"},
		{"pids", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](20)}}, "pids.max", "20"},
		{"hugetlb", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}}, "hugetlb.2MB.max", "4194304"},
	} {
		t.Run(tc.controller+" limit", func(t *testing.T) {
			testenv.Require(t, v2Controller(tc.controller))
			r := newRuntime(t)
			bundle := newBundle(t, func(s *specs.Spec) {
				tc.resources.Devices = s.Linux.Resources.Devices
				s.Linux.Resources = &tc.resources
			}, "cat", "/sys/fs/cgroup/"+tc.file)
			id := r.newID()
			if out := run(t, r, bundle, id); out != tc.want+"\n" {
				t.Errorf("%s in the container: %q, want %s", tc.file, out, tc.want)
			}
			r.assertNoLeftovers(id, bundle)
		})
	}
}
