package containers

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/manager/cparchive"
	"github.com/berth-project/berth/snapshotter/layer"
	"github.com/berth-project/berth/snapshotter/mount"
)

// PathStat describes a path in a container, as docker's
// X-Docker-Container-Path-Stat does.
type PathStat struct {
	Name       string
	Size       int64
	Mode       fs.FileMode
	Mtime      time.Time
	LinkTarget string // the target of a symlink
}

// CopyFromOptions adjust CopyFrom.
type CopyFromOptions struct {
	// FollowLink copies what a symlink at the path points to rather than
	// the link (cp -L). A path ending in "/" or "/." is followed anyway.
	FollowLink bool
}

// CopyToOptions adjust CopyTo.
type CopyToOptions struct {
	// Path is the destination in the container.
	Path string
	// SourceBase is the tar's top entry name: the source's base name, or
	// "." for a directory's contents (SRC/.). Empty: the tar is extracted
	// as it is into Path, which must be a directory (cp - CONTAINER:DIR).
	SourceBase  string
	SourceIsDir bool
	// CopyUIDGID keeps the tar's owners (cp -a); else files belong to the
	// container's root.
	CopyUIDGID bool
}

// CopyFrom writes a tar of a path in a container to w, as docker cp
// CONTAINER:PATH does: the top entry is named after the path's base name
// ("." for PATH/. and for "/"), which the stat's Name is. stat is called with the path's stat before the tar is
// written. The path is resolved inside the container's root filesystem:
// no symlink leads out of it.
func (s *Service) CopyFrom(ctx context.Context, ref, p string, opts CopyFromOptions, stat func(PathStat) error, w io.Writer) error {
	return s.withRootfs(ctx, ref, false, func(rootfd int, name string) error {
		follow := opts.FollowLink || strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.")
		fd, err := openCopyPath(rootfd, p, follow)
		if err != nil {
			return pathError(name, p, err)
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		top := path.Base(path.Clean("/" + p))
		if top == "/" || strings.HasSuffix(p, "/.") {
			top = "."
		}
		ps := pathStat(top, &st)
		if ps.Mode&fs.ModeSymlink != 0 {
			if ps.LinkTarget, err = readlinkFd(fd); err != nil {
				return err
			}
		}
		if strings.HasSuffix(p, "/") && !ps.Mode.IsDir() {
			return fmt.Errorf("%s in container %s: not a directory: %w", p, name, errdefs.ErrInvalidArgument)
		}
		if err := stat(ps); err != nil {
			return err
		}
		return writeTar(ctx, w, fd, &st, top, ps.LinkTarget)
	})
}

// CopyTo extracts the tar r into a container, as docker cp
// SRC CONTAINER:PATH does: into PATH when it is a directory, else as
// PATH (its parent must exist). Paths resolve inside the container's root
// filesystem, and no tar entry may write outside the directory it is
// extracted into (snapshotter/layer's Apply refuses them).
func (s *Service) CopyTo(ctx context.Context, ref string, opts CopyToOptions, r io.Reader) error {
	return s.withRootfs(ctx, ref, true, func(rootfd int, name string) error {
		dst, err := resolveDestination(rootfd, opts.Path)
		if err != nil {
			return pathError(name, opts.Path, err)
		}
		defer unix.Close(dst.parent)
		into, err := copyTarget(opts.SourceBase, opts.SourceIsDir, opts.Path, dst.exists, dst.isDir)
		if err != nil {
			return err
		}
		dirfd, rebase := dst.parent, dst.base
		if into {
			rebase = ""
			if dirfd, err = openBeneathNoFollow(dst.parent, dst.base); err != nil {
				return pathError(name, opts.Path, err)
			}
			defer unix.Close(dirfd)
		}
		var uid, gid = -1, -1
		if !opts.CopyUIDGID {
			uid, gid = 0, 0
		}
		tr := cparchive.RewriteTar(r, opts.SourceBase, rebase, uid, gid)
		defer tr.Close()
		root := "/proc/self/fd/" + strconv.Itoa(dirfd)
		if _, err := layer.Apply(ctx, root, tr, layer.ApplyOptions{Format: layer.Plain}); err != nil {
			return fmt.Errorf("copy to %s:%s: %w", name, opts.Path, err)
		}
		return nil
	})
}

// withRootfs calls fn with an O_PATH fd of the container's root
// filesystem: the mounted one of a running container, else its snapshot
// mounted for the call. The root filesystem is held shared meanwhile (see
// container.fs): the container may stop, but not start (mount it again)
// or go away, until fn returns. A running container's root is opened while
// it runs, so that a stop (which unmounts it lazily) leaves fn on it.
func (s *Service) withRootfs(ctx context.Context, ref string, write bool, fn func(rootfd int, name string) error) error {
	id, r, err := s.lookup(ref)
	if err != nil {
		return err
	}
	if write && r.GetConfig().GetReadOnly() {
		return fmt.Errorf("container %s's root filesystem is marked read-only: %w", r.GetName(), errdefs.ErrFailedPrecondition)
	}
	c := s.track(id)
	c.mu.Lock()
	running := c.run != nil
	rootfd := -1
	if running {
		rootfd, err = openRoot(filepath.Join(s.bundle(id), "rootfs"), r.GetName())
	}
	if err == nil {
		c.fs.RLock()
		defer c.fs.RUnlock()
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if running {
		defer unix.Close(rootfd)
		return fn(rootfd, r.GetName())
	}
	ms, err := s.cfg.Snapshotter.Mounts(ctx, snapshotKey(id))
	if err != nil {
		return fmt.Errorf("the root filesystem of %s: %w", r.GetName(), err)
	}
	return mount.WithTempMount(ctx, ms, func(root string) error {
		fd, err := openRoot(root, r.GetName())
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return fn(fd, r.GetName())
	})
}

func openRoot(root, name string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("the root filesystem of %s: %w", name, err)
	}
	return fd, nil
}

// resolveFlags resolve a path as the container would, with its root as
// "/": ".." and absolute symlinks stay inside.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// openCopyPath opens p (absolute or relative to "/") in the root rootfd as
// an O_PATH fd, following a symlink at its end if follow.
func openCopyPath(rootfd int, p string, follow bool) (int, error) {
	flags := unix.O_PATH | unix.O_CLOEXEC
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	return openat2(rootfd, inRoot(p), &unix.OpenHow{Flags: uint64(flags), Resolve: resolveFlags})
}

// openBeneathNoFollow opens the directory name in dirfd, which must not
// be a symlink, as an O_PATH fd.
func openBeneathNoFollow(dirfd int, name string) (int, error) {
	return openat2(dirfd, name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV,
	})
}

