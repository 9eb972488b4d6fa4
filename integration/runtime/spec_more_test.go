package runtime_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/integration/testenv"
)

// runcBefore tells whether the runtime is a runc older than major.minor, for
// the cases of features that runc gained later. Other runtimes never are.
func (r *runtime) runcBefore(major, minor int) bool {
	r.t.Helper()
	if r.flavor != "runc" {
		return false
	}
	out, err := exec.Command(r.bin, "--version").Output()
	var maj, min int
	if err == nil {
		_, err = fmt.Sscanf(string(out), "runc version %d.%d", &maj, &min)
	}
	if err != nil {
		r.t.Fatalf("%s --version: %v\n%s", r.bin, err, out)
	}
	return maj < major || maj == major && min < minor
}

// TestNoPivot runs a container with --no-pivot: the rootfs is moved over /
// and chrooted into instead of pivot_root(2). libcontainer refuses it with a
// private rootfsPropagation: the host's mounts stay in the container's mount
// namespace, under the chroot, and would not see the host unmount them.
func TestNoPivot(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	hostFile := filepath.Join(t.TempDir(), "on-host")
	if err := os.WriteFile(hostFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bundle := newBundle(t, nil, "sh", "-c", "cat /etc/berth-release; test -e "+hostFile+" && echo host visible || echo host hidden")
	id := r.newID()
	if out, want := r.ok("run", "--no-pivot", "--bundle", bundle, id), "berth test image\nhost hidden\n"; out != want {
		t.Errorf("run --no-pivot: stdout %q, want %q", out, want)
	}
	r.assertNoLeftovers(id, bundle)

	for _, propagation := range []string{"private", "rprivate"} {
		bundle := newBundle(t, func(s *specs.Spec) { s.Linux.RootfsPropagation = propagation }, "true")
		id := r.newID()
		stderr, _ := r.fails("run", "--no-pivot", "--bundle", bundle, id)
		contains(t, "run --no-pivot with rootfsPropagation "+propagation, stderr, "pivot_root")
		r.assertNoLeftovers(id, bundle)
	}
}

// TestSessionKeyring checks that the container gets a session keyring of its
// own, named after it, and that --no-new-keyring keeps the runtime's. The
// default spec masks /proc/keys, which lists the keys the reader may view.
func TestSessionKeyring(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	bundle := newBundle(t, func(s *specs.Spec) {
		s.Linux.MaskedPaths = slices.DeleteFunc(s.Linux.MaskedPaths, func(p string) bool { return p == "/proc/keys" })
	}, "cat", "/proc/keys")

	id := r.newID()
	contains(t, "/proc/keys in a container", r.ok("run", "--bundle", bundle, id), " _ses."+id+": ")
	id = r.newID()
	if out := r.ok("run", "--no-new-keyring", "--bundle", bundle, id); strings.Contains(out, "_ses."+id) {
		t.Errorf("/proc/keys in a container run with --no-new-keyring lists a keyring of its own:\n%s", out)
	}
}

// sharedNamespace runs a command in a mount namespace of its own where, as on
// a systemd host, every mount is shared, with a tmpfs of its own (shared too)
// on its first argument. The namespace and its mounts end with the command.
var sharedNamespace = []string{"unshare", "--mount", "--", "sh", "-c",
	`mount --make-rshared / && mount -t tmpfs it-shared "$1" && shift && exec "$@"`, "sh"}

// propagation is the propagation of the mount on mountpoint in mountinfo:
// its optional fields without their peer group ids ("shared", "master",
// "shared master", "unbindable"), or "private" when it has none.
func propagation(mountinfo, mountpoint string) string {
	found := "not mounted"
	for l := range strings.Lines(mountinfo) {
		f := strings.Fields(l)
		if len(f) < 7 || f[4] != mountpoint {
			continue
		}
		var tags []string
		for _, o := range f[6:] {
			if o == "-" {
				break
			}
			tag, _, _ := strings.Cut(o, ":")
			tags = append(tags, tag)
		}
		found = "private"
		if len(tags) > 0 {
			found = strings.Join(tags, " ")
		}
	}
	return found
}

// TestMountPropagation checks the propagation of the rootfs
// (linux.rootfsPropagation) and of a bind mount (its options) in the
// container's mountinfo, on a host whose mounts are shared.
func TestMountPropagation(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("unshare"))
	// runc before 1.4 applies neither shared nor unbindable to the rootfs
	// (runc#1755, fixed by runc#4724 and backported to some 1.2 and 1.3
	// releases); 1.1.5 fails on unbindable with EINVAL.
	const rootfsFix = "runc before 1.4 ignores rootfsPropagation shared and fails on unbindable (runc#1755, fixed by runc#4724)"
	for _, tc := range []struct {
		name       string
		rootfs     string   // linux.rootfsPropagation
		bind       []string // propagation options of a bind mount on /mnt
		mountpoint string
		want       string
		runcBefore string // skip reason for runc before 1.4
	}{
		{name: "rootfs rslave", rootfs: "rslave", mountpoint: "/", want: "master"},
		{name: "rootfs private", rootfs: "private", mountpoint: "/", want: "private"},
		{name: "rootfs shared", rootfs: "shared", mountpoint: "/", want: "shared", runcBefore: rootfsFix},
		{name: "rootfs rshared", rootfs: "rshared", mountpoint: "/", want: "shared", runcBefore: rootfsFix},
		{name: "rootfs unbindable", rootfs: "unbindable", mountpoint: "/", want: "unbindable", runcBefore: rootfsFix},
		{name: "bind rslave", bind: []string{"rslave"}, mountpoint: "/mnt", want: "master"},
		// The namespace's mounts are slaves of the host's (by default), so
		// the shared bind mount keeps receiving from the host as well.
		{name: "bind rshared", bind: []string{"rshared"}, mountpoint: "/mnt", want: "shared master"},
		{name: "bind rprivate", bind: []string{"rprivate"}, mountpoint: "/mnt", want: "private"},
		{name: "bind runbindable", bind: []string{"runbindable"}, mountpoint: "/mnt", want: "unbindable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRuntime(t)
			if tc.runcBefore != "" && r.runcBefore(1, 4) {
				t.Skip(tc.runcBefore)
			}
			src := t.TempDir() // the shared tmpfs in the namespace
			bundle := newBundle(t, func(s *specs.Spec) {
				s.Linux.RootfsPropagation = tc.rootfs
				if tc.bind != nil {
					s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: src, Options: append([]string{"rbind"}, tc.bind...)})
				}
			}, "cat", "/proc/self/mountinfo")
			argv := append(append(slices.Clone(sharedNamespace), src), r.argv("run", "--bundle", bundle, r.newID())...)
			stdout, stderr, code, err := execute(t, argv)
			if err != nil {
				t.Fatal(err)
			}
			if code != 0 {
				t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			if got := propagation(stdout, tc.mountpoint); got != tc.want {
				t.Errorf("propagation of %s: %s, want %s\n%s", tc.mountpoint, got, tc.want, stdout)
			}
		})
	}
}

