package ocispec

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/profiles/seccomp"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Options is what `berth run` decides about a container's process and
// isolation. The zero value of every field but ID and Rootfs means docker's
// default.
type Options struct {
	// ID is the container ID (64 hex digits). It names the container's
	// cgroup and its default hostname. Required.
	ID string
	// Hostname is the container's hostname (-h). Default: the first 12
	// characters of ID; with HostNetwork the host's hostname is kept.
	Hostname string
	// Rootfs is the absolute path of the mounted root filesystem
	// (spec.Root.Path). User and group names are resolved from its
	// /etc/passwd and /etc/group, opened inside it. Required.
	Rootfs string
	// Image is the image's config: Env, Entrypoint, Cmd, WorkingDir, User.
	Image imagespec.ImageConfig

	// Entrypoint is --entrypoint; it is used only when EntrypointSet. Set and
	// empty (or [""]) clears the image's ENTRYPOINT. Setting it also clears
	// the image's CMD, as docker does.
	Entrypoint []string
	// EntrypointSet says --entrypoint was given.
	EntrypointSet bool
	// Cmd is the arguments after the image name; non-empty replaces the
	// image's CMD.
	Cmd []string
	// Env is -e KEY=VAL, applied over the image's Env (same key replaced,
	// later wins). The caller resolves -e KEY (no value) and --env-file.
	Env []string
	// WorkingDir is -w; default the image's WORKDIR, else "/". Absolute.
	WorkingDir string
	// User is -u: "name", "uid", "uid:gid", "name:group" (or mixes);
	// default the image's USER, else root.
	User string
	// TTY is -t: process.terminal and TERM=xterm.
	TTY bool
	// Mounts are -v, --mount and --tmpfs, and the /etc/hosts,
	// /etc/resolv.conf and /etc/hostname bind mounts the caller supplies.
	// Volumes must be resolved to a host path (Source) before Generate.
	Mounts []Mount
	// ReadOnlyRootfs is --read-only.
	ReadOnlyRootfs bool
	// Privileged is --privileged: all capabilities, no masked or read-only
	// paths, writable /sys, allow-all device cgroup.
	Privileged bool
	// CapAdd and CapDrop are --cap-add and --cap-drop: docker names with or
	// without the CAP_ prefix, any case, or "ALL".
	CapAdd, CapDrop []string
	// Memory is -m in bytes; 0 means unlimited.
	Memory int64
	// MemorySwap is --memory-swap in bytes (memory plus swap); 0 means
	// unset, -1 unlimited swap.
	MemorySwap int64
	// NanoCPUs is --cpus * 1e9, turned into a CFS quota over a 100ms period.
	NanoCPUs int64
	// CPUShares is -c (--cpu-shares); 0 means the kernel's default.
	CPUShares int64
	// PidsLimit is --pids-limit; 0 or negative means unlimited.
	PidsLimit int64
	// NetNSPath is a network namespace to join; "" (without HostNetwork)
	// makes the runtime create a new, empty one.
	NetNSPath string
	// HostNetwork is --network host: no network namespace and no UTS
	// namespace, so the container keeps the host's hostname.
	HostNetwork bool
	// CgroupParent is --cgroup-parent, cgroupfs style; default "/berth".
	// The container's cgroupsPath is CgroupParent + "/" + ID.
	CgroupParent string
	// Annotations become spec.Annotations (labels stay out of the spec).
	Annotations map[string]string
	// Sysctls is --sysctl; only namespaced sysctls are accepted, and no
	// net.* with HostNetwork.
	Sysctls map[string]string
	// Ulimits is --ulimit. No default rlimits are ever set.
	Ulimits []specs.POSIXRlimit
	// ShmSize is --shm-size in bytes for the /dev/shm tmpfs; default 64 MiB.
	ShmSize int64
	// SeccompUnconfined is --security-opt seccomp=unconfined: no syscall
	// filter. Otherwise a container that is not privileged gets docker's
	// default profile.
	SeccompUnconfined bool
	// NoNewPrivileges is --security-opt no-new-privileges: setuid binaries
	// and file capabilities give nothing.
	NoNewPrivileges bool
}

