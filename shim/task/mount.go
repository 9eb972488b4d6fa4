package task

import (
	"errors"
	"fmt"
	"os"
	"strings"

	apitypes "github.com/containerd/containerd/api/types"
	"golang.org/x/sys/unix"
)

// mountFlags are the options that are mount flags; the rest is data.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"noatime": {false, unix.MS_NOATIME}, "relatime": {false, unix.MS_RELATIME},
	"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS},
}

// mountAll mounts the rootfs mounts containerd gives with Create onto target,
// in order; on failure it unmounts what it mounted.
func mountAll(mounts []*apitypes.Mount, target string) (retErr error) {
	if len(mounts) == 0 {
		return nil
	}
	if err := os.MkdirAll(target, 0o711); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	done := 0
	defer func() {
		if retErr != nil {
			for ; done > 0; done-- {
				_ = unix.Unmount(target, unix.MNT_DETACH)
			}
		}
	}()
	for _, m := range mounts {
		var flags uintptr
		var data []string
		for _, o := range m.Options {
			if f, ok := mountFlags[o]; ok {
				if f.clear {
					flags &^= f.flag
				} else {
					flags |= f.flag
				}
				continue
			}
			data = append(data, o)
		}
		fstype := m.Type
		if flags&unix.MS_BIND != 0 {
			fstype = ""
		}
		if err := unix.Mount(m.Source, target, fstype, flags&^unix.MS_RDONLY, strings.Join(data, ",")); err != nil {
			return fmt.Errorf("mount %s (%s) on %s: %w", m.Source, m.Type, target, err)
		}
		done++
		// A read-only bind takes a remount to become read-only.
		if flags&unix.MS_RDONLY != 0 {
			if err := unix.Mount("", target, "", flags|unix.MS_REMOUNT, ""); err != nil {
				return fmt.Errorf("remount %s read-only: %w", target, err)
			}
		}
	}
	return nil
}

// unmountAll unmounts everything mounted on target.
func unmountAll(target string) error {
	for {
		err := unix.Unmount(target, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
