package bootstrap

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupRoots are the cgroup hierarchies: the unified one (cgroup v2), or
// each v1 one (its aliases, symbolic links such as cpu -> cpu,cpuacct,
// left out).
func cgroupRoots() []string {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return []string{cgroupRoot}
	}
	// Readdirnames, not ReadDir, which would link a sort into every shim.
	f, err := os.Open(cgroupRoot)
	if err != nil {
		return nil
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	var roots []string
	for _, name := range names {
		root := filepath.Join(cgroupRoot, name)
		if fi, err := os.Lstat(root); err == nil && fi.IsDir() {
			roots = append(roots, root)
		}
	}
	return roots
}

// joinCgroup moves pid into the cgroup path (relative to each hierarchy,
// as runc's ShimCgroup option names it) in every hierarchy of roots where
// it exists, as containerd's runc shim does; it fails if none has it.
func joinCgroup(roots []string, path string, pid int) error {
	joined := false
	for _, root := range roots {
		dir := filepath.Join(root, filepath.Clean("/"+path))
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("move the shim into cgroup %s: %w", dir, err)
		}
		joined = true
	}
	if !joined {
		return fmt.Errorf("shim cgroup %q: no such cgroup under %s", path, cgroupRoot)
	}
	return nil
}
