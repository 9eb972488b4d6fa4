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
	if opts.stdin && cli.In != nil {
		go func() {
			buf := make([]byte, 32*1024)
			for {
				n, err := cli.In.Read(buf)
				if n > 0 {
					if serr := s.sendMsg(append([]byte(nil), buf[:n]...), false, nil); serr != nil {
						return
					}
				}
				if err != nil {
					s.sendMsg(nil, true, nil)
					return
				}
			}
		}()
	}
	for {
		m, err := s.recv()
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
