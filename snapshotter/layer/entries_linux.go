package layer

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// mkdir makes the directory name in parent, or updates the one there.
func (a *applier) mkdir(parent int, dirRel, name string, m meta) error {
	rel := joinRel(dirRel, name)
	opaque := false
	err := unix.Mkdirat(parent, name, 0o700)
	if err == unix.EEXIST {
		st, serr := lstatAt(parent, name)
		if serr != nil {
			return fmt.Errorf("stat: %w", serr)
		}
		if !isDir(&st) {
			// In an upper directory, a non-directory hides what
			// parents have there; the directory replacing it must too.
			opaque = a.format == Overlay
			if err := a.remove(parent, dirRel, name); err != nil {
				return err
			}
			err = unix.Mkdirat(parent, name, 0o700)
		} else {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := openAt(parent, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer unix.Close(fd)
	if opaque {
		if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("set %s: %w", opaqueXattr, err)
		}
	}
	return a.setMeta(target{fd: fd, dir: true}, m, rel)
}

// create runs mk, which makes name in parent; if the name is taken, it
// removes what has it and runs mk again (a layer's entry replaces what is
// there, whatever its type).
func (a *applier) create(parent int, dirRel, name string, mk func() error) error {
	err := mk()
	if err == unix.EEXIST {
		if err := a.remove(parent, dirRel, name); err != nil {
			return err
		}
		err = mk()
	}
	return err
}

func (a *applier) writeFile(parent int, dirRel, name string, m meta, data io.Reader, size int64) error {
	fd := -1
	perm := m.mode & 0o777
	err := a.create(parent, dirRel, name, func() (err error) {
		fd, err = unix.Openat(parent, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		return err
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer unix.Close(fd)
	if err := a.writeData(fd, data, size); err != nil {
		return err
	}
	// Most files are made as they should be: owned by us (root, 0:0) and
	// with a mode the umask leaves alone.
	return a.setMeta(target{
		fd:      fd,
		ownerOK: m.uid == a.euid && m.gid == a.dirGid,
		modeOK:  m.mode&0o7000 == 0 && perm&a.umask == 0,
	}, m, "")
}

// holeBlock is the unit writeData leaves as a hole when it is all zeros: the
// page and block size, below which a hole saves nothing.
const holeBlock = 4096

var zeros [holeBlock]byte

// writeData copies size bytes of r to the new file fd, leaving blocks of
// zeros as holes: a sparse file in the tar (archive/tar gives its holes as
// zeros) stays sparse, and so does any long run of zeros.
func (a *applier) writeData(fd int, r io.Reader, size int64) error {
	if a.buf == nil {
		a.buf = copyPool.Get().([]byte)
	}
	var off int64
	hole := false // whether the file ends in a hole so far
	for off < size {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, a.buf[:min(int64(len(a.buf)), size-off)])
		b := a.buf[:n]
		for len(b) > 0 {
			// The next run of data blocks, then the next run of zero ones.
			d := 0
			for d < len(b) && !(len(b)-d >= holeBlock && bytes.Equal(b[d:d+holeBlock], zeros[:])) {
				d += min(holeBlock, len(b)-d)
			}
			if d > 0 {
				if werr := pwriteAll(fd, b[:d], off); werr != nil {
					return fmt.Errorf("write: %w", werr)
				}
				hole = false
			}
			z := d
			for len(b)-z >= holeBlock && bytes.Equal(b[z:z+holeBlock], zeros[:]) {
				z += holeBlock
			}
			if z > d {
				hole = true
			}
			off += int64(z)
			b = b[z:]
		}
		if err != nil {
			return fmt.Errorf("read data: %w", err)
		}
	}
	if hole {
		if err := unix.Ftruncate(fd, size); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
	}
	return nil
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func (a *applier) symlink(parent int, dirRel, name string, m meta, linkname string) error {
	err := a.create(parent, dirRel, name, func() error { return unix.Symlinkat(linkname, parent, name) })
	if err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	return a.setMeta(target{symlink: true, parent: parent, name: name}, m, "")
}

func (a *applier) mknod(parent int, dirRel, name string, m meta, hdr *tar.Header) error {
	var typ uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	default:
		typ = unix.S_IFIFO
	}
	if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor > 1<<32-1 {
		return fmt.Errorf("invalid device %d:%d", hdr.Devmajor, hdr.Devminor)
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	err := a.create(parent, dirRel, name, func() error { return unix.Mknodat(parent, name, typ|0o600, int(dev)) })
	if err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	fd, err := openAt(parent, name, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	return a.setMeta(target{fd: fd, opath: true, parent: parent, name: name}, m, "")
}

// hardlink links name to the entry linkname. In an Overlay root a target
// only a parent has is first copied up: a link cannot cross layers.
func (a *applier) hardlink(parent int, dirRel, name, linkname string) error {
	rel := joinRel(dirRel, name)
	target, err := cleanName(linkname)
	if err != nil {
		return unsafef("hardlink target %q: %s", linkname, err.(*UnsafeEntryError).Reason)
	}
	if target == "." {
		return unsafef("hardlink to the root")
	}
	if target == rel {
		return fmt.Errorf("hardlink to itself")
	}
	tdir, tbase := splitRel(target)
	tfd, err := a.openDir(tdir, copyUp)
	if errors.Is(err, errNotExist) {
		return fmt.Errorf("hardlink target %q does not exist", linkname)
	}
	var unsafe *UnsafeEntryError
	if errors.As(err, &unsafe) {
		return unsafef("hardlink target %q: %s", linkname, unsafe.Reason)
	}
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", linkname, err)
	}
	defer unix.Close(tfd)

	st, err := lstatAt(tfd, tbase)
	switch {
	case err == unix.ENOENT && a.format == Overlay:
		if err := a.copyUpFile(tfd, target); err != nil {
			return fmt.Errorf("hardlink target %q: %w", linkname, err)
		}
	case err == unix.ENOENT:
		return fmt.Errorf("hardlink target %q does not exist", linkname)
	case err != nil:
		return fmt.Errorf("hardlink target %q: %w", linkname, err)
	case isDir(&st):
		return fmt.Errorf("hardlink target %q is a directory", linkname)
	case a.format == Overlay && isWhiteout(&st):
		return fmt.Errorf("hardlink target %q does not exist (deleted by this layer)", linkname)
	}

	err = unix.Linkat(tfd, tbase, parent, name, 0)
	if err == unix.EEXIST {
		cur, serr := lstatAt(parent, name)
		tst, terr := lstatAt(tfd, tbase)
		if serr == nil && terr == nil && cur.Dev == tst.Dev && cur.Ino == tst.Ino {
			return nil // already that file
		}
		if err := a.remove(parent, dirRel, name); err != nil {
			return err
		}
		err = unix.Linkat(tfd, tbase, parent, name, 0)
	}
	if err != nil {
		return fmt.Errorf("hardlink to %q: %w", linkname, err)
	}
	return nil
}
