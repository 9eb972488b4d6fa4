// Package mount performs the mounts a snapshotter returns: it turns
// options into mount(2) flags and data, and keeps deep overlays within
// the kernel's limit of one page of mount data.
package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/snapshotter"
)

// flags are the options that are mount flags; the rest is data.
var flags = map[string]struct {
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

// All mounts ms onto target in order; on failure it unmounts what it
// mounted.
func All(ctx context.Context, ms []snapshotter.Mount, target string) (retErr error) {
	done := 0
	defer func() {
		if retErr != nil {
			for ; done > 0; done-- {
				_ = unix.Unmount(target, unix.MNT_DETACH)
			}
		}
	}()
	for _, m := range ms {
		if err := One(m, target); err != nil {
			return err
		}
		done++
	}
	return nil
}

// One performs a single mount onto target (or onto target/m.Target).
func One(m snapshotter.Mount, target string) error {
	if m.Target != "" {
		target = filepath.Join(target, m.Target)
	}
	var fl uintptr
	var data []string
	for _, o := range m.Options {
		if f, ok := flags[o]; ok {
			if f.clear {
				fl &^= f.flag
			} else {
				fl |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	fstype := m.Type
	if fl&unix.MS_BIND != 0 {
		fstype = ""
	}
	mflags := fl
	if fl&unix.MS_BIND != 0 {
		mflags &^= unix.MS_RDONLY // a bind ignores it; the remount below applies it
	}
	do := func() error {
		return unix.Mount(m.Source, target, fstype, mflags, strings.Join(data, ","))
	}
	var err error
	if dir, compact, ok := compactLowerdir(data); m.Type == "overlay" && ok {
		data = compact
		err = inDir(dir, do)
	} else {
		err = do()
	}
	if err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", m.Source, m.Type, target, err)
	}
	// A read-only bind takes a remount to become read-only.
	if fl&unix.MS_BIND != 0 && fl&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", target, "", fl|unix.MS_REMOUNT, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	return nil
}

// UnmountAll unmounts everything mounted on target.
func UnmountAll(target string) error {
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

// WithTempMount mounts ms on a fresh directory, calls fn with it, and
// unmounts and removes it.
func WithTempMount(ctx context.Context, ms []snapshotter.Mount, fn func(root string) error) (retErr error) {
	dir, err := os.MkdirTemp("", "berth-mount-")
	if err != nil {
		return err
	}
	defer func() {
		if err := UnmountAll(dir); err != nil && retErr == nil {
			retErr = err
		}
		if err := os.Remove(dir); err != nil && retErr == nil {
			retErr = err
		}
	}()
	if err := All(ctx, ms, dir); err != nil {
		return err
	}
	return fn(dir)
}

// pageLimit is how much mount data the kernel takes: one page, less a
// margin for what it appends itself.
var pageLimit = os.Getpagesize() - 512

// compactLowerdir shortens overlay data that does not fit in a page: the
// layers' common directory becomes the working directory of the mount
// call and the layers are named relative to it. ok is false when the data
// fits as it is.
func compactLowerdir(data []string) (dir string, out []string, ok bool) {
	if len(strings.Join(data, ",")) < pageLimit {
		return "", nil, false
	}
	idx := -1
	var layers []string
	for i, o := range data {
		if v, found := strings.CutPrefix(o, "lowerdir="); found {
			idx, layers = i, strings.Split(v, ":")
		}
	}
	if idx < 0 || len(layers) < 2 {
		return "", nil, false
	}
	dir = commonDir(layers)
	if dir == "" || dir == "/" {
		return "", nil, false
	}
	rel := make([]string, len(layers))
	for i, l := range layers {
		rel[i] = strings.TrimPrefix(strings.TrimPrefix(l, dir), "/")
	}
	out = append([]string(nil), data...)
	out[idx] = "lowerdir=" + strings.Join(rel, ":")
	return dir, out, true
}

// commonDir is the longest directory that holds all of paths.
func commonDir(paths []string) string {
	common := filepath.Dir(paths[0])
	for _, p := range paths[1:] {
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}

// inDir runs fn on a thread of its own whose working directory is dir;
// the rest of the process keeps its own. The thread is not given back to
// the Go scheduler: it dies with the goroutine.
func inDir(dir string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}
