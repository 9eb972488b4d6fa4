package snapshots

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/log"
)

const (
	// readyTimeout bounds how long a started store may take to serve.
	readyTimeout = 30 * time.Second
	// Restarts back off from minBackoff to maxBackoff while the store
	// keeps dying soon after it starts; one that ran for stableAfter
	// starts the count again.
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 10 * time.Second
	stableAfter = 30 * time.Second
)

// findBinary returns bin if given, else berth-snapshotter beside the
// running executable, else on PATH.
func findBinary(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), BinaryName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(BinaryName)
	if err != nil {
		return "", fmt.Errorf("%s is neither beside berthd nor on PATH (install it, or give --snapshotter-address): %w", BinaryName, err)
	}
	return p, nil
}

// binaryVersion asks bin for its version ("berth-snapshotter v1.2" gives
// "v1.2"); empty when it does not say.
func binaryVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		return ""
	}
	return fields[len(fields)-1]
}

// supervisor runs one berth-snapshotter and starts it again when it dies.
type supervisor struct {
	cfg       Config
	bin       string
	onRestart func()

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	exitErr  error         // cmd.Wait's error, set before exited closes
	started  time.Time
	stopping bool
	stopc    chan struct{} // closed by stop
	done     chan struct{} // closed when run returns
	spawnc   chan func()   // run on the spawner thread; closed by stop
}

func newSupervisor(cfg Config, bin string) *supervisor {
	s := &supervisor{cfg: cfg, bin: bin, stopc: make(chan struct{}), done: make(chan struct{}), spawnc: make(chan func())}
	// The store is started with a parent-death signal, which the kernel
	// sends when the *thread* that forked it exits, and the Go runtime ends
	// threads that a goroutine locked and left (the mount package does so).
	// So every start forks from this one thread, which lives as long as
	// the supervisor.
	go func() {
		runtime.LockOSThread()
		for f := range s.spawnc {
			f()
		}
	}()
	return s
}

// start starts the process and waits until its socket answers.
func (s *supervisor) start(ctx context.Context) error {
	args := []string{"--root", s.cfg.Root, "--address", s.cfg.Socket}
	if s.cfg.LogLevel != "" {
		args = append(args, "--log-level", s.cfg.LogLevel)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = s.cfg.Output, s.cfg.Output
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A group of its own: a Ctrl-C at berthd's terminal reaches berthd
		// only, which stops the store after the calls that use it.
		Setpgid: true,
		// Should berthd die without stopping it, the store stops too and
		// releases its root for the next berthd.
		Pdeathsig: syscall.SIGTERM,
	}
	exited := make(chan struct{})
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return errors.New("snapshotter: stopping")
	}
	errc := make(chan error)
	s.spawnc <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.cmd, s.exited, s.exitErr, s.started = cmd, exited, nil, time.Now()
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.exitErr = err
		s.mu.Unlock()
		close(exited)
	}()
	log.L(ctx).Info("started the snapshotter", "pid", cmd.Process.Pid, "binary", s.bin, "root", s.cfg.Root, "address", s.cfg.Socket)
	if err := waitReady(ctx, s.cfg.Socket, exited); err != nil {
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s (pid %d): %w", BinaryName, cmd.Process.Pid, err)
	}
	s.publish(ctx, events.ActionStart, map[string]string{"pid": strconv.Itoa(cmd.Process.Pid)})
	return nil
}

// waitReady polls socket until it accepts a connection, the process
// exits, or readyTimeout passes.
func waitReady(ctx context.Context, socket string, exited <-chan struct{}) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before serving (its log is in berthd's log)")
		case <-deadline.C:
			return fmt.Errorf("not serving on %s after %s", socket, readyTimeout)
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}

func (s *supervisor) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	select {
	case <-s.exited:
		return 0
	default:
		return s.cmd.Process.Pid
	}
}

// run waits for the process to die and starts it again, backing off while
// it keeps dying young, until stop.
func (s *supervisor) run(ctx context.Context) {
	defer close(s.done)
	delay := minBackoff
	for {
		s.mu.Lock()
		exited, cmd := s.exited, s.cmd
		s.mu.Unlock()
		select {
		case <-s.stopc:
			return
		case <-exited:
		}
		s.mu.Lock()
		exitErr, ranFor := s.exitErr, time.Since(s.started)
		s.mu.Unlock()
		attrs := exitAttributes(cmd.ProcessState)
		attrs["pid"] = strconv.Itoa(cmd.Process.Pid)
		log.L(ctx).Error("the snapshotter died; starting it again", "pid", cmd.Process.Pid, "error", exitErr, "ran_for", ranFor.Round(time.Millisecond))
		s.publish(ctx, events.ActionDie, attrs)
		if ranFor >= stableAfter {
			delay = minBackoff
		}
		for {
			select {
			case <-s.stopc:
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, maxBackoff)
			err := s.start(ctx)
			if err == nil {
				break
			}
			select {
			case <-s.stopc:
				return
			default:
			}
			log.L(ctx).Error("could not start the snapshotter; trying again", "error", err, "in", delay)
		}
		if s.onRestart != nil {
			s.onRestart()
		}
	}
}

// exitAttributes describes how a process ended, for a die event: its
// exit code, or the signal that killed it.
func exitAttributes(ps *os.ProcessState) map[string]string {
	attrs := map[string]string{}
	if ps == nil {
		return attrs
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		attrs["signal"] = ws.Signal().String()
		return attrs
	}
	attrs["exitCode"] = strconv.Itoa(ps.ExitCode())
	return attrs
}

func (s *supervisor) publish(ctx context.Context, action string, attrs map[string]string) {
	if s.cfg.Events == nil {
		return
	}
	s.cfg.Events.Publish(ctx, events.Event{
		Type:   events.TypeSnapshotter,
		Action: action,
		Actor:  events.Actor{ID: s.cfg.Socket, Attributes: attrs},
	})
}

// stop ends supervision and the process: SIGTERM, and SIGKILL when it
// has not exited by the time ctx ends.
func (s *supervisor) stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil
	}
	s.stopping = true
	close(s.stopc)
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	// The spawner thread ends only once the process is gone: its end
	// would send the process its parent-death signal, a second SIGTERM
	// that may arrive as it exits and kill it uncleanly. No start sends to
	// spawnc any more: they check stopping under the lock first.
	defer close(s.spawnc)
	// run is waiting for the process or between restarts; either way it
	// returns now and starts nothing more (start refuses once stopping).
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop the snapshotter (pid %d): %w", cmd.Process.Pid, err)
	}
	select {
	case <-exited:
	case <-ctx.Done():
		log.L(ctx).Warn("the snapshotter did not stop in time; killing it", "pid", cmd.Process.Pid)
		cmd.Process.Kill()
		<-exited
	}
	s.mu.Lock()
	err := s.exitErr
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("the snapshotter (pid %d) stopped: %w", cmd.Process.Pid, err)
	}
	return nil
}
