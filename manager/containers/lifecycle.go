package containers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/filters"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/signals"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// wireError turns an error of a call to the shim into one with its
// errdefs kind.
func wireError(err error) error { return errgrpc.ToNative(err) }

// stopSignal is the signal Stop sends first: the container's, the
// image's, else SIGTERM.
func (s *Service) stopSignal(ctx context.Context, r *containersv1.Container) syscall.Signal {
	for _, name := range []string{r.GetConfig().GetStopSignal(), s.imageStopSignal(ctx, r)} {
		if name == "" {
			continue
		}
		if sig, err := signals.Parse(name); err == nil {
			return sig
		}
	}
	return syscall.SIGTERM
}

func (s *Service) imageStopSignal(ctx context.Context, r *containersv1.Container) string {
	img, err := s.cfg.Images.Get(ctx, r.GetImageId())
	if err != nil {
		return ""
	}
	return img.Config.Config.StopSignal
}

// Stop stops a running container: the stop signal, then SIGKILL after
// timeout (nil: the container's stop timeout, default 10 s).
func (s *Service) Stop(ctx context.Context, ref string, timeout *int32, signal string) error {
	id, r, err := s.lookup(ref)
	if err != nil {
		return err
	}
	sig := s.stopSignal(ctx, r)
	if signal != "" {
		if sig, err = signals.Parse(signal); err != nil {
			return err
		}
	}
	c := s.track(id)
	// Under the lifecycle lock: a start in progress finishes first, and is
	// then stopped. Marked first: a container waiting to be restarted
	// stays stopped.
	c.mu.Lock()
	s.markStopped(id)
	run, exited := c.run, c.exited
	c.mu.Unlock()
	if run == nil {
		return nil
	}
	wait := 10 * time.Second
	if t := r.GetConfig().GetStopTimeout(); t != 0 {
		wait = time.Duration(t) * time.Second
	}
	if timeout != nil {
		wait = time.Duration(*timeout) * time.Second
	}
	s.thaw(ctx, id, run)
	if _, err := run.shim.Task.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(sig)}); err != nil && !errdefs.IsNotFound(wireError(err)) {
		log.L(ctx).Warn("stop signal", "id", id, "error", err)
	}
	s.publish(ctx, events.ActionKill, r, map[string]string{"signal": strconv.Itoa(int(sig))})
	// A negative timeout waits as long as it takes, as docker's.
	var deadline <-chan time.Time
	if wait >= 0 {
		deadline = time.After(wait)
	}
	select {
	case <-exited:
		s.publish(ctx, events.ActionStop, r, nil)
		return nil
	case <-deadline:
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := run.shim.Task.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL), All: true}); err != nil && !errdefs.IsNotFound(wireError(err)) {
		return fmt.Errorf("kill: %w", wireError(err))
	}
	s.publish(ctx, events.ActionKill, r, map[string]string{"signal": strconv.Itoa(int(syscall.SIGKILL))})
	select {
	case <-exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.publish(ctx, events.ActionStop, r, nil)
	return nil
}

// markStopped records that the user stopped the container: its restart
// policy leaves it stopped.
func (s *Service) markStopped(id string) {
	_, _ = s.update(id, func(r *containersv1.Container) { r.ManuallyStopped = true })
}

// Kill sends a signal (default SIGKILL) to a running container's process.
func (s *Service) Kill(ctx context.Context, ref, signal string) error {
	id, r, err := s.lookup(ref)
	if err != nil {
		return err
	}
	sig := syscall.SIGKILL
	if signal != "" {
		if sig, err = signals.Parse(signal); err != nil {
			return err
		}
	}
	run, _, _ := s.track(id).current()
	if run == nil {
		return fmt.Errorf("cannot kill container: %s: container %s is not running: %w", ref, id, errdefs.ErrFailedPrecondition)
	}
	s.markStopped(id)
	if sig == syscall.SIGKILL {
		s.thaw(ctx, id, run)
	}
	if _, err := run.shim.Task.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(sig)}); err != nil {
		return fmt.Errorf("kill %s: %w", ref, wireError(err))
	}
	s.publish(ctx, events.ActionKill, r, map[string]string{"signal": strconv.Itoa(int(sig))})
	return nil
}

