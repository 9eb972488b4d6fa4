package ocispec

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultMounts are docker's, for a container with its own IPC namespace.
func defaultMounts(shmSize int64, privileged bool) []specs.Mount {
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	cgroupOpts := []string{"nosuid", "noexec", "nodev", "relatime", "ro"}
	if privileged {
		// docker leaves /sys and the cgroup tree writable for --privileged.
		sysOpts = sysOpts[:3]
		cgroupOpts = cgroupOpts[:4]
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: cgroupOpts},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shmSize, 10)}},
	}
}

// mounts merges the defaults and the user's mounts: a user mount replaces the
// default at the same destination, a user mount at /dev replaces every
// default under /dev, and the result is ordered by destination depth so a
// parent is mounted before what is mounted inside it (order is otherwise
// kept).
func mounts(o Options) ([]specs.Mount, error) {
	shm := o.ShmSize
	switch {
	case shm < 0:
		return nil, fmt.Errorf("invalid --shm-size %d: give a positive size such as 64m: %w", shm, errdefs.ErrInvalidArgument)
	case shm == 0:
		shm = defaultShmSize
	}
	user := make([]specs.Mount, 0, len(o.Mounts))
	seen := map[string]bool{}
	for _, m := range o.Mounts {
		sm, err := specMount(m)
		if err != nil {
			return nil, err
		}
		if seen[sm.Destination] {
			return nil, fmt.Errorf("duplicate mount point %s: mount one thing there: %w", sm.Destination, errdefs.ErrInvalidArgument)
		}
		seen[sm.Destination] = true
		user = append(user, sm)
	}
	var all []specs.Mount
	for _, m := range defaultMounts(shm, o.Privileged) {
		if seen[m.Destination] || (seen["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		all = append(all, m)
	}
	all = append(all, user...)
	sort.SliceStable(all, func(i, j int) bool { return depth(all[i].Destination) < depth(all[j].Destination) })
	return all, nil
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(path.Clean(p), "/")
}

// specMount turns a user's mount into the spec's, with docker's options:
// binds are recursive and rprivate unless told otherwise; tmpfs gets
// noexec, nosuid and nodev unless told otherwise.
func specMount(m Mount) (specs.Mount, error) {
	if !path.IsAbs(m.Destination) {
		return specs.Mount{}, fmt.Errorf("mount destination %q must be an absolute path: %w", m.Destination, errdefs.ErrInvalidArgument)
	}
	dst := path.Clean(m.Destination)
	if dst == "/" {
		return specs.Mount{}, fmt.Errorf("invalid mount destination %q: it can't be '/': %w", m.Destination, errdefs.ErrInvalidArgument)
	}
	switch m.Type {
	case "", "bind", "volume":
		if m.Source == "" {
			return specs.Mount{}, fmt.Errorf("the mount at %s has no source: create its volume and set its host path first: %w", dst, errdefs.ErrInvalidArgument)
		}
		if !path.IsAbs(m.Source) {
			return specs.Mount{}, fmt.Errorf("bind source %q must be an absolute path: %w", m.Source, errdefs.ErrInvalidArgument)
		}
		var opts []string
		if !slices.Contains(m.Options, "bind") && !slices.Contains(m.Options, "rbind") {
			opts = append(opts, "rbind")
		}
		hasPropagation := false
		for _, o := range m.Options {
			if propagationModes[o] {
				hasPropagation = true
			}
		}
		opts = append(opts, m.Options...)
		if !hasPropagation {
			opts = append(opts, "rprivate")
		}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		return specs.Mount{Destination: dst, Type: "bind", Source: path.Clean(m.Source), Options: opts}, nil
	case "tmpfs":
		opts := []string{"noexec", "nosuid", "nodev", "rprivate"}
		opts = append(opts, m.Options...)
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		return specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: mergeOptions(opts)}, nil
	default:
		return specs.Mount{}, fmt.Errorf("mount type %q at %s is not supported: use bind, volume or tmpfs: %w", m.Type, dst, errdefs.ErrInvalidArgument)
	}
}

var propagationModes = map[string]bool{
	"shared": true, "rshared": true, "slave": true, "rslave": true, "private": true, "rprivate": true,
}

// flagPairs maps each mount flag to its opposite, so the later one wins.
var flagPairs = map[string]string{
	"ro": "rw", "rw": "ro",
	"exec": "noexec", "noexec": "exec",
	"suid": "nosuid", "nosuid": "suid",
	"dev": "nodev", "nodev": "dev",
	"atime": "noatime", "noatime": "atime",
	"diratime": "nodiratime", "nodiratime": "diratime",
	"sync": "async", "async": "sync",
	"mand": "nomand", "nomand": "mand",
}

// mergeOptions keeps the last of each option, of each flag pair
// (noexec/exec...), each propagation mode and each key=value, in the order
// they were last given (like moby's MergeTmpfsOptions).
func mergeOptions(opts []string) []string {
	var out []string
	drop := func(pred func(string) bool) {
		out = slices.DeleteFunc(out, pred)
	}
	for _, o := range opts {
		switch k, _, isKV := strings.Cut(o, "="); {
		case isKV:
			drop(func(x string) bool { return strings.HasPrefix(x, k+"=") })
		case propagationModes[o]:
			drop(func(x string) bool { return propagationModes[x] })
		default:
			drop(func(x string) bool { return x == o || x == flagPairs[o] })
		}
		out = append(out, o)
	}
	return out
}
