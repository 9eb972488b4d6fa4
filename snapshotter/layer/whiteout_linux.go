package layer

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// whiteout applies the OCI whiteout base (".wh.<name>" or the opaque
// marker) in the directory dir.
func (a *applier) whiteout(dir, base string) error {
	if base == whiteoutOpaque {
		return a.opaque(dir)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		a.log.Debugf("layer: skip aufs metadata %s", joinRel(dir, base))
		return nil
	}
	name := base[len(whiteoutPrefix):]
	if name == "" || name == "." || name == ".." {
		return unsafef("whiteout of %q", name)
	}
	rel := joinRel(dir, name)
	parent, err := a.dir(dir, copyUp)
	if errors.Is(err, errNotExist) {
		return nil // nothing there to delete
	}
	if err != nil {
		return err
	}
	if dir != "." {
		a.touch(dir)
	}
	if a.isTouched(rel) {
		// This layer made rel: the whiteout hides only what is below it.
		st, err := lstatAt(parent, name)
		if err != nil || !isDir(&st) {
			return nil
		}
		return a.opaque(rel)
	}
	if err := a.remove(parent, dir, name); err != nil {
		return err
	}
	if a.format == Overlay {
		if err := unix.Mknodat(parent, name, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("make whiteout %s: %w", rel, err)
		}
	}
	return nil
}

// opaque makes the directory rel hide what lower layers have in it: in the
// root, all that this layer did not make goes; in an Overlay root, the
// directory is also marked opaque.
func (a *applier) opaque(rel string) error {
	fd, err := a.dir(rel, copyUp)
	if errors.Is(err, errNotExist) {
		return nil // nothing there to hide
	}
	if err != nil {
		return err
	}
	if err := a.clearUntouched(fd, rel); err != nil {
		return err
	}
	if a.format == Overlay {
		if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("set %s on %s: %w", opaqueXattr, rel, err)
		}
		if rel == "." {
			// overlayfs ignores the xattr on the root of a layer.
			if err := a.whiteoutParentsRoot(); err != nil {
				return err
			}
		}
	}
	a.touch(rel)
	return nil
}

// whiteoutParentsRoot hides, one by one, the names the parents have at
// their root: a whiteout for those this layer did not make, the opaque
// xattr for the directories it did.
func (a *applier) whiteoutParentsRoot() error {
	for i, l := range a.layers[1:] {
		dfd, err := openAt(l, ".", unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("read %s: %w", a.names[i+1], err)
		}
		names, err := readNames(dfd)
		unix.Close(dfd)
		if err != nil {
			return fmt.Errorf("read %s: %w", a.names[i+1], err)
		}
		for _, n := range names {
			if !a.isTouched(n) {
				err := unix.Mknodat(a.rootDir, n, unix.S_IFCHR, 0)
				if err != nil && err != unix.EEXIST {
					return fmt.Errorf("make whiteout %s: %w", n, err)
				}
				continue
			}
			dfd, err := openAt(a.rootDir, n, unix.O_RDONLY|unix.O_DIRECTORY)
			if err == unix.ENOTDIR || err == unix.ELOOP {
				continue // a non-directory hides all below it
			}
			if err != nil {
				return fmt.Errorf("open directory %s: %w", n, err)
			}
			err = unix.Fsetxattr(dfd, opaqueXattr, []byte("y"), 0)
			unix.Close(dfd)
			if err != nil {
				return fmt.Errorf("set %s on %s: %w", opaqueXattr, n, err)
			}
		}
	}
	return nil
}

// clearUntouched removes from the directory fd (at rel) all that this layer
// did not make, keeping the parents of what it did.
func (a *applier) clearUntouched(fd int, rel string) error {
	names, err := readNames(fd)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", rel, err)
	}
	for _, n := range names {
		p := joinRel(rel, n)
		if !a.isTouched(p) {
			if err := a.remove(fd, rel, n); err != nil {
				return err
			}
			continue
		}
		sub, err := openAt(fd, n, unix.O_RDONLY|unix.O_DIRECTORY)
		if err == unix.ENOTDIR || err == unix.ELOOP {
			continue
		}
		if err != nil {
			return fmt.Errorf("open directory %s: %w", p, err)
		}
		err = a.clearUntouched(sub, p)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}