// Mount is one mount the user asked for.
type Mount struct {
	// Type is "bind" (also ""), "tmpfs", or "volume". A volume is the
	// caller's business: it resolves it to a host directory, sets Source
	// and Generate mounts it as a bind.
	Type string
	// Source is the host path of a bind or volume; unused for tmpfs.
	Source string
	// Destination is the absolute path inside the container.
	Destination string
	// ReadOnly mounts it read-only.
	ReadOnly bool
	// Options are extra mount options: propagation ("rshared", ...) or
	// "bind" (non-recursive) for binds, "size=64m", "mode=1777", "exec"...
	// for tmpfs.
	Options []string
	// NoCopy is for volumes (nocopy, volume-nocopy): the caller must not
	// copy the image's content at Destination into a new volume.
	// Generate ignores it.
	NoCopy bool
}

const (
	defaultCgroupParent = "/berth"
	defaultShmSize      = 64 << 20
	defaultPath         = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	cfsPeriod           = 100000 // microseconds, docker's default
	minMemory           = 6 << 20
)

// Generate returns the spec for o. Errors are errdefs kinds
// (ErrInvalidArgument for bad user input) whose messages name the bad value
// and what to do about it.
func Generate(o Options) (*specs.Spec, error) {
	if err := checkID(o.ID); err != nil {
		return nil, err
	}
	if o.Rootfs == "" || !filepath.IsAbs(o.Rootfs) {
		return nil, fmt.Errorf("rootfs %q must be an absolute path: %w", o.Rootfs, errdefs.ErrInvalidArgument)
	}
	if o.HostNetwork && o.NetNSPath != "" {
		return nil, fmt.Errorf("the host network and the network namespace %q conflict: choose one: %w", o.NetNSPath, errdefs.ErrInvalidArgument)
	}

	args, err := command(o)
	if err != nil {
		return nil, err
	}
	cwd := o.WorkingDir
	if cwd == "" {
		cwd = o.Image.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("the working directory %q is invalid: it needs to be an absolute path: %w", cwd, errdefs.ErrInvalidArgument)
	}
	cwd = path.Clean(cwd)

	userSpec := o.User
	if userSpec == "" {
		userSpec = o.Image.User
	}
	usr, home, err := resolveUser(o.Rootfs, userSpec)
	if err != nil {
		return nil, err
	}

	hostname := o.Hostname
	envHostname := hostname
	if o.HostNetwork {
		hostname = "" // no UTS namespace: the host's hostname stays
		if envHostname == "" {
			envHostname, _ = os.Hostname()
		}
	} else if hostname == "" {
		hostname = o.ID[:min(12, len(o.ID))]
		envHostname = hostname
	}
	env, err := environment(o, envHostname, home)
	if err != nil {
		return nil, err
	}

	capList, err := capabilities(o.CapAdd, o.CapDrop, o.Privileged)
	if err != nil {
		return nil, err
	}
	// As docker: a non-root user keeps only the bounding set, as execve
	// would leave it.
	caps := &specs.LinuxCapabilities{Bounding: capList}
	if usr.UID == 0 {
		caps.Effective = slices.Clone(capList)
		caps.Permitted = slices.Clone(capList)
	}

	mounts, err := mounts(o)
	if err != nil {
		return nil, err
	}
	resources, err := resources(o)
	if err != nil {
		return nil, err
	}
	if err := checkSysctls(o.Sysctls, o.HostNetwork); err != nil {
		return nil, err
	}
	for _, u := range o.Ulimits {
		if !strings.HasPrefix(u.Type, "RLIMIT_") || u.Soft > u.Hard {
			return nil, fmt.Errorf("invalid ulimit %s=%d:%d: want an RLIMIT_ name and soft <= hard: %w", u.Type, u.Soft, u.Hard, errdefs.ErrInvalidArgument)
		}
	}

	parent := o.CgroupParent
	if parent == "" {
		parent = defaultCgroupParent
	}
	if strings.Contains(parent, ":") {
		return nil, fmt.Errorf("cgroup parent %q: systemd slices are not supported, give a cgroupfs path such as /berth: %w", parent, errdefs.ErrInvalidArgument)
	}

	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: hostname,
		Root:     &specs.Root{Path: o.Rootfs, Readonly: o.ReadOnlyRootfs},
		Process: &specs.Process{
			Terminal:        o.TTY,
			User:            usr,
			Args:            args,
			Env:             env,
			Cwd:             cwd,
			Capabilities:    caps,
			Rlimits:         slices.Clone(o.Ulimits),
			NoNewPrivileges: o.NoNewPrivileges,
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			CgroupsPath: path.Join("/", parent, o.ID),
			Resources:   resources,
			Namespaces:  namespaces(o),
		},
	}
	if len(o.Annotations) > 0 {
		s.Annotations = make(map[string]string, len(o.Annotations))
		for k, v := range o.Annotations {
			s.Annotations[k] = v
		}
	}
	if len(o.Sysctls) > 0 {
		s.Linux.Sysctl = make(map[string]string, len(o.Sysctls))
		for k, v := range o.Sysctls {
			s.Linux.Sysctl[k] = v
		}
	}
	if !o.Privileged && !o.SeccompUnconfined {
		// docker's default profile, fitted to the capabilities just set.
		sec, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			return nil, fmt.Errorf("the default seccomp profile: %w", err)
		}
		s.Linux.Seccomp = sec
	}
	if !o.Privileged {
		s.Linux.MaskedPaths = []string{
			"/proc/asound",
			"/proc/acpi",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/proc/scsi",
			"/sys/firmware",
			"/sys/devices/virtual/powercap",
		}
		s.Linux.ReadonlyPaths = []string{
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger",
		}
	}
	return s, nil
}

