// Package hostinfo reads what berthd reports about the machine in `berth
// info` and `berth version`: the kernel, the distribution, the cgroup
// setup, CPUs and memory, and the filesystem a directory is on.
package hostinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Kernel returns the kernel's release ("6.1.0-26-amd64") and machine
// ("x86_64").
func Kernel() (release, machine string, err error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:]), nil
}

// OS returns the distribution's PRETTY_NAME and VERSION_ID from
// os-release (/etc, else /usr/lib, as the os-release spec says).
func OS() (name, version string, err error) {
	var b []byte
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err = os.ReadFile(p); err == nil {
			break
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("read os-release: %w", err)
	}
	fields := parseOSRelease(b)
	name = fields["PRETTY_NAME"]
	if name == "" {
		name = fields["NAME"]
	}
	return name, fields["VERSION_ID"], nil
}

func parseOSRelease(b []byte) map[string]string {
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		fields[k] = v
	}
	return fields
}

// CgroupVersion returns "2" when /sys/fs/cgroup is the unified hierarchy
// and "1" otherwise (also for the hybrid layout, as docker reports it).
func CgroupVersion() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	return "1"
}

// CgroupDriver returns the cgroup manager containers will get by default:
// systemd's on the unified hierarchy when systemd runs the machine, the
// cgroup filesystem otherwise (docker's and runc's default choice).
func CgroupDriver() string {
	if CgroupVersion() == "2" {
		if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
			return "systemd"
		}
	}
	return "cgroupfs"
}

// CPUs returns the CPUs this process may run on.
func CPUs() int { return runtime.NumCPU() }

// MemTotal returns the machine's memory in bytes.
func MemTotal() (int64, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, fmt.Errorf("sysinfo: %w", err)
	}
	return int64(si.Totalram) * int64(si.Unit), nil
}

// filesystems names the magic numbers of statfs(2) that a berth root is
// likely on, with docker's names for them.
var filesystems = map[int64]string{
	unix.EXT4_SUPER_MAGIC:      "extfs",
	unix.XFS_SUPER_MAGIC:       "xfs",
	unix.BTRFS_SUPER_MAGIC:     "btrfs",
	unix.TMPFS_MAGIC:           "tmpfs",
	unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
	unix.F2FS_SUPER_MAGIC:      "f2fs",
	unix.NFS_SUPER_MAGIC:       "nfs",
	unix.FUSE_SUPER_MAGIC:      "fuse",
	unix.V9FS_MAGIC:            "9p",
}

// Filesystem returns the name of the filesystem dir is on ("extfs",
// "xfs"...), or its magic number in hex when it has no name here.
func Filesystem(dir string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", fmt.Errorf("statfs %s: %w", dir, err)
	}
	if name, ok := filesystems[int64(st.Type)]; ok {
		return name, nil
	}
	return fmt.Sprintf("0x%x", st.Type), nil
}
