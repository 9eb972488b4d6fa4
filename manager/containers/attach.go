package containers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/ocispec"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// Input is one message from an attached client: stdin, its end, or a
// terminal size. Recv returns the next; an error ends the input.
type Input struct {
	Stdin      []byte
	CloseStdin bool
	Resize     *containersv1.Resize
}

// AttachOptions say which streams a client attaches to.
type AttachOptions struct {
	Stdin, Stdout, Stderr bool
}

// Attach connects a client to a container's streams. It sends attached
// once the client is connected (a client may then start the container and
// miss nothing), then the output of the current or next run, and last its
// exit code. It returns when the run ends, or when ctx ends.
func (s *Service) Attach(ctx context.Context, ref string, o AttachOptions, recv func() (Input, error), send func(*containersv1.AttachOutput) error) error {
	ctx, cancel := s.untilStopping(ctx)
	defer cancel()
	id, r, err := s.lookup(ref)
	if err != nil {
		return err
	}
	cfg := r.GetConfig()
	c := s.track(id)
	a, detach := c.attached.add(o.Stdout, o.Stderr)
	defer detach()
	if err := send(&containersv1.AttachOutput{Output: &containersv1.AttachOutput_Attached{Attached: true}}); err != nil {
		return err
	}
	s.publish(ctx, events.ActionAttach, r, nil)
	_, started, _ := c.current()
	go func() {
		for {
			in, err := recv()
			if err != nil {
				return
			}
			select {
			case <-started:
			case <-ctx.Done():
				return
			}
			run, _, _ := c.current()
			if run == nil {
				continue
			}
			switch {
			case in.Resize != nil:
				_, _ = run.shim.Task.ResizePty(ctx, &taskapi.ResizePtyRequest{ID: id, Width: in.Resize.GetWidth(), Height: in.Resize.GetHeight()})
			case in.CloseStdin:
				// docker closes a container's stdin when its attached
				// client's ends only with StdinOnce (`run -i`).
				// Closing berthd's end of the FIFO is enough: the shim
				// reads what is left, then closes the process's stdin (a
				// CloseIO could overtake that data).
				if o.Stdin && cfg.GetStdinOnce() {
					run.io.closeStdin()
				}
			case len(in.Stdin) > 0 && o.Stdin:
				if err := run.io.writeStdin(in.Stdin); err != nil {
					log.L(ctx).Debug("stdin", "id", id, "error", err)
				}
			}
		}
	}()
	select {
	case <-started:
	case <-ctx.Done():
		return nil
	}
	_, _, exited := c.current()
	return pump(ctx, a, exited, func() int32 {
		c.state.Lock()
		defer c.state.Unlock()
		return c.exitCode
	}, send)
}

// pump sends a's output until exited closes, then what is left and the
// exit code.
func pump(ctx context.Context, a *attachment, exited <-chan struct{}, code func() int32, send func(*containersv1.AttachOutput) error) error {
	data := func(e *containersv1.LogEntry) error {
		return send(&containersv1.AttachOutput{Output: &containersv1.AttachOutput_Data{Data: e}})
	}
	for {
		select {
		case e := <-a.out:
			if err := data(e); err != nil {
				return err
			}
		case <-a.gone:
			return fmt.Errorf("attached client too slow: output was lost: %w", errdefs.ErrResourceExhausted)
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrStopping) {
				return ErrStopping
			}
			return nil
		case <-exited:
			for {
				select {
				case e := <-a.out:
					if err := data(e); err != nil {
						return err
					}
					continue
				default:
				}
				break
			}
			return send(&containersv1.AttachOutput{Output: &containersv1.AttachOutput_ExitCode{ExitCode: code()}})
		}
	}
}