func checkID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/:") {
		return fmt.Errorf("container ID %q is invalid: it names the cgroup, so it must be non-empty without '/' or ':': %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// command applies docker's ENTRYPOINT and CMD rules.
func command(o Options) ([]string, error) {
	entrypoint, cmd := o.Image.Entrypoint, o.Image.Cmd
	if o.EntrypointSet {
		entrypoint, cmd = o.Entrypoint, nil
		if len(entrypoint) == 1 && entrypoint[0] == "" {
			entrypoint = nil
		}
	}
	if len(o.Cmd) > 0 {
		cmd = o.Cmd
	}
	args := append(append([]string{}, entrypoint...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command specified: the image has no ENTRYPOINT or CMD, give one after the image name or with --entrypoint: %w", errdefs.ErrInvalidArgument)
	}
	return args, nil
}

// environment builds the process environment as docker does: its defaults,
// then the image's Env, then the user's, each replacing an earlier value of
// the same key in place.
func environment(o Options, hostname, home string) ([]string, error) {
	env := []string{"PATH=" + defaultPath, "HOSTNAME=" + hostname}
	if o.TTY {
		env = append(env, "TERM=xterm")
	}
	env = setEnv(env, o.Image.Env)
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("invalid environment variable %q: want KEY=VALUE: %w", kv, errdefs.ErrInvalidArgument)
		}
	}
	env = setEnv(env, o.Env)
	if home != "" && envIndex(env, "HOME") < 0 {
		env = append(env, "HOME="+home)
	}
	return env, nil
}

// MergeEnv returns env with each KEY=VALUE of over set: a key already
// there is replaced in place, a new one appended. env is not changed.
func MergeEnv(env, over []string) []string {
	return setEnv(slices.Clone(env), over)
}

func setEnv(env, over []string) []string {
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		if i := envIndex(env, k); i >= 0 {
			env[i] = kv
		} else {
			env = append(env, kv)
		}
	}
	return env
}

func envIndex(env []string, key string) int {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return i
		}
	}
	return -1
}

func namespaces(o Options) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.MountNamespace},
	}
	if !o.HostNetwork {
		ns = append(ns,
			specs.LinuxNamespace{Type: specs.UTSNamespace},
			specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: o.NetNSPath})
	}
	if cgroup2Only() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

// cgroup2Only reports whether the host mounts cgroup v2 as its only
// hierarchy; only then does a container get a cgroup namespace by default,
// as in docker. A variable so tests can pin it.
var cgroup2Only = func() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// Resources are the cgroup limits of o alone (memory, CPU, pids), checked
// as Generate checks them: what `update` changes on a running container.
func Resources(o Options) (*specs.LinuxResources, error) {
	r, err := resources(o)
	if err != nil {
		return nil, err
	}
	r.Devices = nil
	return r, nil
}

