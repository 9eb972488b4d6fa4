package layer

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// policy says what dir does about directories that are missing.
type policy int

const (
	// create makes them: an entry in a directory implies it.
	create policy = iota
	// copyUp only brings up into an Overlay root those that a parent has
	// (a whiteout needs its directory, but one nobody has hides nothing).
	// An Overlay root given no parents may be stacked on layers Apply
	// does not see (a parallel unpack, rebased when committed): there
	// copyUp makes them, as create does, so that the deletion holds.
	copyUp
)

// dir returns the directory rel of the root, opened, making it as p says.
// The fd is the applier's: valid until the next call.
func (a *applier) dir(rel string, p policy) (int, error) {
	if a.cacheFd >= 0 && a.cacheRel == rel {
		a.dirGid = a.cacheGid
		return a.cacheFd, nil
	}
	fd := a.rootDir
	if rel != "." {
		var err error
		if fd, err = a.openDir(rel, p); err != nil {
			return -1, err
		}
	}
	// The group a file made in the directory gets (see writeFile).
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		if fd != a.rootDir {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("stat %s: %w", rel, err)
	}
	a.dirGid = a.egid
	if st.Mode&unix.S_ISGID != 0 {
		a.dirGid = int(st.Gid)
	}
	if rel == "." {
		// Not cached: an entry for the root can change its group.
		return fd, nil
	}
	a.setCache(rel, fd)
	a.cacheGid = a.dirGid
	return fd, nil
}

func (a *applier) setCache(rel string, fd int) {
	if a.cacheFd >= 0 {
		unix.Close(a.cacheFd)
	}
	a.cacheRel, a.cacheFd = rel, fd
}

// remove removes name (and all below it) from the directory dirfd, whose
// path is dirRel, forgetting the cached directory if it was in there.
func (a *applier) remove(dirfd int, dirRel, name string) error {
	p := joinRel(dirRel, name)
	if a.cacheFd >= 0 && (a.cacheRel == p || strings.HasPrefix(a.cacheRel, p+"/")) {
		a.setCache("", -1)
	}
	if err := removeAllAt(dirfd, name); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// openDir opens the directory rel of the root, making it as p says; the
// caller closes the fd. The walk is openat2's: it fails rather than leave
// the root or go through a symlink.
func (a *applier) openDir(rel string, p policy) (int, error) {
	if rel == "." {
		return unix.Dup(a.rootDir)
	}
	fd, err := openBeneath(a.rootDir, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		fd, err = a.openDirSlow(rel, p, err)
	}
	if err != nil {
		return -1, err
	}
	if err := a.keepTimes(fd, rel); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// keepTimes notes the times of the directory fd (at rel) before the layer
// changes what is in it, for finish to restore, unless an entry of the
// layer sets them: a directory's times come from its own entry, or stay
// as they were. Applying a layer thus gives the same tree at any time,
// and a Plain root the same times as an Overlay one.
func (a *applier) keepTimes(fd int, rel string) error {
	if _, ok := a.dirTimes[rel]; ok {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	a.dirTimes[rel] = [2]unix.Timespec{st.Atim, st.Mtim}
	return nil
}

func (a *applier) openDirSlow(rel string, p policy, err error) (int, error) {
	switch err {
	case unix.ELOOP:
		return -1, unsafef("path %q goes through a symlink", rel)
	case unix.EXDEV:
		return -1, unsafef("path %q leaves the root", rel)
	case unix.ENOENT, unix.ENOTDIR:
		return a.makeDirs(rel, p)
	}
	return -1, fmt.Errorf("open directory %s: %w", rel, err)
}

// makeDirs walks to rel one name at a time, making what is missing.
func (a *applier) makeDirs(rel string, p policy) (int, error) {
	cur, err := unix.Dup(a.rootDir)
	if err != nil {
		return -1, err
	}
	for i := 0; ; {
		j := strings.IndexByte(rel[i:], '/')
		end := len(rel)
		if j >= 0 {
			end = i + j
		}
		sub, name := rel[:end], rel[i:end]
		next, err := openAt(cur, name, unix.O_RDONLY|unix.O_DIRECTORY)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			// cur is about to change.
			if kerr := a.keepTimes(cur, path.Dir(sub)); kerr != nil {
				unix.Close(cur)
				return -1, kerr
			}
		}
		switch err {
		case nil:
		case unix.ENOENT:
			next, err = a.makeDir(cur, name, sub, p, false)
		case unix.ELOOP:
			err = unsafef("path %q goes through a symlink", sub)
		case unix.ENOTDIR:
			var st unix.Stat_t
			if st, err = lstatAt(cur, name); err != nil {
				break
			}
			switch {
			case a.format == Overlay && isWhiteout(&st) && p == copyUp:
				err = errNotExist // deleted by this layer: nothing below to hide
			case a.format == Overlay && isWhiteout(&st):
				// Deleted by this layer, then needed again: a new
				// directory, hiding what was below.
				if err = a.remove(cur, path.Dir(sub), name); err == nil {
					next, err = a.makeDir(cur, name, sub, p, true)
				}
			default:
				err = fmt.Errorf("%s is not a directory", sub)
			}
		default:
			err = fmt.Errorf("open directory %s: %w", sub, err)
		}
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
		if end == len(rel) {
			return cur, nil
		}
		i = end + 1
	}
}

// makeDir makes the missing directory name (at rel) in dirfd. In an Overlay
// root it copies up the parents' directory there, with its owner, mode,
// xattrs and times; otherwise it is 0755 and owned by the caller. opaque
// makes it hide what parents have.
func (a *applier) makeDir(dirfd int, name, rel string, p policy, opaque bool) (int, error) {
	var lower *meta
	if a.format == Overlay && !opaque {
		li, st, err := a.lookup(rel)
		switch {
		case err == nil && isDir(&st):
			xattrs, err := a.layerXattrs(li, rel)
			if err != nil {
				return -1, err
			}
			m := metaFromStat(&st, xattrs)
			lower = &m
		case err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return -1, unsafef("path %q goes through a symlink in %s", rel, a.names[li])
		case err == nil:
			return -1, fmt.Errorf("%s is not a directory in %s", rel, a.names[li])
		case !errors.Is(err, errNotExist):
			return -1, err
		}
	}
	if lower == nil && p == copyUp && !a.lowersUnknown {
		return -1, errNotExist
	}
	if err := unix.Mkdirat(dirfd, name, 0o700); err != nil {
		return -1, fmt.Errorf("mkdir %s: %w", rel, err)
	}
	fd, err := openAt(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return -1, fmt.Errorf("open directory %s: %w", rel, err)
	}
	if lower != nil {
		err = a.setMeta(target{fd: fd, dir: true}, *lower, rel)
	} else {
		err = unix.Fchmod(fd, 0o755)
	}
	if err == nil && opaque {
		err = unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("directory %s: %w", rel, err)
	}
	return fd, nil
}
