package task

import (
	"context"
	"fmt"
	"os"

	apitypes "github.com/containerd/containerd/api/types"

	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/mount"
)

// mountAll mounts the rootfs mounts containerd gives with Create onto
// target, in order; on failure it unmounts what it mounted. Deep overlays
// (more layers than fit in a page of mount options) are handled by the
// mount package.
func mountAll(mounts []*apitypes.Mount, target string) error {
	if len(mounts) == 0 {
		return nil
	}
	if err := os.MkdirAll(target, 0o711); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	ms := make([]snapshotter.Mount, len(mounts))
	for i, m := range mounts {
		ms[i] = snapshotter.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options}
	}
	return mount.All(context.TODO(), ms, target)
}

// unmountAll unmounts everything mounted on target.
func unmountAll(target string) error { return mount.UnmountAll(target) }
