package layer

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// stack is directories stacked as overlayfs stacks them, newest first: an
// Overlay root and its parents, or an upper directory's lowers.
type stack struct {
	layers []int // fds
	names  []string
}

// lookup finds rel in the merged view of the stack, as overlayfs would: the
// newest layer that has the name provides it; a whiteout hides it; a
// directory merges with those below it until one is opaque or is not a
// directory. It returns the index in s.layers of the layer that provides rel
// and its stat, or errNotExist. Each layer is walked with openat2, so a
// symlink on the way is refused, not followed.
func (s *stack) lookup(rel string) (int, unix.Stat_t, error) {
	var topSt unix.Stat_t
	set := make([]int, len(s.layers))
	for i := range set {
		set[i] = i
	}
	for i := 0; ; {
		j := strings.IndexByte(rel[i:], '/')
		end := len(rel)
		if j >= 0 {
			end = i + j
		}
		sub := rel[:end]
		last := end == len(rel)
		top := -1
		var next []int
		for _, l := range set {
			fd, err := openBeneath(s.layers[l], sub, unix.O_PATH|unix.O_NOFOLLOW)
			if err == unix.ENOENT || err == unix.ENOTDIR {
				continue
			}
			if err == unix.ELOOP || err == unix.EXDEV {
				return -1, topSt, unsafef("path %q goes through a symlink in %s", sub, s.names[l])
			}
			if err != nil {
				return -1, topSt, fmt.Errorf("look up %s in %s: %w", sub, s.names[l], err)
			}
			var st unix.Stat_t
			err = unix.Fstat(fd, &st)
			opaque := false
			if err == nil && isDir(&st) {
				opaque, err = isOpaque(fd)
			}
			unix.Close(fd)
			if err != nil {
				return -1, topSt, fmt.Errorf("look up %s in %s: %w", sub, s.names[l], err)
			}
			if isWhiteout(&st) {
				break
			}
			if top < 0 {
				top, topSt = l, st
			}
			if !isDir(&st) {
				break
			}
			next = append(next, l)
			if opaque {
				break
			}
		}
		if top < 0 {
			return -1, topSt, errNotExist
		}
		if last {
			return top, topSt, nil
		}
		if !isDir(&topSt) {
			if topSt.Mode&unix.S_IFMT == unix.S_IFLNK {
				return -1, topSt, unsafef("path %q goes through a symlink in %s", sub, s.names[top])
			}
			return -1, topSt, fmt.Errorf("%s is not a directory in %s", sub, s.names[top])
		}
		set = next
		i = end + 1
	}
}

// isOpaque tells whether the directory fd (which may be O_PATH) is an
// opaque overlayfs directory.
func isOpaque(fd int) (bool, error) {
	dfd, err := openAt(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return false, err
	}
	defer unix.Close(dfd)
	var v [1]byte
	n, err := unix.Fgetxattr(dfd, opaqueXattr, v[:])
	if errnoIs(err, unix.ENODATA, unix.ENOTSUP, unix.EOPNOTSUPP, unix.ERANGE) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return n == 1 && v[0] == 'y', nil
}

// layerXattrs reads the xattrs of rel in layer li, but for overlayfs's own.
func (s *stack) layerXattrs(li int, rel string) (map[string][]byte, error) {
	dir, base := splitRel(rel)
	dfd, err := openBeneath(s.layers[li], dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, fmt.Errorf("read xattrs of %s in %s: %w", rel, s.names[li], err)
	}
	defer unix.Close(dfd)
	// The l* calls through the directory's /proc link: they do not follow
	// base if it is a symlink.
	x, err := lxattrs(procPath(dfd) + "/" + base)
	if err != nil {
		return nil, fmt.Errorf("read xattrs of %s in %s: %w", rel, s.names[li], err)
	}
	for k := range x {
		if overlayXattr(k) {
			delete(x, k)
		}
	}
	return x, nil
}

// copyUpFile copies rel, which only a parent of the Overlay root has, into
// the root (dirfd is its directory there), as overlayfs would on a write.
func (a *applier) copyUpFile(dirfd int, rel string) error {
	li, st, err := a.lookup(rel)
	if errors.Is(err, errNotExist) {
		return errors.New("does not exist")
	}
	if err != nil {
		return err
	}
	if li == 0 {
		return errors.New("appeared while being linked")
	}
	if isDir(&st) {
		return errors.New("is a directory")
	}
	xattrs, err := a.layerXattrs(li, rel)
	if err != nil {
		return err
	}
	_, name := splitRel(rel)
	m := metaFromStat(&st, xattrs)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		src, err := openBeneath(a.layers[li], rel, unix.O_RDONLY|unix.O_NOFOLLOW)
		if err != nil {
			return fmt.Errorf("copy up from %s: %w", a.names[li], err)
		}
		defer unix.Close(src)
		dst, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("copy up: %w", err)
		}
		defer unix.Close(dst)
		if err := copyFd(dst, src, st.Size); err != nil {
			return fmt.Errorf("copy up from %s: %w", a.names[li], err)
		}
		return a.setMeta(target{fd: dst}, m, "")
	case unix.S_IFLNK:
		lfd, err := openBeneath(a.layers[li], rel, unix.O_PATH|unix.O_NOFOLLOW)
		if err != nil {
			return fmt.Errorf("copy up from %s: %w", a.names[li], err)
		}
		dest, err := readlinkFd(lfd)
		unix.Close(lfd)
		if err != nil {
			return fmt.Errorf("copy up from %s: %w", a.names[li], err)
		}
		if err := unix.Symlinkat(dest, dirfd, name); err != nil {
			return fmt.Errorf("copy up: %w", err)
		}
		return a.setMeta(target{symlink: true, parent: dirfd, name: name}, m, "")
	default:
		if err := unix.Mknodat(dirfd, name, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return fmt.Errorf("copy up: %w", err)
		}
		fd, err := openAt(dirfd, name, unix.O_PATH)
		if err != nil {
			return fmt.Errorf("copy up: %w", err)
		}
		defer unix.Close(fd)
		return a.setMeta(target{fd: fd, opath: true, parent: dirfd, name: name}, m, "")
	}
}