func openat2(dirfd int, p string, how *unix.OpenHow) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, p, how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// inRoot is p relative to the root ("." for the root itself).
func inRoot(p string) string {
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "."
	}
	return p
}

// destination is a copy's destination resolved in the container: the
// directory it is in and its name there (not a symlink), which may not
// exist.
type destination struct {
	parent        int
	base          string
	exists, isDir bool
}

// resolveDestination resolves p in the root rootfd, following a symlink
// at its end as docker does (the link's target, resolved in the root, is
// the destination). Its parent directory must exist.
func resolveDestination(rootfd int, p string) (destination, error) {
	for range 40 {
		clean := path.Clean("/" + p)
		dir, base := path.Dir(clean), path.Base(clean)
		if clean == "/" {
			dir, base = "/", "."
		}
		pfd, err := openat2(rootfd, inRoot(dir), &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: resolveFlags,
		})
		if err != nil {
			return destination{}, err
		}
		var st unix.Stat_t
		err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH)
		if errors.Is(err, unix.ENOENT) {
			return destination{parent: pfd, base: base}, nil
		}
		if err != nil {
			unix.Close(pfd)
			return destination{}, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return destination{parent: pfd, base: base, exists: true, isDir: st.Mode&unix.S_IFMT == unix.S_IFDIR}, nil
		}
		target, err := readlinkAt(pfd, base)
		unix.Close(pfd)
		if err != nil {
			return destination{}, err
		}
		if !path.IsAbs(target) {
			target = path.Join(dir, target)
		}
		p = target
	}
	return destination{}, unix.ELOOP
}

