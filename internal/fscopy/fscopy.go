// Package fscopy copies a directory tree with everything a container sees
// in it: the native snapshotter makes a snapshot as a copy of its parent,
// and berthd fills a new volume with what the image holds where it mounts.
package fscopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CopyTree copies the tree at src to dst (which must not exist) with
// everything a container sees: owners, modes, times, xattrs, devices,
// symlinks, and hardlinks as hardlinks.
func CopyTree(ctx context.Context, dst, src string) error {
	type inode struct{ dev, ino uint64 }
	links := map[inode]string{}
	var dirs []string // to stamp with their times once their contents are in
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		in := inode{uint64(st.Dev), st.Ino}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			if first, ok := links[in]; ok {
				return os.Link(first, target)
			}
			links[in] = target
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := os.Mkdir(target, 0o700); err != nil {
				return fmt.Errorf("copy: %w", err)
			}
			dirs = append(dirs, p, target)
		case unix.S_IFREG:
			if err := copyFile(target, p); err != nil {
				return err
			}
		case unix.S_IFLNK:
			dest, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("copy: %w", err)
			}
			if err := os.Symlink(dest, target); err != nil {
				return fmt.Errorf("copy: %w", err)
			}
		default: // devices, fifos, sockets
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("copy %s: %w", rel, err)
			}
		}
		return copyMeta(target, p, &st, st.Mode&unix.S_IFMT != unix.S_IFDIR)
	})
	if err != nil {
		return err
	}
	// Directories last, deepest first: making their entries moved their times.
	for i := len(dirs) - 2; i >= 0; i -= 2 {
		var st unix.Stat_t
		if err := unix.Lstat(dirs[i], &st); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if err := copyMeta(dirs[i+1], dirs[i], &st, true); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	// *os.File to *os.File: the kernel copies (copy_file_range), and
	// shares extents where the filesystem can.
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// copyMeta gives dst src's owner, mode, xattrs and times. The mode goes
// after the owner: chown clears setuid bits.
func copyMeta(dst, src string, st *unix.Stat_t, timesToo bool) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("copy: chown %s: %w", dst, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&07777); err != nil {
			return fmt.Errorf("copy: chmod %s: %w", dst, err)
		}
	}
	if err := copyXattrs(dst, src); err != nil {
		return err
	}
	if !timesToo {
		return nil
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("copy: times of %s: %w", dst, err)
	}
	return nil
}

func copyXattrs(dst, src string) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(src, buf)
	if err != nil {
		return fmt.Errorf("copy: xattrs of %s: %w", src, err)
	}
	for _, name := range splitNul(buf[:n]) {
		vsize, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return fmt.Errorf("copy: xattr %s of %s: %w", name, src, err)
		}
		val := make([]byte, vsize)
		if _, err := unix.Lgetxattr(src, name, val); err != nil {
			return fmt.Errorf("copy: xattr %s of %s: %w", name, src, err)
		}
		if err := unix.Lsetxattr(dst, name, val, 0); err != nil {
			return fmt.Errorf("copy: xattr %s of %s: %w", name, dst, err)
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}
