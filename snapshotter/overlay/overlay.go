// Package overlay is the overlayfs backend of the snapshot store: each
// snapshot holds only its own changes (an upper directory), and a chain
// of committed snapshots is mounted as the lower layers of one overlay.
// Nothing is copied when a snapshot is made, and a parent is never
// remounted.
package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/store"
)

// New opens the overlay snapshot store under root. It fails when overlayfs
// cannot be mounted with an upper directory on root's filesystem.
func New(ctx context.Context, root string) (*store.Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("overlay snapshotter: %w", err)
	}
	b := &backend{}
	if err := b.check(root); err != nil {
		return nil, err
	}
	return store.Open(ctx, root, b)
}

type backend struct {
	// options are the mount options every overlay gets.
	options []string
}

// check mounts a small overlay under root to learn that overlayfs works
// there, and whether this kernel knows the index option.
func (b *backend) check(root string) error {
	dir, err := os.MkdirTemp(root, "overlay-check-")
	if err != nil {
		return fmt.Errorf("overlay snapshotter: %w", err)
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return fmt.Errorf("overlay snapshotter: %w", err)
		}
	}
	// index=off keeps the kernel from tying upper directories to their
	// lower layers' file handles: snapshots are mounted in many
	// combinations, and an index would refuse them.
	if _, err := os.Stat("/sys/module/overlay/parameters/index"); err == nil {
		b.options = append(b.options, "index=off")
	}
	data := strings.Join(append([]string{
		"lowerdir=" + filepath.Join(dir, "lower"),
		"upperdir=" + filepath.Join(dir, "upper"),
		"workdir=" + filepath.Join(dir, "work"),
	}, b.options...), ",")
	merged := filepath.Join(dir, "merged")
	if err := unix.Mount("overlay", merged, "overlay", 0, data); err != nil {
		return fmt.Errorf("overlay snapshotter: overlayfs does not work on %s (%w): use the native backend", root, err)
	}
	return unix.Unmount(merged, unix.MNT_DETACH)
}

func (b *backend) CanRebase() bool { return true }

// Populate makes the upper and work directories. The work directory must
// be on the upper's filesystem, so it lives beside it.
func (b *backend) Populate(ctx context.Context, dir string, kind snapshotter.Kind, parents []string) error {
	if err := os.Mkdir(store.FS(dir), 0o755); err != nil {
		return err
	}
	if kind == snapshotter.KindActive {
		return os.Mkdir(filepath.Join(dir, "work"), 0o711)
	}
	return nil
}

// Mounts: a snapshot without parents is its own directory, bound; a view
// of one layer is that layer bound read-only; the rest are overlays.
func (b *backend) Mounts(dir string, kind snapshotter.Kind, parents []string) []snapshotter.Mount {
	if len(parents) == 0 {
		return []snapshotter.Mount{bind(store.FS(dir), kind != snapshotter.KindActive)}
	}
	if kind != snapshotter.KindActive && len(parents) == 1 {
		return []snapshotter.Mount{bind(store.FS(parents[0]), true)}
	}
	lower := make([]string, len(parents))
	for i, p := range parents {
		lower[i] = store.FS(p)
	}
	var opts []string
	if kind == snapshotter.KindActive {
		opts = append(opts, "workdir="+filepath.Join(dir, "work"), "upperdir="+store.FS(dir))
	}
	opts = append(opts, "lowerdir="+strings.Join(lower, ":"))
	opts = append(opts, b.options...)
	return []snapshotter.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}

func bind(src string, ro bool) snapshotter.Mount {
	mode := "rw"
	if ro {
		mode = "ro"
	}
	return snapshotter.Mount{Type: "bind", Source: src, Options: []string{mode, "rbind"}}
}
