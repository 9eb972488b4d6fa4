package layer

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// resolveBeneath is how every path below a root is opened: it cannot leave
// the directory it starts from, cannot go through a symlink (an entry's
// parents must be real directories, in this layer as in those under it),
// and cannot go through /proc magic links. The kernel checks this at each
// step of the walk, so it holds even if the tree changes meanwhile.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openBeneath opens rel below the directory dirfd with resolveBeneath.
func openBeneath(dirfd int, rel string, flags int) (int, error) {
	how := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveBeneath}
	for {
		fd, err := unix.Openat2(dirfd, rel, how)
		// EAGAIN: a rename elsewhere raced with the walk; the kernel asks
		// for a retry rather than risk a wrong answer.
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// openAt opens the single name in dirfd, never following a symlink there.
func openAt(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// lstatAt is fstatat without following a symlink.
func lstatAt(dirfd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

// lstatBeneath stats rel below dirfd, resolving it as openBeneath does; a
// trailing symlink is stated, not followed.
func lstatBeneath(dirfd int, rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := openBeneath(dirfd, rel, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	err = unix.Fstat(fd, &st)
	return st, err
}

// procPath names the file an fd (also an O_PATH one) refers to, for the
// calls that take no fd.
func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// chmodFd changes the mode of what fd refers to, also through an O_PATH fd
// (devices and fifos are opened that way: opening one for real could block
// or touch hardware).
func chmodFd(fd int, mode uint32, opath bool) error {
	if !opath {
		return unix.Fchmod(fd, mode)
	}
	err := unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH) // fchmodat2, Linux 6.6
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS || err == unix.EINVAL {
		return unix.Chmod(procPath(fd), mode)
	}
	return err
}

// isWhiteout tells whether st is an overlayfs whiteout: a 0:0 character
// device.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// removeAllAt removes name in dirfd and, if it is a directory, everything in
// it. It never follows a symlink: one inside is removed, not entered.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return err
	}
	fd, err := openAt(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	// All names first, then the removals: getdents offsets are not to be
	// trusted while the directory changes under them.
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := removeAllAt(fd, n); err != nil {
			return err
		}
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// xattrs of a file, read through getList and get (the l*, f* or
// /proc-path variants).
func readXattrs(list func([]byte) (int, error), get func(string, []byte) (int, error)) (map[string][]byte, error) {
	buf := make([]byte, 1024)
	var n int
	var err error
	for {
		n, err = list(buf)
		if err == unix.ERANGE {
			sz, err := list(nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+1024)
			continue
		}
		break
	}
	if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	out := map[string][]byte{}
	val := make([]byte, 1024)
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		k := string(name)
		for {
			m, err := get(k, val)
			if err == unix.ERANGE {
				sz, err := get(k, nil)
				if err != nil {
					return nil, err
				}
				val = make([]byte, sz+1024)
				continue
			}
			if err == unix.ENODATA { // removed meanwhile
				break
			}
			if err != nil {
				return nil, err
			}
			out[k] = bytes.Clone(val[:m])
			break
		}
	}
	return out, nil
}

// lxattrs reads the xattrs of path, not following a symlink.
func lxattrs(path string) (map[string][]byte, error) {
	return readXattrs(
		func(b []byte) (int, error) { return unix.Llistxattr(path, b) },
		func(k string, b []byte) (int, error) { return unix.Lgetxattr(path, k, b) })
}

// overlayXattr tells xattrs that belong to overlayfs itself: they steer how
// the kernel merges layers (opaque, redirect, metacopy, origin…), so they
// never travel in a layer tar, in either direction. Apply turns the OCI
// whiteout files into the ones it needs.
func overlayXattr(name string) bool { return strings.HasPrefix(name, "trusted.overlay.") }

const opaqueXattr = "trusted.overlay.opaque"

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// errnoIs reports whether err is one of errnos.
func errnoIs(err error, errnos ...unix.Errno) bool {
	var e unix.Errno
	if !errors.As(err, &e) {
		return false
	}
	for _, n := range errnos {
		if e == n {
			return true
		}
	}
	return false
}

// copyFd copies size bytes from src to dst, in the kernel where it can.
func copyFd(dst, src int, size int64) error {
	for size > 0 {
		n, err := unix.CopyFileRange(src, nil, dst, nil, int(min(size, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EXDEV || err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP {
			return copyFdUser(dst, src, size)
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		size -= int64(n)
	}
	return nil
}

func copyFdUser(dst, src int, size int64) error {
	buf := make([]byte, 256<<10)
	for size > 0 {
		n, err := unix.Read(src, buf[:min(int64(len(buf)), size)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		if _, err := unix.Write(dst, buf[:n]); err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}

func readlinkFd(fd int) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// readNames lists the directory fd from its start.
func readNames(fd int) ([]string, error) {
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return nil, err
	}
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
