package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/manager/client"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// ioStream is an Attach or Exec stream, seen the same way: both send
// stdin, its end and terminal sizes, and receive AttachOutput.
type ioStream struct {
	c      *client.Client
	mu     sync.Mutex // one Send at a time
	send   func(stdin []byte, closeStdin bool, resize *containersv1.Resize) error
	recv   func() (*containersv1.AttachOutput, error)
	closeS func() error
}

func attachStream(c *client.Client, s containersv1.Containers_AttachClient) *ioStream {
	return &ioStream{
		c: c,
		send: func(stdin []byte, closeStdin bool, resize *containersv1.Resize) error {
			in := &containersv1.AttachInput{}
			switch {
			case resize != nil:
				in.Input = &containersv1.AttachInput_Resize{Resize: resize}
			case closeStdin:
				in.Input = &containersv1.AttachInput_CloseStdin{CloseStdin: true}
			default:
				in.Input = &containersv1.AttachInput_Stdin{Stdin: stdin}
			}
			return s.Send(in)
		},
		recv:   s.Recv,
		closeS: s.CloseSend,
	}
}

func execStream(c *client.Client, s containersv1.Containers_ExecClient) *ioStream {
	return &ioStream{
		c: c,
		send: func(stdin []byte, closeStdin bool, resize *containersv1.Resize) error {
			in := &containersv1.ExecInput{}
			switch {
			case resize != nil:
				in.Input = &containersv1.ExecInput_Resize{Resize: resize}
			case closeStdin:
				in.Input = &containersv1.ExecInput_CloseStdin{CloseStdin: true}
			default:
				in.Input = &containersv1.ExecInput_Stdin{Stdin: stdin}
			}
			return s.Send(in)
		},
		recv:   s.Recv,
		closeS: s.CloseSend,
	}
}

func (s *ioStream) sendMsg(stdin []byte, closeStdin bool, resize *containersv1.Resize) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.send(stdin, closeStdin, resize)
}

// waitAttached reads the first reply, which must say the stream is
// connected (attach) or the process started (exec).
func (s *ioStream) waitAttached() error {
	m, err := s.recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the daemon ended the stream before attaching")
		}
		return s.c.Error(err)
	}
	if !m.GetAttached() {
		return fmt.Errorf("the daemon answered %v before attaching", m)
	}
	return nil
}

// ioOptions say what a stream carries.
type ioOptions struct {
	stdin bool // pump cli.In
	tty   bool // one stream, raw terminal, sizes
}

// errNoExitCode is a stream that ended without the exit code.
var errNoExitCode = errors.New("the stream ended without the exit code")

// errDetached is the user typing the detach keys: berth lets go of the
// container, which runs on. Callers end successfully.
var errDetached = errors.New("read escape sequence")

// detachKeys are docker's default: ctrl-p, ctrl-q.
var detachKeys = []byte{0x10, 0x11}

// detachFilter passes typed input through until the detach keys arrive;
// a prefix of them is held back until what follows shows whether it is
// the sequence.
type detachFilter struct {
	held int // how many of detachKeys the last input ended with
}

// filter returns what to send of in, and whether the keys were typed.
func (f *detachFilter) filter(in []byte) ([]byte, bool) {
	var out []byte
	for _, b := range in {
		if b == detachKeys[f.held] {
			f.held++
			if f.held == len(detachKeys) {
				return out, true
			}
			continue
		}
		out = append(out, detachKeys[:f.held]...)
		f.held = 0
		if b == detachKeys[0] {
			f.held = 1
			continue
		}
		out = append(out, b)
	}
	return out, false
}

// pipe copies the stream's output to cli.Out and cli.Err (all of it to
// cli.Out with a TTY) and, with stdin, cli.In to the stream, ending it
// with close_stdin; with a TTY, the local terminal is raw meanwhile and
// its size follows. It returns the process's exit code, or
// errNoExitCode when the stream ends without one.
func (cli *CLI) pipe(ctx context.Context, s *ioStream, opts ioOptions) (int, error) {
	if opts.tty {
		if con := terminalOf(cli.In); con != nil && opts.stdin {
			if err := con.SetRaw(); err == nil {
				defer con.Reset()
			}
		}
		if con := terminalOf(cli.Out); con != nil {
			resize := func() {
				if ws, err := con.Size(); err == nil && ws.Width > 0 {
					s.sendMsg(nil, false, &containersv1.Resize{Width: uint32(ws.Width), Height: uint32(ws.Height)})
				}
			}
			resize()
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, unix.SIGWINCH)
			defer signal.Stop(winch)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case _, ok := <-winch:
						if !ok {
							return
						}
						resize()
					}
				}
			}()
		}
	}
	// With a terminal on stdin, the detach keys let go of the container.
	detached := make(chan struct{})
	if opts.stdin && cli.In != nil {
		var keys *detachFilter
		if opts.tty && terminalOf(cli.In) != nil {
			keys = &detachFilter{}
		}
		go func() {
			buf := make([]byte, 32*1024)
			for {
				n, err := cli.In.Read(buf)
				if n > 0 {
					data := append([]byte(nil), buf[:n]...)
					if keys != nil {
						var detach bool
						if data, detach = keys.filter(data); detach {
							close(detached)
							return
						}
					}
					if len(data) > 0 {
						if serr := s.sendMsg(data, false, nil); serr != nil {
							return
						}
					}
				}
				if err != nil {
					s.sendMsg(nil, true, nil)
					return
				}
			}
		}()
	}
	type received struct {
		m   *containersv1.AttachOutput
		err error
	}
	msgs := make(chan received)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			m, err := s.recv()
			select {
			case msgs <- received{m, err}:
			case <-detached:
				return
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		var r received
		select {
		case r = <-msgs:
		case <-detached:
			return 0, errDetached
		}
		m, err := r.m, r.err
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, errNoExitCode
			}
			return 0, s.c.Error(err)
		}
		switch o := m.GetOutput().(type) {
		case *containersv1.AttachOutput_Data:
			w := cli.Out
			if !opts.tty && o.Data.GetStream() == containersv1.Stream_STREAM_STDERR {
				w = cli.Err
			}
			if _, err := w.Write(o.Data.GetData()); err != nil {
				return 0, err
			}
		case *containersv1.AttachOutput_ExitCode:
			return int(o.ExitCode), nil
		}
	}
}

// terminalOf is f as a console when it is a terminal.
func terminalOf(f any) console.Console {
	file, ok := f.(*os.File)
	if !ok || !isTerminal(file) {
		return nil
	}
	con, err := console.ConsoleFromFile(file)
	if err != nil {
		return nil
	}
	return con
}

// exitStatus ends a command with the container's exit code, as docker
// does: silently, 0 being success.
func exitStatus(code int) error {
	if code == 0 {
		return nil
	}
	return &StatusError{Code: code}
}