// idmappedMounts is met when the kernel can idmap a mount of dir's file
// system: it clones a detached mount of dir and idmaps it with the user
// namespace of a child, which it then kills.
func idmappedMounts(dir string) testenv.Requirement {
	return testenv.Requirement{Name: "idmapped mounts", Check: func() (bool, string) {
		child := exec.Command("sleep", "3600")
		idmap := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		child.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, UidMappings: idmap, GidMappings: idmap}
		if err := child.Start(); err != nil {
			return false, "no user namespace: " + err.Error()
		}
		defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
		userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", child.Process.Pid))
		if err != nil {
			return false, err.Error()
		}
		defer userns.Close()
		tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return false, "open_tree " + dir + ": " + err.Error()
		}
		defer unix.Close(tree)
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return false, "the kernel refuses to idmap a mount of " + dir + ": " + err.Error()
		}
		return true, ""
	}}
}

// TestIdmappedMount bind-mounts a host directory into a container with a
// user namespace (root is host uid 100000), once idmapped with the
// container's mapping, once not: through the idmapped mount the host's root
// owns what the container's root owns.
func TestIdmappedMount(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	testenv.Require(t, idmappedMounts(src))
	r := newRuntime(t)
	if r.runcBefore(1, 2) {
		t.Skip("runc before 1.2 has no idmapped mounts: it ignores the mount's mappings")
	}
	for name, uid := range map[string]int{"host-root": 0, "container-root": 100000} {
		if err := os.WriteFile(filepath.Join(src, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(src, name), uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	idmap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	bundle := newBundle(t, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings, s.Linux.GIDMappings = idmap, idmap
		// On directories of the image: the container's root may not
		// create mount points in the host-owned rootfs.
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/run", Type: "bind", Source: src, Options: []string{"bind", "idmap"}, UIDMappings: idmap, GIDMappings: idmap},
			specs.Mount{Destination: "/var", Type: "bind", Source: src, Options: []string{"bind"}})
	}, "sh", "-c", "for f in /run/host-root /run/container-root /var/host-root /var/container-root; do echo $f $(stat -c %u:%g $f); done; "+
		"touch /run/new && stat -c %u:%g /run/new")
	// The container's root, host uid 100000, must reach the rootfs.
	for _, dir := range []string{filepath.Dir(bundle), bundle} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := "/run/host-root 0:0\n/run/container-root 65534:65534\n/var/host-root 65534:65534\n/var/container-root 0:0\n0:0\n"
	if out := r.ok("run", "--bundle", bundle, r.newID()); out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(src, "new"), &st); err != nil || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("file created through the idmapped mount: owner %d:%d (%v), want 0:0 on the host", st.Uid, st.Gid, err)
	}
}