func resources(o Options) (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{Devices: defaultDeviceRules()}
	if o.Privileged {
		r.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	switch {
	case o.Memory < 0:
		return nil, fmt.Errorf("invalid memory limit %d: give a positive size such as 512m: %w", o.Memory, errdefs.ErrInvalidArgument)
	case o.Memory > 0 && o.Memory < minMemory:
		return nil, fmt.Errorf("memory limit %d is too small: the minimum is 6MB: %w", o.Memory, errdefs.ErrInvalidArgument)
	case o.MemorySwap > 0 && o.Memory == 0:
		return nil, fmt.Errorf("--memory-swap %d needs --memory too: %w", o.MemorySwap, errdefs.ErrInvalidArgument)
	case o.MemorySwap > 0 && o.MemorySwap < o.Memory:
		return nil, fmt.Errorf("--memory-swap %d must be at least --memory %d (it counts memory plus swap): %w", o.MemorySwap, o.Memory, errdefs.ErrInvalidArgument)
	case o.MemorySwap < -1:
		return nil, fmt.Errorf("invalid --memory-swap %d: give a size, or -1 for unlimited swap: %w", o.MemorySwap, errdefs.ErrInvalidArgument)
	}
	if o.Memory > 0 || o.MemorySwap != 0 {
		r.Memory = &specs.LinuxMemory{}
		if o.Memory > 0 {
			r.Memory.Limit = ptr(o.Memory)
		}
		if o.MemorySwap != 0 {
			r.Memory.Swap = ptr(o.MemorySwap)
		}
	}

	if o.NanoCPUs < 0 || o.NanoCPUs > int64(runtime.NumCPU())*1e9 {
		return nil, fmt.Errorf("invalid --cpus %s: the range of CPUs is from 0.01 to %d: %w", strconv.FormatFloat(float64(o.NanoCPUs)/1e9, 'f', -1, 64), runtime.NumCPU(), errdefs.ErrInvalidArgument)
	}
	if o.CPUShares < 0 {
		return nil, fmt.Errorf("invalid --cpu-shares %d: give a positive weight (default 1024): %w", o.CPUShares, errdefs.ErrInvalidArgument)
	}
	if o.NanoCPUs > 0 || o.CPUShares > 0 {
		r.CPU = &specs.LinuxCPU{}
		if o.NanoCPUs > 0 {
			quota := o.NanoCPUs * cfsPeriod / 1e9
			if quota < 1000 {
				return nil, fmt.Errorf("invalid --cpus %s: the minimum is 0.01: %w", strconv.FormatFloat(float64(o.NanoCPUs)/1e9, 'f', -1, 64), errdefs.ErrInvalidArgument)
			}
			r.CPU.Quota = ptr(quota)
			r.CPU.Period = ptr(uint64(cfsPeriod))
		}
		if o.CPUShares > 0 {
			r.CPU.Shares = ptr(uint64(o.CPUShares))
		}
	}
	if o.PidsLimit > 0 {
		r.Pids = &specs.LinuxPids{Limit: ptr(o.PidsLimit)}
	}
	return r, nil
}

// defaultDeviceRules denies every device but the ones runc allows by
// default (libcontainer/specconv.AllowedDevices): mknod of any device, the
// standard character devices, the pty multiplexer and its slaves, and
// /dev/net/tun.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	char := func(major, minor int64, access string) specs.LinuxDeviceCgroup {
		d := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: access}
		if major >= 0 {
			d.Major = ptr(major)
		}
		if minor >= 0 {
			d.Minor = ptr(minor)
		}
		return d
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		char(-1, -1, "m"), // mknod of any char device
		{Allow: true, Type: "b", Access: "m"},
		char(1, 3, "rwm"),    // /dev/null
		char(1, 5, "rwm"),    // /dev/zero
		char(1, 7, "rwm"),    // /dev/full
		char(1, 8, "rwm"),    // /dev/random
		char(1, 9, "rwm"),    // /dev/urandom
		char(5, 0, "rwm"),    // /dev/tty
		char(5, 1, "rwm"),    // /dev/console
		char(5, 2, "rwm"),    // /dev/ptmx
		char(136, -1, "rwm"), // /dev/pts/*
		char(10, 200, "rwm"), // /dev/net/tun
	}
}

// checkSysctls accepts the sysctls docker accepts: those namespaced by the
// IPC namespace (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*), the UTS
// namespace (kernel.domainname) and, unless on the host network, the network
// namespace (net.*).
func checkSysctls(sysctls map[string]string, hostNetwork bool) error {
	for k := range sysctls {
		switch {
		case k == "kernel.sem", k == "kernel.shm_rmid_forced",
			strings.HasPrefix(k, "kernel.msg"), strings.HasPrefix(k, "kernel.shm"),
			strings.HasPrefix(k, "fs.mqueue."):
		case k == "kernel.domainname" && !hostNetwork:
		case strings.HasPrefix(k, "net."):
			if hostNetwork {
				return fmt.Errorf("sysctl %q is not allowed with the host network: it would change the host: %w", k, errdefs.ErrInvalidArgument)
			}
		default:
			return fmt.Errorf("sysctl %q is not allowed: only namespaced sysctls (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*) can be set in a container: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
