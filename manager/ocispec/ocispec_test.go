package ocispec

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func init() {
	// Keep generated specs independent of the host's cgroup layout.
	cgroup2Only = func() bool { return false }
}

// rootfs makes a fake image root with /etc/passwd and /etc/group.
func rootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "etc/passwd"), `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
`)
	write(t, filepath.Join(dir, "etc/group"), `root:x:0:root
wheel:x:10:root,alice
alice:x:1000:
bob:x:1001:
audio:x:29:alice,bob
`)
	return dir
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func base(t *testing.T) Options {
	return Options{
		ID:     testID,
		Rootfs: rootfs(t),
		Image: imagespec.ImageConfig{
			Env: []string{"PATH=/image/bin", "LANG=C.UTF-8"},
			Cmd: []string{"/bin/sh"},
		},
	}
}

func generate(t *testing.T, o Options) *specs.Spec {
	t.Helper()
	s, err := Generate(o)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return s
}

func wantInvalid(t *testing.T, err error, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error containing %q, got none", contains)
	}
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("error %q is not ErrInvalidArgument", err)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Errorf("error %q does not contain %q", err, contains)
	}
}

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		imgEntrypoint, imgCmd []string
		entrypoint            []string
		entrypointSet         bool
		cmd                   []string
		want                  []string
		err                   string
	}{
		{name: "image cmd", imgCmd: []string{"/bin/sh"}, want: []string{"/bin/sh"}},
		{name: "image entrypoint and cmd", imgEntrypoint: []string{"/ep", "-x"}, imgCmd: []string{"serve"}, want: []string{"/ep", "-x", "serve"}},
		{name: "args replace cmd", imgEntrypoint: []string{"/ep"}, imgCmd: []string{"serve"}, cmd: []string{"version"}, want: []string{"/ep", "version"}},
		{name: "args replace cmd without entrypoint", imgCmd: []string{"/bin/sh"}, cmd: []string{"ls", "-l"}, want: []string{"ls", "-l"}},
		{name: "entrypoint replaces both", imgEntrypoint: []string{"/ep"}, imgCmd: []string{"serve"}, entrypoint: []string{"/bin/echo"}, entrypointSet: true, want: []string{"/bin/echo"}},
		{name: "entrypoint and args", imgEntrypoint: []string{"/ep"}, imgCmd: []string{"serve"}, entrypoint: []string{"/bin/echo"}, entrypointSet: true, cmd: []string{"hi"}, want: []string{"/bin/echo", "hi"}},
		{name: "empty entrypoint clears", imgEntrypoint: []string{"/ep"}, imgCmd: []string{"serve"}, entrypoint: []string{""}, entrypointSet: true, cmd: []string{"ls"}, want: []string{"ls"}},
		{name: "empty entrypoint and no args", imgEntrypoint: []string{"/ep"}, imgCmd: []string{"serve"}, entrypointSet: true, err: "no command specified"},
		{name: "nothing", err: "no command specified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(t)
			o.Image.Entrypoint, o.Image.Cmd = tc.imgEntrypoint, tc.imgCmd
			o.Entrypoint, o.EntrypointSet, o.Cmd = tc.entrypoint, tc.entrypointSet, tc.cmd
			s, err := Generate(o)
			if tc.err != "" {
				wantInvalid(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Args, tc.want) {
				t.Errorf("args = %q, want %q", s.Process.Args, tc.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	for _, tc := range []struct {
		name     string
		imageEnv []string
		env      []string
		tty      bool
		hostname string
		user     string
		want     []string
		err      string
	}{
		{
			name: "defaults",
			want: []string{"PATH=" + defaultPath, "HOSTNAME=0123456789ab", "HOME=/root"},
		},
		{
			name:     "image then user, same key replaced in place",
			imageEnv: []string{"PATH=/image/bin", "A=1", "B=2"},
			env:      []string{"B=3", "C=4", "A=5"},
			want:     []string{"PATH=/image/bin", "HOSTNAME=0123456789ab", "A=5", "B=3", "C=4", "HOME=/root"},
		},
		{
			name: "later wins within -e",
			env:  []string{"A=1", "A=2"},
			want: []string{"PATH=" + defaultPath, "HOSTNAME=0123456789ab", "A=2", "HOME=/root"},
		},
		{
			name:     "tty, hostname, user's home",
			tty:      true,
			hostname: "web",
			user:     "alice",
			want:     []string{"PATH=" + defaultPath, "HOSTNAME=web", "TERM=xterm", "HOME=/home/alice"},
		},
		{
			name: "user overrides TERM, HOSTNAME and HOME",
			tty:  true,
			env:  []string{"TERM=vt100", "HOSTNAME=x", "HOME=/h"},
			want: []string{"PATH=" + defaultPath, "HOSTNAME=x", "TERM=vt100", "HOME=/h"},
		},
		{name: "no value", env: []string{"A"}, err: `"A"`},
		{name: "no key", env: []string{"=x"}, err: `"=x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(t)
			o.Image.Env, o.Env, o.TTY, o.Hostname, o.User = tc.imageEnv, tc.env, tc.tty, tc.hostname, tc.user
			s, err := Generate(o)
			if tc.err != "" {
				wantInvalid(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Env, tc.want) {
				t.Errorf("env = %q, want %q", s.Process.Env, tc.want)
			}
			if s.Process.Terminal != tc.tty {
				t.Errorf("terminal = %v, want %v", s.Process.Terminal, tc.tty)
			}
		})
	}
}

func TestWorkingDir(t *testing.T) {
	for _, tc := range []struct{ image, flag, want, err string }{
		{want: "/"},
		{image: "/app", want: "/app"},
		{image: "/app", flag: "/tmp/", want: "/tmp"},
		{flag: "rel", err: `"rel"`},
	} {
		o := base(t)
		o.Image.WorkingDir, o.WorkingDir = tc.image, tc.flag
		s, err := Generate(o)
		if tc.err != "" {
			wantInvalid(t, err, tc.err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if s.Process.Cwd != tc.want {
			t.Errorf("image %q -w %q: cwd = %q, want %q", tc.image, tc.flag, s.Process.Cwd, tc.want)
		}
	}
}

func TestUser(t *testing.T) {
	for _, tc := range []struct {
		user, imageUser string
		want            specs.User
		err             string
	}{
		{want: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}}},
		{imageUser: "alice", want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10, 29}}},
		{user: "bob", imageUser: "alice", want: specs.User{UID: 1001, GID: 1001, AdditionalGids: []uint32{1001, 29}}},
		{user: "1000", want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10, 29}}},
		{user: "4242", want: specs.User{UID: 4242, GID: 0, AdditionalGids: []uint32{0}}},
		{user: "4242:4343", want: specs.User{UID: 4242, GID: 4343, AdditionalGids: []uint32{4343}}},
		{user: "alice:audio", want: specs.User{UID: 1000, GID: 29, AdditionalGids: []uint32{29}}},
		{user: "1001:wheel", want: specs.User{UID: 1001, GID: 10, AdditionalGids: []uint32{10}}},
		{user: "mallory", err: `user "mallory": no such user in the image's /etc/passwd`},
		{user: "alice:nogroup", err: `no such group in the image's /etc/group`},
	} {
		t.Run(tc.user+"/"+tc.imageUser, func(t *testing.T) {
			o := base(t)
			o.User, o.Image.User = tc.user, tc.imageUser
			s, err := Generate(o)
			if tc.err != "" {
				wantInvalid(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := s.Process.User
			if u.UID != tc.want.UID || u.GID != tc.want.GID || !slices.Equal(u.AdditionalGids, tc.want.AdditionalGids) {
				t.Errorf("user = %+v, want %+v", u, tc.want)
			}
		})
	}
}

// TestUserSymlinkOutsideRootfs checks that /etc/passwd is resolved inside the
// rootfs: an image whose /etc/passwd points outside must not read the host's.
func TestUserSymlinkOutsideRootfs(t *testing.T) {
	top := t.TempDir()
	evil := "evil:x:4321:4321::/evil:/bin/sh\n"
	write(t, filepath.Join(top, "host-file"), evil)
	write(t, filepath.Join(top, "r", "host-file"), evil)
	for _, target := range []string{
		"../../../host-file",                 // relative: climbs from r/r/rootfs/etc to r/
		"/etc/../../.." + top + "/host-file", // absolute with ..
		filepath.Join(top, "host-file"),      // absolute host path
	} {
		t.Run(target, func(t *testing.T) {
			root := filepath.Join(top, "r", "r", "rootfs"+strings.ReplaceAll(target, "/", "_"))
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(root, "etc/passwd")); err != nil {
				t.Fatal(err)
			}
			// Followed naively, the link does reach the host's file.
			if b, err := os.ReadFile(filepath.Join(root, "etc/passwd")); err != nil || string(b) != evil {
				t.Fatalf("test setup: the link does not reach the host file: %v", err)
			}
			o := Options{ID: testID, Rootfs: root, User: "evil", Cmd: []string{"true"}}
			_, err := Generate(o)
			wantInvalid(t, err, "no such user")

			// A numeric user still works without a passwd entry.
			o.User = "4321"
			s := generate(t, o)
			if s.Process.User.UID != 4321 || slices.Contains(s.Process.Env, "HOME=/evil") {
				t.Errorf("user = %+v, env = %q", s.Process.User, s.Process.Env)
			}
		})
	}
}

// TestUserSymlinkInsideRootfs checks that links within the image are
// followed, relative to the rootfs.
func TestUserSymlinkInsideRootfs(t *testing.T) {
	for _, target := range []string{"../usr/lib/passwd", "/usr/lib/passwd", "/../../usr/lib/passwd"} {
		root := t.TempDir()
		write(t, filepath.Join(root, "usr/lib/passwd"), "app:x:555:555::/app:/bin/sh\n")
		write(t, filepath.Join(root, "etc/group"), "")
		if err := os.Symlink(target, filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		s := generate(t, Options{ID: testID, Rootfs: root, User: "app", Cmd: []string{"true"}})
		if s.Process.User.UID != 555 || s.Process.User.GID != 555 {
			t.Errorf("link %s: user = %+v, want 555:555", target, s.Process.User)
		}
	}
}

func TestUserFIFO(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	_, err := Generate(Options{ID: testID, Rootfs: root, Cmd: []string{"true"}})
	wantInvalid(t, err, "not a regular file")
}

func TestCapabilities(t *testing.T) {
	all := allCaps()
	for _, tc := range []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
		err        string
	}{
		{name: "default", want: defaultCaps},
		{name: "add", add: []string{"net_admin", "CAP_SYS_PTRACE", "NET_ADMIN"}, want: append(slices.Clone(defaultCaps), "CAP_NET_ADMIN", "CAP_SYS_PTRACE")},
		{name: "drop", drop: []string{"chown", "CAP_NET_RAW"}, want: without(defaultCaps, "CAP_CHOWN", "CAP_NET_RAW")},
		{name: "add wins over drop", add: []string{"chown"}, drop: []string{"chown"}, want: append(without(defaultCaps, "CAP_CHOWN"), "CAP_CHOWN")},
		{name: "drop all", drop: []string{"ALL"}, want: []string{}},
		{name: "drop all add one", drop: []string{"all"}, add: []string{"kill"}, want: []string{"CAP_KILL"}},
		{name: "add all", add: []string{"ALL"}, want: all},
		{name: "add all drop one", add: []string{"ALL"}, drop: []string{"sys_admin"}, want: without(all, "CAP_SYS_ADMIN")},
		{name: "privileged", privileged: true, drop: []string{"ALL"}, want: all},
		{name: "unknown", add: []string{"cap_flying"}, err: `"cap_flying"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(t)
			o.CapAdd, o.CapDrop, o.Privileged = tc.add, tc.drop, tc.privileged
			s, err := Generate(o)
			if tc.err != "" {
				wantInvalid(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.Process.Capabilities
			for set, got := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s = %q, want %q", set, got, tc.want)
				}
			}
			if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Errorf("inheritable %q, ambient %q: want none", c.Inheritable, c.Ambient)
			}
		})
	}
	if !slices.Contains(all, "CAP_SYS_ADMIN") {
		t.Errorf("all capabilities %q lack CAP_SYS_ADMIN", all)
	}
}

func TestCapabilitiesNonRoot(t *testing.T) {
	o := base(t)
	o.User = "alice"
	c := generate(t, o).Process.Capabilities
	if !slices.Equal(c.Bounding, defaultCaps) || len(c.Effective) != 0 || len(c.Permitted) != 0 {
		t.Errorf("capabilities for a non-root user = %+v, want bounding only", c)
	}
}

func without(list []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
}

func TestResources(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Options)
		want string // JSON of linux.resources without devices
		err  string
	}{
		{name: "none", set: func(*Options) {}, want: `{}`},
		{name: "memory", set: func(o *Options) { o.Memory = 512 << 20 }, want: `{"memory":{"limit":536870912}}`},
		{name: "memory and swap", set: func(o *Options) { o.Memory, o.MemorySwap = 512<<20, 1<<30 }, want: `{"memory":{"limit":536870912,"swap":1073741824}}`},
		{name: "unlimited swap", set: func(o *Options) { o.Memory, o.MemorySwap = 512<<20, -1 }, want: `{"memory":{"limit":536870912,"swap":-1}}`},
		{name: "cpus 1.5", set: func(o *Options) { o.NanoCPUs = 1.5e9 }, want: `{"cpu":{"quota":150000,"period":100000}}`},
		{name: "cpus 0.5 and shares", set: func(o *Options) { o.NanoCPUs, o.CPUShares = 0.5e9, 512 }, want: `{"cpu":{"shares":512,"quota":50000,"period":100000}}`},
		{name: "pids", set: func(o *Options) { o.PidsLimit = 100 }, want: `{"pids":{"limit":100}}`},
		{name: "pids unlimited", set: func(o *Options) { o.PidsLimit = -1 }, want: `{}`},
		{name: "memory too small", set: func(o *Options) { o.Memory = 1 << 20 }, err: "minimum is 6MB"},
		{name: "swap below memory", set: func(o *Options) { o.Memory, o.MemorySwap = 512<<20, 256<<20 }, err: "must be at least --memory"},
		{name: "swap without memory", set: func(o *Options) { o.MemorySwap = 1 << 30 }, err: "needs --memory"},
		{name: "cpus negative", set: func(o *Options) { o.NanoCPUs = -1 }, err: "--cpus"},
		{name: "cpus too small", set: func(o *Options) { o.NanoCPUs = 1e6 }, err: "minimum is 0.01"},
		{name: "cpus too many", set: func(o *Options) { o.NanoCPUs = 1e9 * 100000 }, err: "range of CPUs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base(t)
			tc.set(&o)
			s, err := Generate(o)
			if tc.err != "" {
				wantInvalid(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := *s.Linux.Resources
			r.Devices = nil
			got, _ := json.Marshal(r)
			if string(got) != tc.want {
				t.Errorf("resources = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDevices(t *testing.T) {
	s := generate(t, base(t))
	d := s.Linux.Resources.Devices
	if len(d) == 0 || d[0].Allow || d[0].Type != "" || d[0].Access != "rwm" {
		t.Fatalf("first device rule = %+v, want deny all", d)
	}
	allowed := map[[2]int64]bool{}
	for _, r := range d[1:] {
		if r.Allow && r.Type == "c" && r.Major != nil && r.Minor != nil && r.Access == "rwm" {
			allowed[[2]int64{*r.Major, *r.Minor}] = true
		}
	}
	for name, dev := range map[string][2]int64{"null": {1, 3}, "zero": {1, 5}, "full": {1, 7}, "random": {1, 8}, "urandom": {1, 9}, "tty": {5, 0}, "console": {5, 1}, "ptmx": {5, 2}} {
		if !allowed[dev] {
			t.Errorf("/dev/%s %v is not allowed", name, dev)
		}
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("devices = %+v, want none (the runtime creates the standard ones)", s.Linux.Devices)
	}
}

func mountsByDest(s *specs.Spec) map[string]specs.Mount {
	m := map[string]specs.Mount{}
	for _, x := range s.Mounts {
		m[x.Destination] = x
	}
	return m
}

func TestMounts(t *testing.T) {
	o := base(t)
	o.ShmSize = 128 << 20
	s := generate(t, o)
	m := mountsByDest(s)
	for _, dst := range []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"} {
		if _, ok := m[dst]; !ok {
			t.Errorf("no default mount at %s", dst)
		}
	}
	if shm := m["/dev/shm"]; shm.Type != "tmpfs" || !slices.Contains(shm.Options, "size=134217728") {
		t.Errorf("/dev/shm = %+v, want tmpfs of 128 MiB", shm)
	}
	if !slices.Contains(m["/sys"].Options, "ro") || !slices.Contains(m["/sys/fs/cgroup"].Options, "ro") {
		t.Errorf("/sys or /sys/fs/cgroup is writable: %+v %+v", m["/sys"], m["/sys/fs/cgroup"])
	}

	// User mounts replace defaults at the same destination; order by depth.
	o.Mounts = []Mount{
		{Source: "/host/data/sub", Destination: "/data/sub", ReadOnly: true},
		{Source: "/host/shm", Destination: "/dev/shm/"},
		{Source: "/host/data", Destination: "/data", Options: []string{"rshared"}},
		{Type: "tmpfs", Destination: "/run", Options: []string{"exec", "size=1m"}},
		{Type: "volume", Source: "/var/lib/berth/volumes/v/_data", Destination: "/vol"},
	}
	s = generate(t, o)
	m = mountsByDest(s)
	if shm := m["/dev/shm"]; shm.Type != "bind" || shm.Source != "/host/shm" {
		t.Errorf("/dev/shm = %+v, want the user's bind mount", shm)
	}
	if n := countDest(s, "/dev/shm"); n != 1 {
		t.Errorf("%d mounts at /dev/shm, want 1", n)
	}
	for dst, want := range map[string][]string{
		"/data/sub": {"rbind", "rprivate", "ro"},
		"/data":     {"rbind", "rshared"},
		"/run":      {"nosuid", "nodev", "rprivate", "exec", "size=1m"},
		"/vol":      {"rbind", "rprivate"},
	} {
		if got := m[dst].Options; !slices.Equal(got, want) {
			t.Errorf("%s options = %q, want %q", dst, got, want)
		}
	}
	last := -1
	for _, x := range s.Mounts {
		d := depth(x.Destination)
		if d < last {
			t.Errorf("mounts are not ordered by depth: %s after depth %d", x.Destination, last)
		}
		last = d
	}
	if idx(s, "/data") > idx(s, "/data/sub") {
		t.Errorf("/data is mounted after /data/sub")
	}

	// A user mount at /dev replaces every default under /dev.
	o.Mounts = []Mount{{Source: "/host/dev", Destination: "/dev"}}
	m = mountsByDest(generate(t, o))
	for _, dst := range []string{"/dev/pts", "/dev/shm", "/dev/mqueue"} {
		if _, ok := m[dst]; ok {
			t.Errorf("default %s kept under the user's /dev", dst)
		}
	}
}

func countDest(s *specs.Spec, dst string) (n int) {
	for _, m := range s.Mounts {
		if m.Destination == dst {
			n++
		}
	}
	return n
}

func idx(s *specs.Spec, dst string) int {
	return slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == dst })
}

func TestMountErrors(t *testing.T) {
	for _, tc := range []struct {
		m   []Mount
		err string
	}{
		{[]Mount{{Source: "/a", Destination: "rel"}}, `"rel"`},
		{[]Mount{{Source: "/a", Destination: "/"}}, "can't be '/'"},
		{[]Mount{{Source: "rel", Destination: "/a"}}, `"rel"`},
		{[]Mount{{Type: "volume", Destination: "/a"}}, "no source"},
		{[]Mount{{Type: "nfs", Source: "/a", Destination: "/a"}}, `"nfs"`},
		{[]Mount{{Source: "/a", Destination: "/a"}, {Source: "/b", Destination: "/a/"}}, "duplicate mount point /a"},
	} {
		o := base(t)
		o.Mounts = tc.m
		_, err := Generate(o)
		wantInvalid(t, err, tc.err)
	}
}

func TestReadOnlyRootfs(t *testing.T) {
	o := base(t)
	if generate(t, o).Root.Readonly {
		t.Error("root is read-only by default")
	}
	o.ReadOnlyRootfs = true
	s := generate(t, o)
	if !s.Root.Readonly || s.Root.Path != o.Rootfs {
		t.Errorf("root = %+v, want read-only %s", s.Root, o.Rootfs)
	}
	if m := mountsByDest(s)["/dev/shm"]; slices.Contains(m.Options, "ro") {
		t.Errorf("/dev/shm is read-only with --read-only: %+v", m)
	}
}

func TestPrivileged(t *testing.T) {
	o := base(t)
	s := generate(t, o)
	if len(s.Linux.MaskedPaths) == 0 || len(s.Linux.ReadonlyPaths) == 0 {
		t.Fatalf("masked %q readonly %q: want docker's", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/sys/firmware", "/sys/devices/virtual/powercap"} {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("%s is not masked", p)
		}
	}
	o.Privileged = true
	s = generate(t, o)
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 || s.Linux.Seccomp != nil {
		t.Errorf("privileged: masked %q readonly %q seccomp %v: want none", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Linux.Seccomp)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, allCaps()) {
		t.Errorf("privileged capabilities = %q", s.Process.Capabilities.Bounding)
	}
	m := mountsByDest(s)
	if slices.Contains(m["/sys"].Options, "ro") || slices.Contains(m["/sys/fs/cgroup"].Options, "ro") {
		t.Errorf("privileged /sys is read-only: %+v %+v", m["/sys"], m["/sys/fs/cgroup"])
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || d[0].Access != "rwm" {
		t.Errorf("privileged device rules = %+v, want allow all", d)
	}
}

func nsTypes(s *specs.Spec) map[specs.LinuxNamespaceType]string {
	m := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		m[n.Type] = n.Path
	}
	return m
}

func TestNetwork(t *testing.T) {
	o := base(t)
	s := generate(t, o)
	ns := nsTypes(s)
	for _, typ := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace} {
		if p, ok := ns[typ]; !ok || p != "" {
			t.Errorf("namespace %s: present %v path %q, want a new one", typ, ok, p)
		}
	}
	if _, ok := ns[specs.CgroupNamespace]; ok {
		t.Error("cgroup namespace on a cgroup v1 host")
	}
	if s.Hostname != "0123456789ab" {
		t.Errorf("hostname = %q", s.Hostname)
	}

	o.NetNSPath = "/run/netns/x"
	if p := nsTypes(generate(t, o))[specs.NetworkNamespace]; p != "/run/netns/x" {
		t.Errorf("network namespace path = %q", p)
	}

	o.NetNSPath, o.HostNetwork = "", true
	s = generate(t, o)
	ns = nsTypes(s)
	if _, ok := ns[specs.NetworkNamespace]; ok {
		t.Error("network namespace with the host network")
	}
	if _, ok := ns[specs.UTSNamespace]; ok {
		t.Error("UTS namespace with the host network")
	}
	if s.Hostname != "" {
		t.Errorf("hostname = %q with the host network, want the host's (empty)", s.Hostname)
	}
	if host, _ := os.Hostname(); !slices.Contains(s.Process.Env, "HOSTNAME="+host) {
		t.Errorf("env %q lacks the host's HOSTNAME=%s", s.Process.Env, host)
	}

	o.NetNSPath = "/run/netns/x"
	_, err := Generate(o)
	wantInvalid(t, err, "conflict")
}

func TestCgroupNamespace(t *testing.T) {
	defer func(f func() bool) { cgroup2Only = f }(cgroup2Only)
	cgroup2Only = func() bool { return true }
	if _, ok := nsTypes(generate(t, base(t)))[specs.CgroupNamespace]; !ok {
		t.Error("no cgroup namespace on a cgroup v2 host")
	}
}

func TestCgroupsPath(t *testing.T) {
	o := base(t)
	if p := generate(t, o).Linux.CgroupsPath; p != "/berth/"+testID {
		t.Errorf("cgroupsPath = %q", p)
	}
	o.CgroupParent = "custom/parent"
	if p := generate(t, o).Linux.CgroupsPath; p != "/custom/parent/"+testID {
		t.Errorf("cgroupsPath = %q", p)
	}
	o.CgroupParent = "system.slice:berth:x"
	_, err := Generate(o)
	wantInvalid(t, err, "systemd")
	o.CgroupParent, o.ID = "", "../x"
	_, err = Generate(o)
	wantInvalid(t, err, "container ID")
}

func TestSysctlsUlimitsAnnotations(t *testing.T) {
	o := base(t)
	o.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"}
	o.Ulimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048}}
	o.Annotations = map[string]string{"a": "b"}
	s := generate(t, o)
	if s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" || len(s.Process.Rlimits) != 1 || s.Annotations["a"] != "b" {
		t.Errorf("sysctl %v rlimits %v annotations %v", s.Linux.Sysctl, s.Process.Rlimits, s.Annotations)
	}
	if s := generate(t, base(t)); len(s.Process.Rlimits) != 0 || s.Process.OOMScoreAdj != nil || s.Process.NoNewPrivileges {
		t.Errorf("default rlimits %v oomScoreAdj %v noNewPrivileges %v: want none", s.Process.Rlimits, s.Process.OOMScoreAdj, s.Process.NoNewPrivileges)
	}
	o.Sysctls = map[string]string{"kernel.panic": "1"}
	_, err := Generate(o)
	wantInvalid(t, err, `"kernel.panic"`)
	o.Sysctls, o.HostNetwork = map[string]string{"net.ipv4.ip_forward": "1"}, true
	_, err = Generate(o)
	wantInvalid(t, err, "host network")
	o.Sysctls, o.HostNetwork = nil, false
	o.Ulimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 4096, Hard: 2048}}
	_, err = Generate(o)
	wantInvalid(t, err, "RLIMIT_NOFILE")
}

func TestRequired(t *testing.T) {
	_, err := Generate(Options{Rootfs: "/", Cmd: []string{"x"}})
	wantInvalid(t, err, "container ID")
	_, err = Generate(Options{ID: testID, Rootfs: "rel", Cmd: []string{"x"}})
	wantInvalid(t, err, "rootfs")
}

// TestGolden pins the whole default spec (testdata/default.golden; rewrite
// it with go test -update).
func TestGolden(t *testing.T) {
	o := base(t)
	o.Image.Entrypoint = []string{"/docker-entrypoint.sh"}
	o.Image.Cmd = []string{"nginx", "-g", "daemon off;"}
	o.Image.WorkingDir = "/srv"
	o.Env = []string{"MODE=prod"}
	o.TTY = true
	o.Mounts = []Mount{
		{Source: "/var/lib/berth/containers/x/hosts", Destination: "/etc/hosts"},
		{Source: "/var/lib/berth/containers/x/resolv.conf", Destination: "/etc/resolv.conf"},
		{Source: "/var/lib/berth/containers/x/hostname", Destination: "/etc/hostname"},
	}
	o.Memory = 256 << 20
	o.NanoCPUs = 1.5e9
	s := generate(t, o)
	s.Root.Path = "/ROOTFS"
	// The seccomp profile is moby's, tested on its own (TestSeccomp).
	s.Linux.Seccomp = nil
	got, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "default.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("spec differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
}

func TestResolveUser(t *testing.T) {
	root := rootfs(t)
	u, err := ResolveUser(root, "alice")
	if err != nil || u.UID != 1000 || u.GID != 1000 || !slices.Equal(u.AdditionalGids, []uint32{1000, 10, 29}) {
		t.Errorf("ResolveUser(alice) = %+v, %v", u, err)
	}
	_, err = ResolveUser(root, "nobody-here")
	wantInvalid(t, err, `"nobody-here"`)
	if all := AllCapabilities(); !slices.Contains(all, "CAP_SYS_ADMIN") || !slices.Contains(all, "CAP_CHOWN") {
		t.Errorf("AllCapabilities() = %q", all)
	}
}

func TestSeccomp(t *testing.T) {
	s := generate(t, base(t))
	sec := s.Linux.Seccomp
	if sec == nil || sec.DefaultAction != specs.ActErrno {
		t.Fatalf("default spec: seccomp %v, want docker's profile (default action errno)", sec)
	}
	allowed := func(sec *specs.LinuxSeccomp, name string) bool {
		for _, sc := range sec.Syscalls {
			if sc.Action == specs.ActAllow && len(sc.Args) == 0 && slices.Contains(sc.Names, name) {
				return true
			}
		}
		return false
	}
	if !allowed(sec, "read") || allowed(sec, "kexec_load") || allowed(sec, "mount") {
		t.Errorf("profile allows read %t, kexec_load %t, mount %t; want true, false, false", allowed(sec, "read"), allowed(sec, "kexec_load"), allowed(sec, "mount"))
	}
	// CAP_SYS_ADMIN added lets its syscalls through, as docker's profile does.
	o := base(t)
	o.CapAdd = []string{"SYS_ADMIN"}
	if sec := generate(t, o).Linux.Seccomp; !allowed(sec, "mount") {
		t.Error("with CAP_SYS_ADMIN, mount is still filtered")
	}
	o = base(t)
	o.SeccompUnconfined = true
	if sec := generate(t, o).Linux.Seccomp; sec != nil {
		t.Error("seccomp=unconfined still has a profile")
	}
}
