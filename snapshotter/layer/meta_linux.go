package layer

import (
	"archive/tar"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// meta is what Apply sets on a file besides its data.
type meta struct {
	uid, gid     int
	mode         uint32 // permissions and the setuid, setgid and sticky bits
	xattrs       map[string][]byte
	atime, mtime unix.Timespec
}

const paxXattr = "SCHILY.xattr."

func metaFromHeader(hdr *tar.Header) (meta, error) {
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) >= 1<<32-1 || int64(hdr.Gid) >= 1<<32-1 {
		return meta{}, fmt.Errorf("invalid owner %d:%d", hdr.Uid, hdr.Gid)
	}
	m := meta{uid: hdr.Uid, gid: hdr.Gid, mode: uint32(hdr.Mode) & 0o7777, mtime: timespec(hdr.ModTime)}
	m.atime = m.mtime
	if !hdr.AccessTime.IsZero() {
		m.atime = timespec(hdr.AccessTime)
	}
	for k, v := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			if m.xattrs == nil {
				m.xattrs = map[string][]byte{}
			}
			m.xattrs[k[len(paxXattr):]] = []byte(v)
		}
	}
	return m, nil
}

func metaFromStat(st *unix.Stat_t, xattrs map[string][]byte) meta {
	return meta{
		uid: int(st.Uid), gid: int(st.Gid), mode: st.Mode & 0o7777, xattrs: xattrs,
		atime: st.Atim, mtime: st.Mtim,
	}
}

// target is a file to set meta on: an open fd (O_PATH for devices and
// fifos, which opening for real could block or touch hardware), or, for a
// symlink, which no fd can change, its name in its parent.
type target struct {
	fd      int
	opath   bool
	dir     bool
	symlink bool
	parent  int
	name    string
	// The file already has the owner, or the mode, meta gives.
	ownerOK, modeOK bool
}

// setMeta sets owner, mode, xattrs and times. A directory's times wait for
// finish: entries made in it later would change them.
func (a *applier) setMeta(t target, m meta, rel string) error {
	// Owner first: chown clears the setuid and setgid bits and file
	// capabilities, which the mode and xattrs then set.
	var err error
	switch {
	case t.ownerOK:
	case t.symlink:
		err = unix.Fchownat(t.parent, t.name, m.uid, m.gid, unix.AT_SYMLINK_NOFOLLOW)
	default:
		err = unix.Fchownat(t.fd, "", m.uid, m.gid, unix.AT_EMPTY_PATH)
	}
	if err != nil {
		return fmt.Errorf("chown %d:%d: %w", m.uid, m.gid, err)
	}
	if !t.symlink && !t.modeOK {
		if err := chmodFd(t.fd, m.mode, t.opath); err != nil {
			return fmt.Errorf("chmod %o: %w", m.mode, err)
		}
	}
	for _, k := range sortedKeys(m.xattrs) {
		if err := a.setXattr(t, k, m.xattrs[k]); err != nil {
			return err
		}
	}
	ts := [2]unix.Timespec{m.atime, m.mtime}
	switch {
	case t.dir:
		a.dirTimes[rel] = ts
	case t.symlink || t.opath:
		err = unix.UtimesNanoAt(t.parent, t.name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
	default:
		err = futimens(t.fd, &ts)
	}
	if err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// setXattr sets one xattr. Those that belong to overlayfs are skipped (see
// overlayXattr). security.* and trusted.* ones the kernel or filesystem
// refuses (an unprivileged or user-namespaced process, an SELinux label the
// host does not know) are skipped with a debug message: they are the
// host's business. Any other failure fails the entry.
func (a *applier) setXattr(t target, k string, v []byte) error {
	if overlayXattr(k) {
		a.log.Debugf("layer: skip xattr %s: overlayfs's own", k)
		return nil
	}
	var err error
	switch {
	case t.symlink:
		err = unix.Lsetxattr(procPath(t.parent)+"/"+t.name, k, v, 0)
	case t.opath:
		err = unix.Setxattr(procPath(t.fd), k, v, 0)
	default:
		err = unix.Fsetxattr(t.fd, k, v, 0)
	}
	if err == nil {
		return nil
	}
	if (strings.HasPrefix(k, "security.") || strings.HasPrefix(k, "trusted.")) &&
		errnoIs(err, unix.EPERM, unix.EACCES, unix.ENOTSUP, unix.EOPNOTSUPP, unix.EINVAL) {
		a.log.WithError(err).Debugf("layer: skip xattr %s", k)
		return nil
	}
	return fmt.Errorf("set xattr %s: %w", k, err)
}

func futimens(fd int, ts *[2]unix.Timespec) error {
	// utimensat(fd, NULL, ts, 0): x/sys has no futimens.
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// processUmask reads the umask, which cannot be read without changing it
// but from /proc. If it cannot be read, all bits count as masked.
func processUmask() uint32 {
	umaskOnce.Do(func() {
		umask = 0o777
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					umask = uint32(n)
				}
			}
		}
	})
	return umask
}

var (
	umaskOnce sync.Once
	umask     uint32
)