// Exec runs another process in a running container, as Attach streams a
// container's: attached once it started, its output, its exit code.
func (s *Service) Exec(ctx context.Context, start *containersv1.ExecStart, recv func() (Input, error), send func(*containersv1.AttachOutput) error) (retErr error) {
	ctx, cancel := s.untilStopping(ctx)
	defer cancel()
	if len(start.GetCmd()) == 0 {
		return fmt.Errorf("no command given to exec: %w", errdefs.ErrInvalidArgument)
	}
	id, r, err := s.lookup(start.GetId())
	if err != nil {
		return err
	}
	c := s.track(id)
	run, _, _ := c.current()
	if run == nil {
		return fmt.Errorf("container %s is not running: %w", r.GetName(), errdefs.ErrFailedPrecondition)
	}
	if r.GetState().GetStatus() == StatusPaused {
		return fmt.Errorf("container %s is paused, unpause the container before exec: %w", r.GetName(), errdefs.ErrFailedPrecondition)
	}
	bundle := s.bundle(id)
	proc, err := execProcess(bundle, start)
	if err != nil {
		return err
	}
	v, err := json.Marshal(proc)
	if err != nil {
		return err
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	execID := "exec-" + hex.EncodeToString(b)
	var outs attachments
	a, _ := outs.add(true, true)
	st, err := openStreams(ctx, bundle, execID, start.GetStdin(), start.GetTty(), nil, outs.broadcast)
	if err != nil {
		return err
	}
	task := run.shim.Task
	bg := context.WithoutCancel(ctx)
	cleanup := func() {
		dctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		_, _ = task.Delete(dctx, &taskapi.DeleteRequest{ID: id, ExecID: execID})
		st.wait(5 * time.Second)
		st.remove()
	}
	if _, err := task.Exec(ctx, &taskapi.ExecProcessRequest{
		ID: id, ExecID: execID, Terminal: start.GetTty(),
		Stdin: st.paths.stdin, Stdout: st.paths.stdout, Stderr: st.paths.stderr,
		Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: v},
	}); err != nil {
		st.remove()
		return fmt.Errorf("exec: %w", wireError(err))
	}
	if _, err := task.Start(ctx, &taskapi.StartRequest{ID: id, ExecID: execID}); err != nil {
		cleanup()
		return fmt.Errorf("exec %s: %w", strings.Join(start.GetCmd(), " "), wireError(err))
	}
	s.publish(ctx, events.ActionExecStart, r, map[string]string{"execID": execID})
	if err := send(&containersv1.AttachOutput{Output: &containersv1.AttachOutput_Attached{Attached: true}}); err != nil {
		go func() { _, _ = task.Wait(bg, &taskapi.WaitRequest{ID: id, ExecID: execID}); cleanup() }()
		return err
	}
	done := make(chan struct{})
	var code int32
	go func() {
		resp, err := task.Wait(bg, &taskapi.WaitRequest{ID: id, ExecID: execID})
		code = int32(resp.GetExitStatus())
		if err != nil {
			code = 255
		}
		cleanup()
		s.publish(bg, events.ActionExecDie, r, map[string]string{"execID": execID, "exitCode": fmt.Sprint(code)})
		close(done)
	}()
	if start.GetDetach() {
		return nil
	}
	go func() {
		for {
			in, err := recv()
			if err != nil {
				return
			}
			switch {
			case in.Resize != nil:
				_, _ = task.ResizePty(bg, &taskapi.ResizePtyRequest{ID: id, ExecID: execID, Width: in.Resize.GetWidth(), Height: in.Resize.GetHeight()})
			case in.CloseStdin:
				st.closeStdin()
			case len(in.Stdin) > 0:
				_ = st.writeStdin(in.Stdin)
			}
		}
	}()
	return pump(ctx, a, done, func() int32 { return code }, send)
}

// execProcess is the exec's process: the container's, with the exec's
// command, environment, directory, user and terminal.
func execProcess(bundle string, start *containersv1.ExecStart) (*specs.Process, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("the container's spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil || spec.Process == nil {
		return nil, fmt.Errorf("the container's spec is damaged: %v", err)
	}
	p := *spec.Process
	p.Args = start.GetCmd()
	p.Terminal = start.GetTty()
	p.ConsoleSize = nil
	p.Env = ocispec.MergeEnv(p.Env, start.GetEnv())
	if start.GetWorkingDir() != "" {
		if !filepath.IsAbs(start.GetWorkingDir()) {
			return nil, fmt.Errorf("the working directory %q is not an absolute path: %w", start.GetWorkingDir(), errdefs.ErrInvalidArgument)
		}
		p.Cwd = start.GetWorkingDir()
	}
	if start.GetUser() != "" {
		u, err := ocispec.ResolveUser(spec.Root.Path, start.GetUser())
		if err != nil {
			return nil, err
		}
		p.User = u
	}
	if start.GetPrivileged() {
		all := ocispec.AllCapabilities()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	}
	return &p, nil
}
