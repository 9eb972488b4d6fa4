// Package task is the shim's task service: containerd's
// containerd.task.v2.Task over ttrpc, on the process state machine, running
// the configured OCI runtime binary, and publishing task events.
package task

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/runc/options"
	apitask "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/shim/bootstrap"
	"github.com/berth-project/berth/shim/events"
	"github.com/berth-project/berth/shim/ociruntime"
	"github.com/berth-project/berth/shim/oom"
	"github.com/berth-project/berth/shim/process"
	"github.com/berth-project/berth/shim/reaper"
	"github.com/berth-project/berth/shim/stdio"
	"github.com/berth-project/berth/shim/wire"
)

// DefaultRuntime is the OCI runtime binary used when the runtime options
// name none.
const DefaultRuntime = "berth-runtime"

// DefaultRoot is the runtime's state root when the options name none; the
// namespace is appended, as containerd's runc shim does.
const DefaultRoot = "/run/containerd/berth"

var errNotFound = errdefs.ErrNotFound

// Service implements the task API for the containers of one shim.
type Service struct {
	namespace string
	log       *log.Entry
	reaper    *reaper.Reaper
	events    *events.Publisher
	shutdown  func()

	// OnFirstExec, when set, runs once, when the first exec is added.
	OnFirstExec func()
	firstExec   sync.Once

	mu         sync.Mutex
	containers map[string]*container
}

// New makes a service; shutdown is called when containerd asks the shim to
// exit and no container remains.
func New(namespace string, logger *log.Entry, r *reaper.Reaper, pub *events.Publisher, shutdown func()) *Service {
	return &Service{namespace: namespace, log: logger, reaper: r, events: pub, shutdown: shutdown, containers: map[string]*container{}}
}

var _ taskapi.TTRPCTaskService = (*Service)(nil)

func (s *Service) container(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

// process finds a container and one of its processes ("" is the init).
func (s *Service) process(id, execID string) (*container, *process.Process, error) {
	c, err := s.container(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.process(execID)
	return c, p, err
}

func (s *Service) Create(ctx context.Context, req *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	pid, err := s.create(ctx, req)
	if err != nil {
		return nil, err
	}
	return &taskapi.CreateTaskResponse{Pid: uint32(pid)}, nil
}

func (s *Service) create(ctx context.Context, req *taskapi.CreateTaskRequest) (int, error) {
	if req.Checkpoint != "" {
		return 0, fmt.Errorf("restore from checkpoint: %w", errdefs.ErrNotImplemented)
	}
	opts, err := runtimeOptions(req.Options)
	if err != nil {
		return 0, err
	}
	binary := opts.BinaryName
	if binary == "" {
		binary = DefaultRuntime
	}
	name := binary
	binary, err = exec.LookPath(name)
	if err != nil {
		return 0, fmt.Errorf("OCI runtime %q not found: install it or name another with the BinaryName runtime option: %w", name, errdefs.ErrInvalidArgument)
	}
	root := opts.Root
	if root == "" {
		root = DefaultRoot
	}
	c := &container{
		id: req.ID, bundle: req.Bundle, noPivot: opts.NoPivotRoot, noKeyring: opts.NoNewKeyring,
		rt:    &ociruntime.Runtime{Binary: binary, Root: filepath.Join(root, s.namespace), SystemdCgroup: opts.SystemdCgroup, Reaper: s.reaper},
		init:  process.New("", req.Terminal, stdio.Config{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Terminal: req.Terminal}),
		execs: map[string]*process.Process{},
	}
	record, err := json.Marshal(bootstrap.RuntimeRecord{Binary: binary, Root: c.rt.Root})
	if err == nil {
		err = os.WriteFile(filepath.Join(req.Bundle, bootstrap.RuntimeFile), record, 0o644)
	}
	if err != nil {
		return 0, fmt.Errorf("record the runtime in the bundle: %w", err)
	}
	s.mu.Lock()
	if _, ok := s.containers[req.ID]; ok {
		s.mu.Unlock()
		return 0, fmt.Errorf("container %s: %w", req.ID, errdefs.ErrAlreadyExists)
	}
	s.containers[req.ID] = c
	s.mu.Unlock()

	if !reaper.OwnPIDNamespace(req.Bundle) {
		// Its orphans are reparented to the shim, and only SIGCHLD tells.
		s.reaper.EnableOrphanReaping()
	}
	watch, err := s.createInit(ctx, c, req)
	if err != nil {
		s.mu.Lock()
		delete(s.containers, req.ID)
		s.mu.Unlock()
		return 0, err
	}
	pid := c.init.Snapshot().Pid
	s.events.Publish(events.TopicCreate, &eventstypes.TaskCreate{
		ContainerID: c.id, Bundle: c.bundle, Rootfs: req.Rootfs, Pid: uint32(pid),
		IO: &eventstypes.TaskIO{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Terminal: req.Terminal},
	})
	go s.awaitExit(c, c.init, watch)
	go s.watchOOM(c, pid)
	return pid, nil
}

// watchOOM publishes an OOM event each time the kernel kills a process of
// the container for lack of memory, until the container is gone.
func (s *Service) watchOOM(c *container, pid int) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-c.init.Exited()
		cancel()
	}()
	err := oom.Watch(ctx, pid, func() {
		s.events.Publish(events.TopicOOM, &eventstypes.TaskOOM{ContainerID: c.id})
	})
	if err != nil {
		s.log.WithError(err).WithField("container", c.id).Warn("cannot watch for OOM kills")
	}
}

