package testimage

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// defaultPath is PATH inside the image.
const defaultPath = "/bin:/usr/bin"

// WriteBundle writes an OCI runtime bundle: dir/rootfs with the image's
// layers applied and dir/config.json from DefaultSpec(opts.Args...).
func WriteBundle(dir string, opts Options) error {
	if err := WriteRootfs(filepath.Join(dir, "rootfs"), opts); err != nil {
		return err
	}
	return WriteSpec(dir, DefaultSpec(opts.Args...))
}

// WriteRootfs applies the image's layers in order to dir (the root
// filesystem itself, created if missing), honouring their whiteouts.
func WriteRootfs(dir string, opts Options) error {
	layers, err := Layers(opts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	defer root.Close()
	for _, l := range layers {
		if err := extract(root, l.Tar); err != nil {
			return fmt.Errorf("rootfs %s: layer %s: %w", dir, l.Name, err)
		}
	}
	return nil
}

// WriteSpec writes spec as dir/config.json.
func WriteSpec(dir string, spec *specs.Spec) error {
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("marshal runtime spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write runtime spec: %w", err)
	}
	return nil
}

// DefaultSpec returns the runtime spec of a container running args (default
// "sh") as root in the bundle's rootfs, shaped like runc's `runc spec`:
// docker's default capabilities, no new privileges, hostname "berth", the
// usual mounts, masked and read-only paths, and every namespace but user.
// It sets no rlimits: raising them needs CAP_SYS_RESOURCE, which the test
// hosts do not give root.
func DefaultSpec(args ...string) *specs.Spec {
	if len(args) == 0 {
		args = []string{"sh"}
	}
	caps := []string{
		"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
		"CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
		"CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
	}
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: slices.Clone(args),
			Env:  []string{"PATH=" + defaultPath, "TERM=xterm"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  slices.Clone(caps),
				Effective: slices.Clone(caps),
				Permitted: slices.Clone(caps),
			},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "berth",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs",
				Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
				Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
				Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue",
				Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs",
				Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
				Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			// Deny every device; the runtime adds the default allowed ones.
			Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.CgroupNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}
