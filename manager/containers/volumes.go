package containers

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/fscopy"
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
			if err := copyInto(ctx, root, m.GetDestination(), dirs[i]); err != nil {
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
// dir, which is empty: everything a container sees (owners, modes, times,
// xattrs, links). A dest the image does not have copies nothing.
func copyInto(ctx context.Context, root, dest, dir string) error {
	src, err := openInRoot(root, dest)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return err
	}
	defer src.Close()
	// The path resolved inside root: copied from there (the image's own
	// symlinks below it are copied as links, never followed).
	srcPath, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", src.Fd()))
	if err != nil {
		return err
	}
	if !strings.HasPrefix(srcPath, filepath.Clean(root)+"/") {
		return fmt.Errorf("%s resolves outside the image (%s)", dest, srcPath)
	}
	// The volume's directory is made again as the image's (its mode and
	// owner too): it is empty and nothing uses it yet.
	if err := os.Remove(dir); err != nil {
		return err
	}
	return fscopy.CopyTree(ctx, dir, srcPath)
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
