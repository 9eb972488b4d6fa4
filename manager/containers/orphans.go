package containers

import (
	"context"
	"os"
	"strings"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"

	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/shimclient"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	"github.com/berth-project/berth/snapshotter"
)

// cleanOrphans undoes, at start-up, what a berthd that died half-way
// through a start or a create left: a bundle (a shim, maybe a running
// process, a mounted root filesystem, a network namespace) for a container
// not recorded as running, and a writable snapshot with no record.
func (s *Service) cleanOrphans(ctx context.Context, recs []*containersv1.Container) {
	byID := map[string]*containersv1.Container{}
	for _, r := range recs {
		byID[r.GetId()] = r
	}
	entries, _ := os.ReadDir(s.cfg.State)
	for _, e := range entries {
		id := e.Name()
		r := byID[id]
		if st := r.GetState().GetStatus(); r != nil && (st == StatusRunning || st == StatusPaused) {
			continue
		}
		log.L(ctx).Warn("cleaning up after a start that did not finish", "id", id)
		if sh, err := shimclient.Connect(ctx, s.cfg.Shim, s.bundle(id)); err == nil {
			_, _ = sh.Task.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: 9, All: true})
			_, _ = sh.Task.Wait(ctx, &taskapi.WaitRequest{ID: id})
			_, _ = sh.Task.Delete(ctx, &taskapi.DeleteRequest{ID: id})
			_ = sh.Shutdown(ctx, id)
		} else if _, err := os.Stat(s.bundle(id) + "/config.json"); err == nil {
			if _, err := shimclient.Cleanup(ctx, s.cfg.Shim, id, s.bundle(id)); err != nil {
				log.L(ctx).Warn("clean up the runtime's state", "id", id, "error", err)
			}
		}
		if r == nil {
			r = &containersv1.Container{Id: id, Config: &containersv1.Config{NetworkMode: "none"}}
		}
		s.releaseRun(ctx, id, r)
	}
	// A snapshot made for a container whose record never got written.
	var debris []string
	_ = s.cfg.Snapshotter.Walk(ctx, func(_ context.Context, info snapshotter.Info) error {
		if id, ok := strings.CutPrefix(info.Name, "berth/container/"); ok && byID[id] == nil {
			debris = append(debris, info.Name)
		}
		// The views that fill new volumes live only during a create.
		if strings.HasPrefix(info.Name, "berth/volume-copy/") {
			debris = append(debris, info.Name)
		}
		return nil
	})
	for _, key := range debris {
		log.L(ctx).Warn("removing the snapshot of a container never recorded", "key", key)
		if err := s.cfg.Snapshotter.Remove(ctx, key); err != nil {
			log.L(ctx).Warn("remove an orphaned snapshot", "key", key, "error", err)
		}
	}
}
