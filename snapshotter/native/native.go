// Package native is the copying backend of the snapshot store, for where
// overlayfs is not available: an active snapshot is a full copy of its
// parent's tree, mounted with a bind. It costs disk and time per snapshot;
// the overlay backend should be preferred wherever it works.
package native

import (
	"context"
	"fmt"
	"os"

	"github.com/berth-project/berth/internal/fscopy"
	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/store"
)

// New opens the native snapshot store under root.
func New(ctx context.Context, root string) (*store.Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("native snapshotter: %w", err)
	}
	return store.Open(ctx, root, backend{})
}

type backend struct{}

// CanRebase is false: a copy holds its parent's files, not only its
// changes, so it cannot be moved onto another parent.
func (backend) CanRebase() bool { return false }

// Populate copies the parent's tree for an active snapshot; a view binds
// its parent directly (a committed snapshot never changes).
func (backend) Populate(ctx context.Context, dir string, kind snapshotter.Kind, parents []string) error {
	if kind != snapshotter.KindActive || len(parents) == 0 {
		return os.Mkdir(store.FS(dir), 0o755)
	}
	return fscopy.CopyTree(ctx, store.FS(dir), store.FS(parents[0]))
}

func (backend) Mounts(dir string, kind snapshotter.Kind, parents []string) []snapshotter.Mount {
	src, mode := store.FS(dir), "rw"
	if kind != snapshotter.KindActive {
		mode = "ro"
		if len(parents) > 0 {
			src = store.FS(parents[0])
		}
	}
	return []snapshotter.Mount{{Type: "bind", Source: src, Options: []string{mode, "rbind"}}}
}
