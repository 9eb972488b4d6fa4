package runner

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"github.com/containerd/console"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
)

// stdio holds what a process's standard streams need while the runtime
// waits on it: the sockets to close once the process started, and for a
// foreground terminal the pty master and the host terminal in raw mode.
type stdio struct {
	postStart []io.Closer
	host      console.Console // the caller's terminal, if any
	master    chan consoleResult
	console   console.Console // pty master received from the container
	copies    sync.WaitGroup
}

type consoleResult struct {
	c   console.Console
	err error
}

// setupStdio wires the process's streams. Without a terminal the process
// inherits ours (its fds are passed straight through, nothing is copied).
// With a terminal and detach, the pty master goes to the caller's console
// socket; in the foreground we receive it ourselves and copy.
func setupStdio(p *libcontainer.Process, terminal, detach bool, consoleSocket string) (_ *stdio, retErr error) {
	s := &stdio{}
	defer func() {
		if retErr != nil {
			s.close()
		}
	}()
	if !terminal {
		p.Stdin, p.Stdout, p.Stderr = os.Stdin, os.Stdout, os.Stderr
		return s, nil
	}
	if detach {
		conn, err := net.Dial("unix", consoleSocket)
		if err != nil {
			return nil, fmt.Errorf("connect to console socket %s: %w", consoleSocket, err)
		}
		s.postStart = append(s.postStart, conn)
		f, err := conn.(*net.UnixConn).File()
		if err != nil {
			return nil, fmt.Errorf("console socket %s: %w", consoleSocket, err)
		}
		s.postStart = append(s.postStart, f)
		p.ConsoleSocket = f
		return s, nil
	}
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if c, err := console.ConsoleFromFile(f); err == nil {
			s.host = c
			break
		}
	}
	if s.host != nil {
		if err := s.host.SetRaw(); err != nil {
			return nil, fmt.Errorf("set terminal raw: %w", err)
		}
	}
	parent, child, err := utils.NewSockPair("console")
	if err != nil {
		return nil, fmt.Errorf("console socket pair: %w", err)
	}
	s.postStart = append(s.postStart, parent, child)
	p.ConsoleSocket = child
	s.master = make(chan consoleResult, 1)
	go func() {
		f, err := utils.RecvFile(parent)
		if err != nil {
			s.master <- consoleResult{err: fmt.Errorf("receive pty master: %w", err)}
			return
		}
		c, err := console.ConsoleFromFile(f)
		if err != nil {
			f.Close()
			s.master <- consoleResult{err: fmt.Errorf("pty master: %w", err)}
			return
		}
		s.master <- consoleResult{c: c}
	}()
	return s, nil
}

// started runs once the process runs: it waits for the pty master (if we
// receive one), starts copying, and closes the sockets only start needed.
func (s *stdio) started() error {
	if s.master != nil {
		r := <-s.master
		if r.err != nil {
			return r.err
		}
		s.console = r.c
		_ = s.resize()
		go func() { _, _ = io.Copy(s.console, os.Stdin) }()
		s.copies.Add(1)
		go func() {
			defer s.copies.Done()
			_, _ = io.Copy(os.Stdout, s.console)
		}()
	}
	for _, c := range s.postStart {
		c.Close()
	}
	s.postStart = nil
	return nil
}

// resize gives the container's terminal the size of ours.
func (s *stdio) resize() error {
	if s.console == nil || s.host == nil {
		return nil
	}
	return s.console.ResizeFrom(s.host)
}

// drain waits until the container's terminal output is copied out; the
// copy ends when the last holder of the pty slave has exited.
func (s *stdio) drain() {
	if s.console != nil {
		s.copies.Wait()
	}
}

func (s *stdio) close() {
	for _, c := range s.postStart {
		c.Close()
	}
	if s.console != nil {
		s.console.Close()
	}
	if s.host != nil {
		if err := s.host.Reset(); err != nil && !errors.Is(err, os.ErrClosed) {
			fmt.Fprintln(os.Stderr, "reset terminal:", err)
		}
	}
}
