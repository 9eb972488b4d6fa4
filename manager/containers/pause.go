package containers

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// Pause freezes a running container's processes.
func (s *Service) Pause(ctx context.Context, ref string) error {
	return s.freeze(ctx, ref, true)
}

// Unpause thaws a paused container's processes.
func (s *Service) Unpause(ctx context.Context, ref string) error {
	return s.freeze(ctx, ref, false)
}

func (s *Service) freeze(ctx context.Context, ref string, pause bool) error {
	id, err := s.Resolve(ref)
	if err != nil {
		return err
	}
	c := s.track(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := s.record(id)
	if err != nil {
		return err
	}
	if c.run == nil {
		return fmt.Errorf("container %s is not running: %w", r.GetName(), errdefs.ErrFailedPrecondition)
	}
	paused := r.GetState().GetStatus() == StatusPaused
	switch {
	case pause && paused:
		return fmt.Errorf("container %s is already paused: %w", r.GetName(), errdefs.ErrFailedPrecondition)
	case !pause && !paused:
		return fmt.Errorf("container %s is not paused: %w", r.GetName(), errdefs.ErrFailedPrecondition)
	}
	status, action := StatusRunning, "unpause"
	if pause {
		_, err = c.run.shim.Task.Pause(ctx, &taskapi.PauseRequest{ID: id})
		status, action = StatusPaused, "pause"
	} else {
		_, err = c.run.shim.Task.Resume(ctx, &taskapi.ResumeRequest{ID: id})
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", action, r.GetName(), wireError(err))
	}
	rec, err := s.update(id, func(r *containersv1.Container) { r.State.Status = status })
	if err != nil {
		return err
	}
	s.publish(ctx, action, rec, nil)
	return nil
}

// thaw resumes a paused container before it is stopped or killed: a
// frozen process takes no signal.
func (s *Service) thaw(ctx context.Context, id string, run *running) {
	r, err := s.record(id)
	if err != nil || r.GetState().GetStatus() != StatusPaused {
		return
	}
	if _, err := run.shim.Task.Resume(ctx, &taskapi.ResumeRequest{ID: id}); err == nil {
		_, _ = s.update(id, func(r *containersv1.Container) {
			if r.State.Status == StatusPaused {
				r.State.Status = StatusRunning
			}
		})
	}
}

// Rename gives a container another name.
func (s *Service) Rename(ctx context.Context, ref, name string) error {
	id, err := s.Resolve(ref)
	if err != nil {
		return err
	}
	name = strings.TrimPrefix(name, "/")
	if !validName.MatchString(name) {
		return fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", name, errdefs.ErrInvalidArgument)
	}
	var rec containersv1.Container
	err = s.db.Update(func(tx *bolt.Tx) error {
		v1 := tx.Bucket(bucketV1)
		names, recs := v1.Bucket(bucketNames), v1.Bucket(bucketContainers)
		v := recs.Get([]byte(id))
		if v == nil {
			return fmt.Errorf("No such container: %s: %w", ref, errdefs.ErrNotFound)
		}
		if err := proto.Unmarshal(v, &rec); err != nil {
			return err
		}
		if rec.GetName() == name {
			return fmt.Errorf("Renaming a container with the same name as its current name: %w", errdefs.ErrInvalidArgument)
		}
		if other := names.Get([]byte(name)); other != nil {
			return fmt.Errorf("Conflict. The container name \"/%s\" is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name: %w", name, other, errdefs.ErrAlreadyExists)
		}
		if err := names.Delete([]byte(rec.GetName())); err != nil {
			return err
		}
		rec.Name = name
		v, err := proto.Marshal(&rec)
		if err != nil {
			return err
		}
		if err := names.Put([]byte(name), []byte(id)); err != nil {
			return err
		}
		return recs.Put([]byte(id), v)
	})
	if err != nil {
		return err
	}
	s.publish(ctx, "rename", &rec, nil)
	// Peers on its network know it by its new name.
	if st := rec.GetState().GetStatus(); st == StatusRunning || st == StatusPaused {
		s.syncHosts(ctx, rec.GetConfig().GetNetworkMode())
	}
	return nil
}

// Top lists a running container's processes with ps(1), as docker does:
// the host's ps, its lines kept for the container's PIDs.
func (s *Service) Top(ctx context.Context, ref, psArgs string) (*containersv1.TopResponse, error) {
	id, r, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	run, _, _ := s.track(id).current()
	if run == nil {
		return nil, fmt.Errorf("container %s is not running: %w", r.GetName(), errdefs.ErrFailedPrecondition)
	}
	resp, err := run.shim.Task.Pids(ctx, &taskapi.PidsRequest{ID: id})
	if err != nil {
		return nil, fmt.Errorf("the container's processes: %w", wireError(err))
	}
	var pids []int
	for _, p := range resp.GetProcesses() {
		pids = append(pids, int(p.GetPid()))
	}
	if psArgs == "" {
		psArgs = "-ef"
	}
	out, err := exec.CommandContext(ctx, "ps", strings.Fields(psArgs)...).Output()
	if err != nil {
		return nil, fmt.Errorf("ps %s: %v: %w", psArgs, err, errdefs.ErrInvalidArgument)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	titles := strings.Fields(lines[0])
	col := slices.Index(titles, "PID")
	if col < 0 {
		return nil, fmt.Errorf("ps %s prints no PID column: %w", psArgs, errdefs.ErrInvalidArgument)
	}
	top := &containersv1.TopResponse{Titles: titles}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col {
			continue
		}
		pid, err := strconv.Atoi(f[col])
		if err != nil || !slices.Contains(pids, pid) {
			continue
		}
		// The last column (the command) keeps its spaces.
		if len(f) > len(titles) {
			f = append(f[:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		}
		top.Processes = append(top.Processes, &containersv1.TopProcess{Fields: f})
	}
	return top, nil
}
