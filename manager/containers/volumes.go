package containers

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/manager/log"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	"github.com/berth-project/berth/snapshotter/mount"
)

// useVolumes takes the container's volumes: it names anonymous ones
// (writing the names into cfg), makes those that do not exist, and fills
// a new volume with what the image holds at its destination, as docker
// does.
func (s *Service) useVolumes(ctx context.Context, id string, cfg *containersv1.Config, parent string) (retErr error) {
	var fresh []*containersv1.Mount
	var dirs []string
	for _, m := range cfg.GetMounts() {
		if m.GetType() != "volume" {
			continue
		}
		name, dir, created, err := s.cfg.Volumes.Use(ctx, m.GetSource(), id)
		if err != nil {
			return fmt.Errorf("volume %s: %w", m.GetSource(), err)
		}
		m.Source = name
		if created && !slices.Contains(m.GetOptions(), "nocopy") && !slices.Contains(m.GetOptions(), "volume-nocopy") {
			fresh = append(fresh, m)
			dirs = append(dirs, dir)
		}
	}
	if len(fresh) == 0 || parent == "" {
		return nil
	}
	// The image's content is read from a view of its top layer.
	key := "berth/volume-copy/" + id
	ms, err := s.cfg.Snapshotter.View(ctx, key, parent)
	if err != nil {
		return fmt.Errorf("view the image to fill a volume: %w", err)
	}
	defer func() {
		if err := s.cfg.Snapshotter.Remove(context.WithoutCancel(ctx), key); err != nil {
			log.L(ctx).Warn("remove the view made to fill a volume", "error", err)
		}
	}()
	return mount.WithTempMount(ctx, ms, func(root string) error {
		for i, m := range fresh {
			if err := copyInto(root, m.GetDestination(), dirs[i]); err != nil {
				return fmt.Errorf("fill volume %s from the image's %s: %w", m.GetSource(), m.GetDestination(), err)
			}
		}
		return nil
	})
}

// releaseVolumes drops the container's uses of its volumes; with
// removeAnonymous its anonymous volumes go too (`rm -v`).
func (s *Service) releaseVolumes(ctx context.Context, id string, cfg *containersv1.Config, removeAnonymous bool) {
	for _, m := range cfg.GetMounts() {
		if m.GetType() != "volume" || m.GetSource() == "" {
			continue
		}
		if err := s.cfg.Volumes.Release(ctx, m.GetSource(), id, removeAnonymous && anonymous(m.GetSource())); err != nil {
			log.L(ctx).Warn("release a volume", "id", id, "volume", m.GetSource(), "error", err)
		}
	}
}

// anonymous tells an anonymous volume's name: 64 hex digits, as docker's.
func anonymous(name string) bool {
	if len(name) != 64 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

// copyInto copies root/dest (a path inside root, resolved inside it) into
// dir, which is empty: files, directories, symlinks with their modes and
// owners. A dest the image does not have copies nothing.
func copyInto(root, dest, dir string) error {
	src, err := openInRoot(root, dest)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return err
	}
	defer src.Close()
	// The path resolved inside root: walked from there (the image's own
	// symlinks below it are copied as links, never followed).
	srcPath, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", src.Fd()))
	if err != nil {
		return err
	}
	if !strings.HasPrefix(srcPath, filepath.Clean(root)+"/") {
		return fmt.Errorf("%s resolves outside the image (%s)", dest, srcPath)
	}
	st, err := os.Stat(srcPath)
	if err != nil || !st.IsDir() {
		return err
	}
	// The volume's directory takes the mode and owner of the image's.
	if err := copyMeta(srcPath, dir, st); err != nil {
		return err
	}
	return filepath.WalkDir(srcPath, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == srcPath {
			return err
		}
		rel := strings.TrimPrefix(p, srcPath+"/")
		target := filepath.Join(dir, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
		case info.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(p, target); err != nil {
				return err
			}
		default:
			// Devices, FIFOs and sockets are not copied, as docker does not.
			return nil
		}
		return copyMeta(p, target, info)
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func copyMeta(from, to string, info fs.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("no owner known for %s", from)
	}
	if err := os.Lchown(to, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if info.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	return unix.Chmod(to, uint32(st.Mode)&07777)
}

// openInRoot opens name inside root, resolving symlinks as if root were /.
func openInRoot(root, name string) (*os.File, error) {
	dirfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dirfd)
	fd, err := unix.Openat2(dirfd, strings.TrimPrefix(filepath.Clean("/"+name), "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}
