package runner

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// warmCgroupMigration moves this process into the cgroup it is already in.
//
// Moving a process between cgroups takes the kernel's global threadgroup
// rwsem for writing, and the first writer after an idle spell waits for an
// RCU grace period (about 8 ms on a 2-CPU host) before the lock switches to
// its writer mode; writers that follow within a grace period pay nothing.
// libcontainer moves the container's init into its cgroups on the critical
// path of every start. A no-op move of ourselves, started at once in the
// background, makes that grace period elapse while the rest of the set-up
// (config, state directory, exec of the init) goes on. It changes nothing:
// the destination is our own cgroup, and errors are ignored.
func warmCgroupMigration() {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := bytes.SplitN(sc.Bytes(), []byte(":"), 3)
		if len(parts) != 3 {
			continue
		}
		var dir string
		switch ctrl := string(parts[1]); {
		case string(parts[0]) == "0" && ctrl == "":
			// The v2 hierarchy: on its own at /sys/fs/cgroup, or beside
			// v1 at /sys/fs/cgroup/unified (hybrid hosts).
			dir = "/sys/fs/cgroup/unified"
			if _, err := os.Stat(dir); err != nil {
				dir = "/sys/fs/cgroup"
			}
		case ctrl == "pids":
			dir = "/sys/fs/cgroup/pids"
		default:
			continue
		}
		if os.WriteFile(filepath.Join(dir, string(parts[2]), "cgroup.procs"), pid, 0) == nil {
			return
		}
	}
}