// TestContainerHooks checks the createContainer hook, whose path resolves on
// the host, and the startContainer hook, whose path resolves in the
// container: both run in the container's namespaces, the first during
// create, the second during start, each told the container's state.
func TestContainerHooks(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	dir := t.TempDir()
	const listNS = "for ns in mnt net uts ipc pid; do readlink /proc/self/ns/$ns; done"
	hook := func(out string) []byte { // records its stdin, then its namespaces
		return []byte("#!/bin/sh\ncat > " + out + ".json\n" + listNS + " > " + out + ".ns\n")
	}
	bundle := newBundle(t, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			CreateContainer: []specs.Hook{{Path: filepath.Join(dir, "create-hook")}},
			StartContainer:  []specs.Hook{{Path: "/start-hook"}},
		}
	}, sleeper...)
	if err := os.WriteFile(filepath.Join(dir, "create-hook"), hook(filepath.Join(dir, "create")), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "rootfs", "start-hook"), hook("/tmp/start"), 0o755); err != nil {
		t.Fatal(err)
	}
	startNS := filepath.Join(bundle, "rootfs", "tmp", "start.ns") // the container's /tmp/start.ns

	id := r.create(bundle)
	created, err := os.ReadFile(filepath.Join(dir, "create.ns"))
	if err != nil {
		t.Fatalf("after create: %v", err)
	}
	if _, err := os.Stat(startNS); err == nil {
		t.Errorf("after create, the startContainer hook has run")
	}
	r.ok("start", id)
	inside := r.ok("exec", id, "sh", "-c", listNS)
	r.waitOutput(id, inside, "cat", "/tmp/start.ns")
	if string(created) != inside {
		t.Errorf("createContainer hook ran in namespaces\n%s\nthe container's are\n%s", created, inside)
	}
	for l := range strings.Lines(inside) {
		ns, _, _ := strings.Cut(l, ":")
		if host, _ := os.Readlink("/proc/self/ns/" + ns); host+"\n" == l {
			t.Errorf("the container shares the host's %s namespace: the check above proves nothing", ns)
		}
	}

	for status, file := range map[string]string{"creating": filepath.Join(dir, "create.json"), "created": filepath.Join(bundle, "rootfs", "tmp", "start.json")} {
		var s state
		b, err := os.ReadFile(file)
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err != nil || s.ID != id || s.Status != status {
			t.Errorf("hook's stdin: %q (%v), want the state of %s, %s", b, err, id, status)
		}
	}
}

// TestEventsOOM watches a container with events while a process in it
// outgrows the container's memory limit: the stream reports the OOM kill.
func TestEventsOOM(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	// dd's 16 MiB buffer outgrows the 8 MiB limit; dd offers itself to the
	// OOM killer, so the container's init stays.
	bundle := newBundle(t, func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: ptr[int64](8 << 20)}
	}, "sh", "-c", "(echo 1000 > /proc/self/oom_score_adj; exec dd if=/dev/zero of=/dev/null bs=16M count=1); sleep 3600")
	id := r.create(bundle)

	ctx, cancel := context.WithTimeout(context.Background(), safeguard)
	defer cancel()
	argv := r.argv("events", "--interval", "100ms", id)
	events := exec.CommandContext(ctx, argv[0], argv[1:]...)
	stdout, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(t.TempDir(), "events.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	events.Stderr = stderr
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = events.Process.Kill(); _ = events.Wait() })
	lines := make(chan string)
	go func() {
		defer close(lines)
		for sc := bufio.NewScanner(stdout); sc.Scan(); {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	next := func() (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-ctx.Done():
			return "", false
		}
	}
	printed := func() string { b, _ := os.ReadFile(stderr.Name()); return string(b) }

	// events watches for OOM before its first stats event.
	if l, ok := next(); !ok {
		t.Fatalf("events %s: no event (stderr: %s)", id, printed())
	} else if !strings.Contains(l, `"type":"stats"`) {
		t.Fatalf("events %s: first event %s, want stats", id, l)
	}
	r.ok("start", id)
	for {
		l, ok := next()
		if !ok {
			t.Fatalf("events %s: no oom event (stderr: %s)", id, printed())
		}
		var ev struct{ Type, ID string }
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("events %s: %v\n%s", id, err, l)
		}
		if ev.Type == "oom" {
			if ev.ID != id {
				t.Errorf("oom event %s, want id %s", l, id)
			}
			return
		}
	}
}
