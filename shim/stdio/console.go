package stdio

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

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

// Receive takes the pty master the runtime sent, made nonblocking: the
// copies to and from it then wait in the netpoller, holding no thread and
// no buffer (see copyStream), where a blocking master would hold both for
// as long as the terminal is idle.
func (c *ConsoleSocket) Receive() (*os.File, error) {
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
	fd := fds[0]
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("console socket: the runtime sent a descriptor that is not a terminal: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	// Nonblocking, os.NewFile registers it with the netpoller.
	return os.NewFile(uintptr(fd), "pty-master"), nil
}

// Close removes the socket.
func (c *ConsoleSocket) Close() error {
	c.l.Close()
	return os.RemoveAll(c.dir)
}

// NewTerminal wires a pty master (from Receive) to cfg's stdin and stdout;
// the Streams own it.
func NewTerminal(ctx context.Context, cfg Config, master *os.File) (_ *Streams, retErr error) {
	s := &Streams{cfg: cfg, pty: master}
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
		go copyStream(s.pty, in)
	}
	if cfg.Stdout != "" {
		w, err := openWriter(ctx, cfg.Stdout, &s.closers)
		if err != nil {
			return nil, err
		}
		s.copies.Add(1)
		go func() {
			defer s.copies.Done()
			copyStream(w, s.pty)
		}()
	}
	return s, nil
}

// Resize sets the terminal's size.
func (s *Streams) Resize(width, height uint32) error {
	if s.pty == nil {
		return fmt.Errorf("the process has no terminal")
	}
	rc, err := s.pty.SyscallConn()
	if err != nil {
		return err
	}
	ws := &unix.Winsize{Row: uint16(height), Col: uint16(width)}
	if cerr := rc.Control(func(fd uintptr) { err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); cerr != nil {
		return cerr
	}
	return err
}