func (s *Service) createInit(ctx context.Context, c *container, req *taskapi.CreateTaskRequest) (<-chan reaper.Exit, error) {
	if err := mountAll(req.Rootfs, c.rootfs()); err != nil {
		return nil, err
	}
	c.mounted = len(req.Rootfs) > 0
	watch, err := c.launch(ctx, c.init, s.reaper, s.namespace, "")
	if err != nil {
		// The runtime may have left state behind before failing.
		_ = c.rt.Delete(context.WithoutCancel(ctx), c.id, c.bundle, true)
		if c.mounted {
			_ = unmountAll(c.rootfs())
		}
		return nil, err
	}
	return watch, nil
}

// awaitExit records the exit of p, waits for its output to be copied out
// and publishes the exit. When the init exits, the exec'd processes die with
// it (they share its pid namespace, or are killed here).
func (s *Service) awaitExit(c *container, p *process.Process, watch <-chan reaper.Exit) {
	e := <-watch
	if p.ID == "" {
		// An init that exits at once may do so before Start has published
		// its start event, and containerd wants start before exit.
		c.starting.Lock()
		c.starting.Unlock()
		c.mu.Lock()
		execs := make([]*process.Process, 0, len(c.execs))
		for _, x := range c.execs {
			execs = append(execs, x)
		}
		c.mu.Unlock()
		for _, x := range execs {
			if snap := x.Snapshot(); snap.State == process.Running && snap.Pid > 0 {
				_ = syscallKill(snap.Pid, 9)
			}
		}
		for _, x := range execs {
			if x.Snapshot().State == process.Running {
				<-x.Exited()
			}
		}
	}
	if p.Streams != nil {
		p.Streams.Wait()
	}
	if !p.Exit(e.Status, e.At) {
		return
	}
	id := p.ID
	if id == "" {
		id = c.id
	}
	s.events.Publish(events.TopicExit, &eventstypes.TaskExit{
		ContainerID: c.id, ID: id, Pid: uint32(e.Pid), ExitStatus: uint32(e.Status), ExitedAt: timestamppb.New(e.At),
	})
}

func (s *Service) Start(ctx context.Context, req *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	c, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	if req.ExecID == "" {
		c.starting.Lock()
		defer c.starting.Unlock()
		err = p.Transition("start", process.Running, func() error { return c.rt.Start(ctx, c.id, c.bundle) }, process.Created)
		if err != nil {
			return nil, err
		}
		pid := p.Snapshot().Pid
		s.events.Publish(events.TopicStart, &eventstypes.TaskStart{ContainerID: c.id, Pid: uint32(pid)})
		return &taskapi.StartResponse{Pid: uint32(pid)}, nil
	}
	if err := c.init.Check("exec in", process.Running, process.Paused); err != nil {
		return nil, err
	}
	var watch <-chan reaper.Exit
	err = p.Transition("start", process.Running, func() error {
		var err error
		watch, err = c.launch(ctx, p, s.reaper, s.namespace, execSpecPath(c, p.ID))
		return err
	}, process.Created)
	if err != nil {
		return nil, err
	}
	pid := p.Snapshot().Pid
	s.events.Publish(events.TopicExecStarted, &eventstypes.TaskExecStarted{ContainerID: c.id, ExecID: p.ID, Pid: uint32(pid)})
	go s.awaitExit(c, p, watch)
	return &taskapi.StartResponse{Pid: uint32(pid)}, nil
}

