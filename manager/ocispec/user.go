package ocispec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// maxUserDBSize caps how much of /etc/passwd or /etc/group is read.
const maxUserDBSize = 16 << 20

// ResolveUser turns a user spec ("name", "uid", "uid:gid", "name:group";
// "" is root) into the uid, gid and groups a process in the root filesystem
// rootfs runs as, reading rootfs's /etc/passwd and /etc/group safely, as
// Generate does for -u. `berth exec -u` uses it.
func ResolveUser(rootfs, user string) (specs.User, error) {
	u, _, err := resolveUser(rootfs, user)
	return u, err
}

// resolveUser turns a user spec into uid, gid and groups using the image's
// /etc/passwd and /etc/group, as docker does. It also returns the user's
// home directory, "" when /etc/passwd does not name one.
func resolveUser(rootfs, spec string) (specs.User, string, error) {
	passwd, err := openInRoot(rootfs, "/etc/passwd")
	if err != nil {
		return specs.User{}, "", err
	}
	if passwd != nil {
		defer passwd.Close()
	}
	group, err := openInRoot(rootfs, "/etc/group")
	if err != nil {
		return specs.User{}, "", err
	}
	if group != nil {
		defer group.Close()
	}
	eu, err := user.GetExecUser(spec, nil, limit(passwd), limit(group))
	if err != nil {
		var what string
		switch {
		case errors.Is(err, user.ErrNoPasswdEntries):
			what = "no such user in the image's /etc/passwd: give a numeric uid, or a user that exists in the image"
		case errors.Is(err, user.ErrNoGroupEntries):
			what = "no such group in the image's /etc/group: give a numeric gid, or a group that exists in the image"
		case errors.Is(err, user.ErrRange):
			what = "uids and gids must be between 0 and 2147483647"
		default:
			what = "reading the image's /etc/passwd and /etc/group: " + err.Error()
		}
		return specs.User{}, "", fmt.Errorf("user %q: %s: %w", spec, what, errdefs.ErrInvalidArgument)
	}
	u := specs.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
	// docker lists the primary group first, then the supplementary ones.
	u.AdditionalGids = []uint32{u.GID}
	for _, g := range eu.Sgids {
		if !slices.Contains(u.AdditionalGids, uint32(g)) {
			u.AdditionalGids = append(u.AdditionalGids, uint32(g))
		}
	}
	return u, eu.Home, nil
}

func limit(f *os.File) io.Reader {
	if f == nil {
		return nil // GetExecUser wants a nil interface for a missing file
	}
	return io.LimitReader(f, maxUserDBSize)
}

// openInRoot opens name inside root as if root were "/": symlinks and ".."
// cannot lead outside it. It returns nil, nil when the file does not exist.
// Only regular files are returned, so a FIFO in the image cannot block us.
func openInRoot(root, name string) (*os.File, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("opening the container's root filesystem: %w", err)
	}
	defer dir.Close()
	fd, err := unix.Openat2(int(dir.Fd()), name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	var f *os.File
	switch {
	case err == nil:
		f = os.NewFile(uintptr(fd), filepath.Join(root, name))
	case errors.Is(err, unix.ENOSYS):
		// Before Linux 5.6: resolve in user space. This can race with a
		// concurrent rename inside root, which berthd does not do to an
		// image's rootfs while it creates a container.
		p, jerr := securejoin.SecureJoin(root, name)
		if jerr != nil {
			return nil, fmt.Errorf("resolving %s in the container's root filesystem: %w", name, jerr)
		}
		f, err = os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_NOFOLLOW, 0)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil
			}
			return nil, fmt.Errorf("opening %s in the container's root filesystem: %w", name, err)
		}
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return nil, nil
	default:
		return nil, fmt.Errorf("opening %s in the container's root filesystem: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("the image's %s is not a regular file: %w", name, errdefs.ErrInvalidArgument)
	}
	return f, nil
}
