package stdio

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// ConsoleSocket receives a pty master from the runtime (runc's
// --console-socket protocol: one fd in an SCM_RIGHTS message).
type ConsoleSocket struct {
	dir string
	l   *net.UnixListener
}

// NewConsoleSocket listens on a socket in a fresh directory under parent.
func NewConsoleSocket(parent string) (*ConsoleSocket, error) {
	dir, err := os.MkdirTemp(parent, "pty")
	if err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &ConsoleSocket{dir: dir, l: l}, nil
}

// Path is what the runtime gets as --console-socket.
func (c *ConsoleSocket) Path() string { return filepath.Join(c.dir, "s") }

// Receive takes the pty master the runtime sent.
func (c *ConsoleSocket) Receive() (console.Console, error) {
	conn, err := c.l.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("accept console socket: %w", err)
	}
	defer conn.Close()
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("read console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("console socket: expected one control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("console socket: expected one fd: %v", err)
	}
	return console.ConsoleFromFile(os.NewFile(uintptr(fds[0]), "pty-master"))
}

// Close removes the socket.
func (c *ConsoleSocket) Close() error {
	c.l.Close()
	return os.RemoveAll(c.dir)
}

// NewTerminal wires a pty master to cfg's stdin and stdout.
func NewTerminal(ctx context.Context, cfg Config, master console.Console) (_ *Streams, retErr error) {
	s := &Streams{cfg: cfg, console: master}
	defer func() {
		if retErr != nil {
			s.Close()
		}
	}()
	if cfg.Stdin != "" {
		in, err := openReader(cfg.Stdin)
		if err != nil {
			return nil, fmt.Errorf("open stdin %s: %w", cfg.Stdin, err)
		}
		s.closers = append(s.closers, in)
		go copyStream(master, in)
	}
	if cfg.Stdout != "" {
		w, err := openWriter(ctx, cfg.Stdout, &s.closers)
		if err != nil {
			return nil, err
		}
		s.copies.Add(1)
		go func() {
			defer s.copies.Done()
			copyStream(w, master)
		}()
	}
	return s, nil
}

// Resize sets the terminal's size.
func (s *Streams) Resize(width, height uint32) error {
	if s.console == nil {
		return fmt.Errorf("the process has no terminal")
	}
	return s.console.Resize(console.WinSize{Width: uint16(width), Height: uint16(height)})
}