func execSpecPath(c *container, execID string) string {
	return filepath.Join(c.bundle, execID+"-process.json")
}

func (s *Service) Exec(ctx context.Context, req *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.Check("exec in", process.Running, process.Paused, process.Created); err != nil {
		return nil, err
	}
	if req.ExecID == "" || strings.ContainsAny(req.ExecID, "/\x00") {
		return nil, fmt.Errorf("exec id %q: %w", req.ExecID, errdefs.ErrInvalidArgument)
	}
	if req.Spec == nil || len(req.Spec.Value) == 0 {
		return nil, fmt.Errorf("exec %s: no process spec: %w", req.ExecID, errdefs.ErrInvalidArgument)
	}
	c.mu.Lock()
	if _, ok := c.execs[req.ExecID]; ok {
		c.mu.Unlock()
		return nil, fmt.Errorf("exec %s: %w", req.ExecID, errdefs.ErrAlreadyExists)
	}
	if err := os.WriteFile(execSpecPath(c, req.ExecID), req.Spec.Value, 0o600); err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("write exec spec: %w", err)
	}
	if s.OnFirstExec != nil {
		s.firstExec.Do(s.OnFirstExec)
	}
	c.execs[req.ExecID] = process.New(req.ExecID, req.Terminal, stdio.Config{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Terminal: req.Terminal})
	c.mu.Unlock()
	s.events.Publish(events.TopicExecAdded, &eventstypes.TaskExecAdded{ContainerID: c.id, ExecID: req.ExecID})
	return &emptypb.Empty{}, nil
}

func (s *Service) Delete(ctx context.Context, req *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	c, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	created := p.Snapshot().State == process.Created
	err = p.Transition("delete", process.Deleted, func() error {
		if req.ExecID != "" {
			return nil
		}
		if err := c.rt.Delete(ctx, c.id, c.bundle, created); err != nil && !isNotExist(err) {
			return err
		}
		if c.mounted {
			return unmountAll(c.rootfs())
		}
		return nil
	}, process.Created, process.Stopped)
	if err != nil {
		return nil, err
	}
	snap := p.Snapshot()
	if p.Streams != nil {
		p.Streams.Close()
	}
	if req.ExecID != "" {
		c.mu.Lock()
		delete(c.execs, req.ExecID)
		c.mu.Unlock()
		os.Remove(execSpecPath(c, req.ExecID))
	} else {
		s.mu.Lock()
		delete(s.containers, c.id)
		s.mu.Unlock()
		s.events.Publish(events.TopicDelete, &eventstypes.TaskDelete{
			ContainerID: c.id, ID: c.id, Pid: uint32(snap.Pid), ExitStatus: uint32(snap.Status), ExitedAt: timestamppb.New(snap.ExitedAt),
		})
	}
	return &taskapi.DeleteResponse{Pid: uint32(snap.Pid), ExitStatus: uint32(snap.Status), ExitedAt: timestamppb.New(snap.ExitedAt)}, nil
}

func isNotExist(err error) bool {
	return err != nil && strings.Contains(err.Error(), "does not exist")
}

func (s *Service) State(ctx context.Context, req *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	c, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	snap := p.Snapshot()
	status := map[process.State]apitask.Status{
		process.Created: apitask.Status_CREATED, process.Running: apitask.Status_RUNNING,
		process.Paused: apitask.Status_PAUSED, process.Stopped: apitask.Status_STOPPED, process.Deleted: apitask.Status_STOPPED,
	}[snap.State]
	resp := &taskapi.StateResponse{
		ID: req.ID, ExecID: req.ExecID, Bundle: c.bundle, Pid: uint32(snap.Pid), Status: status,
		Stdin: p.IO.Stdin, Stdout: p.IO.Stdout, Stderr: p.IO.Stderr, Terminal: p.Terminal, ExitStatus: uint32(snap.Status),
	}
	if !snap.ExitedAt.IsZero() {
		resp.ExitedAt = timestamppb.New(snap.ExitedAt)
	}
	return resp, nil
}