// Remove removes a container that does not run (with force, it is killed
// first): its snapshot, its files and its record; with volumes, its
// anonymous volumes too.
func (s *Service) Remove(ctx context.Context, ref string, force, volumes bool) error {
	id, err := s.Resolve(ref)
	if err != nil {
		return err
	}
	c := s.track(id)
	// Under the lifecycle lock, until it is seen not running: a start in
	// progress finishes first, then is killed (with force); a restart
	// policy does not bring it back meanwhile (marked stopped).
	for {
		c.mu.Lock()
		if force {
			s.markStopped(id)
		}
		run, exited := c.run, c.exited
		if run == nil {
			break // holding c.mu
		}
		c.mu.Unlock()
		if !force {
			r, _ := s.record(id)
			return fmt.Errorf("cannot remove container %q: container is running: stop the container before removing or force remove: %w", "/"+r.GetName(), errdefs.ErrFailedPrecondition)
		}
		s.thaw(ctx, id, run)
		if _, err := run.shim.Task.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL), All: true}); err != nil && !errdefs.IsNotFound(wireError(err)) {
			return fmt.Errorf("kill before removal: %w", wireError(err))
		}
		select {
		case <-exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer c.mu.Unlock()
	r, err := s.update(id, func(r *containersv1.Container) { r.State.Status = StatusRemoving })
	if err != nil {
		return err
	}
	// A cp or commit still using the root filesystem ends first.
	c.fs.Lock()
	defer c.fs.Unlock()
	// The snapshot goes first: a record without its snapshot would be a
	// container that cannot start, a snapshot without a record debris
	// that start-up cannot name.
	if err := s.cfg.Snapshotter.Remove(ctx, snapshotKey(id)); err != nil && !errdefs.IsNotFound(err) {
		_, _ = s.update(id, func(r *containersv1.Container) { r.State.Status = StatusDead })
		return fmt.Errorf("remove the root filesystem of %s: %w", r.GetName(), err)
	}
	if s.cfg.Volumes != nil {
		s.releaseVolumes(ctx, id, r.GetConfig(), volumes)
	}
	if err := os.RemoveAll(s.dir(id)); err != nil {
		log.L(ctx).Warn("remove the container's files", "id", id, "error", err)
	}
	_ = os.RemoveAll(s.bundle(id))
	if err := s.db.Update(func(tx *bolt.Tx) error {
		v1 := tx.Bucket(bucketV1)
		if err := v1.Bucket(bucketNames).Delete([]byte(r.GetName())); err != nil {
			return err
		}
		return v1.Bucket(bucketContainers).Delete([]byte(id))
	}); err != nil {
		return fmt.Errorf("remove the record of %s: %w", r.GetName(), err)
	}
	s.untrack(id)
	close(c.removed)
	s.publish(ctx, events.ActionDestroy, r, nil)
	return nil
}

// Get returns a container's record; with size, the bytes its writable
// layer holds.
func (s *Service) Get(ctx context.Context, ref string, size bool) (*containersv1.Container, error) {
	_, r, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	if size {
		r.SizeRw = s.sizeRW(ctx, r.GetId())
	}
	return r, nil
}

// SizeRW is the disk a container's writable layer uses, 0 if unknown.
func (s *Service) SizeRW(ctx context.Context, id string) int64 { return s.sizeRW(ctx, id) }

func (s *Service) sizeRW(ctx context.Context, id string) int64 {
	u, err := s.cfg.Snapshotter.Usage(ctx, snapshotKey(id))
	if err != nil {
		return 0
	}
	return u.Size
}

// listFilterKeys are the keys of `ps --filter`.
var listFilterKeys = []string{"id", "name", "label", "status", "exited", "ancestor"}