// copyTarget applies docker's rules for where a copied source goes:
// into dst (into) when dst is a directory, else as dst in its parent, the
// top name renamed to dst's (after the symlinks dst named). srcBase ""
// is a tar given as it is, which only a directory takes.
func copyTarget(srcBase string, srcIsDir bool, dst string, exists, isDir bool) (into bool, err error) {
	wantDir := strings.HasSuffix(dst, "/") || strings.HasSuffix(dst, "/.")
	switch {
	case srcBase == "" && !exists:
		return false, fmt.Errorf("destination %q does not exist: %w", dst, errdefs.ErrNotFound)
	case srcBase == "" && !isDir:
		return false, fmt.Errorf("destination %q must be a directory: %w", dst, errdefs.ErrInvalidArgument)
	case exists && isDir:
		return true, nil
	case exists && srcIsDir:
		return false, fmt.Errorf("cannot copy a directory to file %q: %w", dst, errdefs.ErrInvalidArgument)
	case !exists && wantDir && !srcIsDir:
		return false, fmt.Errorf("destination directory %q does not exist: %w", dst, errdefs.ErrNotFound)
	}
	return false, nil
}

// writeTar writes the tar of the file fd (stat st) named top: one entry
// for a file or link, a directory's entry and its whole tree (read
// through fds, never following a symlink) for a directory.
func writeTar(ctx context.Context, w io.Writer, fd int, st *unix.Stat_t, top, link string) error {
	tw := tar.NewWriter(w)
	hdr := tarHeader(top, st, link)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
				return fmt.Errorf("read %s: %w", top, err)
			}
		}
		return tw.Close()
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The tree is layer.Diff's against an empty directory: every entry,
	// read safely, with hardlinks and xattrs; its entries are renamed
	// under top and its end blocks are the tar's.
	empty, err := os.MkdirTemp("", "berth-cp-")
	if err != nil {
		return err
	}
	defer os.Remove(empty)
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(layer.Diff(ctx, pw, empty, "/proc/self/fd/"+strconv.Itoa(fd)))
	}()
	defer pr.Close()
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		h.Name = path.Join(top, h.Name)
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if h.Typeflag == tar.TypeLink {
			h.Linkname = path.Join(top, h.Linkname)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

func tarHeader(name string, st *unix.Stat_t, link string) *tar.Header {
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		if !strings.HasSuffix(hdr.Name, "/") {
			hdr.Name += "/"
		}
	case unix.S_IFLNK:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, link
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	}
	return hdr
}

// pathStat is st as docker's path stat shows it: Go's FileMode bits.
func pathStat(name string, st *unix.Stat_t) PathStat {
	mode := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if st.Mode&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return PathStat{Name: name, Size: st.Size, Mode: mode, Mtime: time.Unix(st.Mtim.Unix())}
}

func readlinkFd(fd int) (string, error) { return readlinkAt(fd, "") }

func readlinkAt(dirfd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		buf := make([]byte, n)
		m, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(buf[:m]), nil
		}
	}
}

// pathError words a failed lookup as docker does.
func pathError(name, p string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("Could not find the file %s in container %s: %w", p, name, errdefs.ErrNotFound)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%s in container %s: not a directory: %w", p, name, errdefs.ErrInvalidArgument)
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%s in container %s crosses a mount (a volume or bind mount), which cp does not follow yet: %w", p, name, errdefs.ErrNotImplemented)
	}
	return fmt.Errorf("%s in container %s: %w", p, name, err)
}