func (s *Service) Pids(ctx context.Context, req *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	pids, err := c.rt.Ps(ctx, c.id, c.bundle)
	if err != nil {
		return nil, err
	}
	execOf := map[int]string{}
	c.mu.Lock()
	for id, p := range c.execs {
		execOf[p.Snapshot().Pid] = id
	}
	c.mu.Unlock()
	resp := &taskapi.PidsResponse{}
	for _, pid := range pids {
		info := &apitask.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execOf[pid]; ok {
			d, err := anyOf(&options.ProcessDetails{ExecID: id})
			if err != nil {
				return nil, err
			}
			info.Info = d
		}
		resp.Processes = append(resp.Processes, info)
	}
	return resp, nil
}

// anyOf wraps a message the way containerd 1.x resolves it: the type URL
// is the message's full name.
func anyOf(m any) (*anypb.Any, error) {
	v, err := wire.Encode(m)
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: wire.TypeURL(m), Value: v}, nil
}

func (s *Service) Pause(ctx context.Context, req *taskapi.PauseRequest) (*emptypb.Empty, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.Transition("pause", process.Paused, func() error { return c.rt.Pause(ctx, c.id, c.bundle) }, process.Running); err != nil {
		return nil, err
	}
	s.events.Publish(events.TopicPaused, &eventstypes.TaskPaused{ContainerID: c.id})
	return &emptypb.Empty{}, nil
}

func (s *Service) Resume(ctx context.Context, req *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.Transition("resume", process.Running, func() error { return c.rt.Resume(ctx, c.id, c.bundle) }, process.Paused); err != nil {
		return nil, err
	}
	s.events.Publish(events.TopicResumed, &eventstypes.TaskResumed{ContainerID: c.id})
	return &emptypb.Empty{}, nil
}

func (s *Service) Checkpoint(ctx context.Context, req *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, fmt.Errorf("checkpoint: %w", errdefs.ErrNotImplemented)
}

func (s *Service) Kill(ctx context.Context, req *taskapi.KillRequest) (*emptypb.Empty, error) {
	c, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.Check("kill", process.Created, process.Running, process.Paused); err != nil {
		return nil, err
	}
	if req.ExecID == "" {
		err = c.rt.Kill(ctx, c.id, c.bundle, int(req.Signal), req.All)
		if err != nil && isGone(err) {
			err = fmt.Errorf("%v: %w", err, errdefs.ErrNotFound)
		}
	} else {
		err = syscallKill(p.Snapshot().Pid, int(req.Signal))
	}
	return &emptypb.Empty{}, err
}

func isGone(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "not running") || strings.Contains(msg, "no such process") || strings.Contains(msg, "does not exist")
}

func (s *Service) ResizePty(ctx context.Context, req *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	_, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	if p.Streams == nil || !p.Terminal {
		return nil, fmt.Errorf("resize: the process has no terminal: %w", errdefs.ErrFailedPrecondition)
	}
	return &emptypb.Empty{}, p.Streams.Resize(req.Width, req.Height)
}

func (s *Service) CloseIO(ctx context.Context, req *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	_, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	if req.Stdin && p.Streams != nil {
		p.Streams.CloseStdin()
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) Update(ctx context.Context, req *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	if req.Resources == nil || len(req.Resources.Value) == 0 {
		return nil, fmt.Errorf("update: no resources given: %w", errdefs.ErrInvalidArgument)
	}
	if err := c.init.Check("update", process.Created, process.Running, process.Paused); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, c.rt.Update(ctx, c.id, c.bundle, req.Resources.Value)
}

func (s *Service) Wait(ctx context.Context, req *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	_, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.Exited():
	}
	snap := p.Snapshot()
	return &taskapi.WaitResponse{ExitStatus: uint32(snap.Status), ExitedAt: timestamppb.New(snap.ExitedAt)}, nil
}

func (s *Service) Stats(ctx context.Context, req *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	st, err := c.rt.Stats(ctx, c.id, c.bundle)
	if err != nil {
		return nil, err
	}
	a, err := anyOf(metrics(st))
	if err != nil {
		return nil, err
	}
	return &taskapi.StatsResponse{Stats: a}, nil
}

func (s *Service) Connect(ctx context.Context, req *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	resp := &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: "berth"}
	if c, err := s.container(req.ID); err == nil {
		resp.TaskPid = uint32(c.init.Snapshot().Pid)
	}
	return resp, nil
}

func (s *Service) Shutdown(ctx context.Context, req *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	n := len(s.containers)
	s.mu.Unlock()
	if n > 0 && !req.Now {
		return &emptypb.Empty{}, nil
	}
	// Reply first, then exit.
	go func() {
		time.Sleep(10 * time.Millisecond)
		s.shutdown()
	}()
	return &emptypb.Empty{}, nil
}