// List returns the containers, newest first: all of them, or only those
// running.
func (s *Service) List(ctx context.Context, all bool, fs []string) ([]*containersv1.Container, error) {
	args, err := filters.Parse(fs, listFilterKeys...)
	if err != nil {
		return nil, err
	}
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	var out []*containersv1.Container
	for _, r := range recs {
		st := r.GetState().GetStatus()
		if !all && st != StatusRunning && st != StatusPaused && !args.Has("status") && !args.Has("exited") {
			continue
		}
		if !args.MatchFunc("id", func(v string) bool { return strings.HasPrefix(r.GetId(), v) }) ||
			!args.MatchFunc("name", func(v string) bool { return strings.Contains(r.GetName(), strings.TrimPrefix(v, "/")) }) ||
			!args.MatchLabels("label", r.GetConfig().GetLabels()) ||
			!args.Match("status", st) ||
			!args.MatchFunc("exited", func(v string) bool { return st == StatusExited && v == strconv.Itoa(int(r.GetState().GetExitCode())) }) ||
			!args.MatchFunc("ancestor", func(v string) bool {
				return r.GetImage() == v || strings.HasPrefix(strings.TrimPrefix(r.GetImageId(), "sha256:"), strings.TrimPrefix(v, "sha256:"))
			}) {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetCreated().AsTime().After(out[j].GetCreated().AsTime()) })
	return out, nil
}

// Wait waits for a condition: "not-running" (default), "next-exit" or
// "removed", and returns the exit code of the last run.
func (s *Service) Wait(ctx context.Context, ref, condition string) (_ int32, retErr error) {
	ctx, cancel := s.untilStopping(ctx)
	defer cancel()
	defer func() {
		if retErr != nil && errors.Is(context.Cause(ctx), ErrStopping) {
			retErr = ErrStopping
		}
	}()
	id, err := s.Resolve(ref)
	if err != nil {
		return 0, err
	}
	c := s.track(id)
	switch condition {
	case "", "not-running":
		_, _, exited := c.current()
		select {
		case <-exited:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	case "next-exit":
		run, started, _ := c.current()
		if run == nil {
			select {
			case <-started:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		_, _, exited := c.current()
		select {
		case <-exited:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	case "removed":
		select {
		case <-c.removed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		c.state.Lock()
		defer c.state.Unlock()
		return c.exitCode, nil
	default:
		return 0, fmt.Errorf("invalid condition: %q: want not-running, next-exit or removed: %w", condition, errdefs.ErrInvalidArgument)
	}
	r, err := s.record(id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			c.state.Lock()
			defer c.state.Unlock()
			return c.exitCode, nil
		}
		return 0, err
	}
	return r.GetState().GetExitCode(), nil
}

// Prune removes the containers that are not running; it returns their
// IDs and the bytes their writable layers held.
func (s *Service) Prune(ctx context.Context, fs []string) ([]string, int64, error) {
	args, err := filters.Parse(fs, "label", "label!", "until")
	if err != nil {
		return nil, 0, err
	}
	until, err := untilFilter(args)
	if err != nil {
		return nil, 0, err
	}
	recs, err := s.records()
	if err != nil {
		return nil, 0, err
	}
	var removed []string
	var reclaimed int64
	var errs []error
	for _, r := range recs {
		if st := r.GetState().GetStatus(); st == StatusRunning || st == StatusPaused {
			continue
		}
		if !args.MatchLabels("label", r.GetConfig().GetLabels()) || (args.Has("label!") && args.MatchLabels("label!", r.GetConfig().GetLabels())) ||
			(!until.IsZero() && !r.GetCreated().AsTime().Before(until)) {
			continue
		}
		size := s.sizeRW(ctx, r.GetId())
		if err := s.Remove(ctx, r.GetId(), false, false); err != nil {
			if !errdefs.IsNotFound(err) && !errdefs.IsFailedPrecondition(err) {
				errs = append(errs, err)
			}
			continue
		}
		removed = append(removed, r.GetId())
		reclaimed += size
	}
	return removed, reclaimed, errors.Join(errs...)
}

func untilFilter(args filters.Args) (time.Time, error) {
	vs := args.Get("until")
	if len(vs) == 0 {
		return time.Time{}, nil
	}
	return filters.ParseTime(vs[0], time.Now())
}
