// Package stdio connects a container process's standard streams to what
// containerd asked for: FIFOs (the usual case), a file:// log, a binary://
// logging program, or nothing. Without a terminal the process writes into
// pipes that the shim copies out, so that a reader going away (containerd
// restarting) never hands the process a SIGPIPE. With a terminal the shim
// receives the pty master through a console socket and copies to and from it.
package stdio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/fifo"
	"golang.org/x/sys/unix"
)

// Config names the streams as containerd passes them.
type Config struct {
	Stdin, Stdout, Stderr string
	Terminal              bool
}

// Pipes are the process's side of the streams (nil when unused): the files
// to hand to the runtime command as its stdin, stdout and stderr.
type Pipes struct {
	Stdin, Stdout, Stderr *os.File
}

// Streams copies between a process and its destinations.
type Streams struct {
	cfg       Config
	pipes     Pipes // the process's ends, closed in the shim once it started
	stdinW    io.WriteCloser
	closers   []io.Closer
	copies    sync.WaitGroup
	pty       *os.File // a terminal's master (nonblocking)
	stdinOnce sync.Once
}

// New prepares non-terminal streams: pipes for the process, copied to and
// from cfg's destinations. logger describes the process for a binary://
// logger (its CONTAINER_ID and CONTAINER_NAMESPACE).
func New(ctx context.Context, cfg Config, logger Logger) (_ *Streams, retErr error) {
	s := &Streams{cfg: cfg}
	defer func() {
		if retErr != nil {
			s.Close()
		}
	}()
	if cfg.Stdin != "" {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		s.pipes.Stdin, s.stdinW = r, w
		in, err := openReader(cfg.Stdin)
		if err != nil {
			return nil, fmt.Errorf("open stdin %s: %w", cfg.Stdin, err)
		}
		s.closers = append(s.closers, in)
		go func() {
			copyStream(w, in)
			s.CloseStdin()
		}()
	}
	outW, errW, err := s.destinations(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	for _, d := range []struct {
		dst  io.Writer
		pipe **os.File
	}{{outW, &s.pipes.Stdout}, {errW, &s.pipes.Stderr}} {
		if d.dst == nil {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		*d.pipe = w
		s.closers = append(s.closers, r)
		s.copies.Add(1)
		go func(dst io.Writer) {
			defer s.copies.Done()
			copyStream(dst, r)
		}(d.dst)
	}
	return s, nil
}

// buffers are the copy buffers, shared by all streams: an exec's streams
// give theirs back when it ends, so that a stream of short execs does not
// allocate 32 KB per stream each (the garbage that, before anything else,
// would grow the heap to the size that starts the garbage collector).
var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// buffersHeld counts the buffers taken and not given back (for tests).
var buffersHeld atomic.Int32

func getBuffer() *[]byte {
	buffersHeld.Add(1)
	return buffers.Get().(*[]byte)
}

func putBuffer(b *[]byte) {
	buffersHeld.Add(-1)
	buffers.Put(b)
}

// copyStream copies src to dst until src ends. A pipe or FIFO source is
// waited on in the netpoller with no buffer and no thread, so that an idle
// process's streams cost only their goroutines; a buffer is taken from the
// pool only while there is data to copy.
func copyStream(dst io.Writer, src io.Reader) {
	if rc := pollable(src); rc != nil {
		copyPolled(dst, rc)
		return
	}
	buf := getBuffer()
	defer putBuffer(buf)
	// Hide *os.File's ReadFrom and WriteTo: for pipes and FIFOs they fall
	// back to io.Copy, which allocates a buffer of its own.
	_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *buf)
}

// pollable returns src's raw connection if src is a pipe, FIFO or terminal
// in Go's netpoller (os.Pipe, os.OpenFile of a FIFO, a nonblocking pty
// master: Go registers nonblocking files), or nil.
func pollable(src io.Reader) syscall.RawConn {
	f, ok := src.(*os.File)
	if !ok {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	ok = false
	_ = rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		ok = err == nil && fl&unix.O_NONBLOCK != 0 && unix.Fstat(int(fd), &st) == nil &&
			(st.Mode&unix.S_IFMT == unix.S_IFIFO || st.Mode&unix.S_IFMT == unix.S_IFCHR)
	})
	if !ok {
		return nil
	}
	return rc
}

// copyPolled copies from a nonblocking pipe, FIFO or terminal until it ends, it fails,
// writing fails or the file is closed (which wakes a waiting copy).
func copyPolled(dst io.Writer, rc syscall.RawConn) {
	for {
		var buf *[]byte
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			buf, n, rerr = readChunk(int(fd))
			return rerr != unix.EAGAIN
		})
		if err != nil || rerr != nil || n == 0 {
			if buf != nil {
				putBuffer(buf)
			}
			return
		}
		err = writeAll(dst, (*buf)[:n])
		putBuffer(buf)
		if err != nil {
			return
		}
	}
}

// readChunk reads what a nonblocking pipe or FIFO holds, into a pool buffer
// (nil at the end). It returns EAGAIN when there is nothing to read yet:
// it reads a byte into a probe first so that waiting takes no buffer.
//
// A FIFO opened for reading with O_NONBLOCK reads as ended (0) while no
// writer has opened it yet, but poll reports POLLHUP only once a writer has
// come and gone (the kernel's pipe_poll compares the writers seen at open,
// f_pipe, with w_counter); an anonymous pipe reports POLLHUP as soon as its
// writers are gone. So a read of 0 is the end only with POLLHUP.
func readChunk(fd int) (*[]byte, int, error) {
	var probe [1]byte
	for {
		n, err := unix.Read(fd, probe[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if n > 0 {
			break
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, 0); err == unix.EINTR {
			continue
		} else if err != nil {
			return nil, 0, err
		}
		switch ev := fds[0].Revents; {
		case ev&unix.POLLIN != 0: // a writer came and wrote since the read
			continue
		case ev&(unix.POLLHUP|unix.POLLERR) != 0:
			return nil, 0, nil
		}
		return nil, 0, unix.EAGAIN // no writer yet
	}
	buf := getBuffer()
	(*buf)[0] = probe[0]
	n := 1
	for n < len(*buf) {
		m, err := unix.Read(fd, (*buf)[n:])
		if err == unix.EINTR {
			continue
		}
		if m > 0 {
			n += m
		}
		// Anything else (EAGAIN, the end, an error) shows on the next read.
		break
	}
	return buf, n, nil
}

// writeAll writes p whole: a Write that stops short without an error would
// otherwise drop the rest.
func writeAll(dst io.Writer, p []byte) error {
	for len(p) > 0 {
		n, err := dst.Write(p)
		if err != nil {
			return err
		}
		if n <= 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}

// Logger identifies a process to a binary:// logging program.
type Logger struct {
	ID, Namespace string
	// Reap, if set, is given the logging program's pid and a time before
	// it started, so that whoever reaps the shim's children collects its
	// exit when it ends.
	Reap func(pid int, since time.Time)
}

// destinations opens where stdout and stderr go.
func (s *Streams) destinations(ctx context.Context, cfg Config, logger Logger) (stdout, stderr io.Writer, err error) {
	u, err := url.Parse(cfg.Stdout)
	if err != nil {
		return nil, nil, fmt.Errorf("stdout %q: %w", cfg.Stdout, err)
	}
	switch u.Scheme {
	case "file":
		f, err := os.OpenFile(u.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("open log %s: %w", u.Path, err)
		}
		s.closers = append(s.closers, f)
		return f, f, nil
	case "binary":
		return s.startLogger(ctx, u, logger)
	}
	if cfg.Stdout != "" {
		w, err := openWriter(ctx, cfg.Stdout, &s.closers)
		if err != nil {
			return nil, nil, err
		}
		stdout = w
	}
	if cfg.Stderr != "" && !cfg.Terminal {
		w, err := openWriter(ctx, cfg.Stderr, &s.closers)
		if err != nil {
			return nil, nil, err
		}
		stderr = w
	}
	return stdout, stderr, nil
}

// openWriter opens a FIFO for writing, and also for reading: the extra
// reader keeps writes from failing while containerd's end is closed (for
// example while containerd restarts). The reader is opened directly, not
// through fifo, whose background open would cost goroutines and a handle.
func openWriter(ctx context.Context, path string, closers *[]io.Closer) (io.Writer, error) {
	w, err := fifo.OpenFifo(ctx, path, syscall.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	*closers = append(*closers, w)
	r, err := openReader(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	*closers = append(*closers, r)
	return w, nil
}

// openReader opens a FIFO for reading without waiting for a writer: with
// O_NONBLOCK the open returns at once, where a blocking open(2) would hold
// a thread until containerd opens the other end, which it may never do.
// copyStream waits for a writer in the netpoller (see readChunk).
func openReader(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// startLogger runs a binary:// logging program: it gets the process's
// stdout on fd 3, stderr on fd 4, and closes fd 5 once it is ready.
func (s *Streams) startLogger(ctx context.Context, u *url.URL, logger Logger) (io.Writer, io.Writer, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	var args []string
	for k, vs := range u.Query() {
		args = append(args, k)
		if len(vs) > 0 && vs[0] != "" {
			args = append(args, vs[0])
		}
	}
	cmd := exec.Command(u.Path, args...)
	cmd.Env = append(os.Environ(), "CONTAINER_ID="+logger.ID, "CONTAINER_NAMESPACE="+logger.Namespace)
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	started := time.Now()
	err = cmd.Start()
	outR.Close()
	errR.Close()
	readyW.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("start logging binary %s: %w", u.Path, err)
	}
	// Not Wait: the shim's reaper reaps all its children, and a Wait would
	// race it and hold a thread for the logger's whole life.
	if logger.Reap != nil {
		logger.Reap(cmd.Process.Pid, started)
	}
	_ = cmd.Process.Release()
	s.closers = append(s.closers, outW, errW)
	// Wait for the logger to say it is ready (it closes its end of fd 5).
	var b [1]byte
	_, _ = readyR.Read(b[:])
	readyR.Close()
	return outW, errW, nil
}

// Pipes returns the process's ends of the streams.
func (s *Streams) Pipes() Pipes { return s.pipes }

// Started closes the shim's copies of the process's ends: the process has
// its own now, and output copying must end when the process closes them.
func (s *Streams) Started() {
	for _, f := range []*os.File{s.pipes.Stdin, s.pipes.Stdout, s.pipes.Stderr} {
		if f != nil {
			f.Close()
		}
	}
	s.pipes = Pipes{}
}

// CloseStdin closes the process's standard input.
func (s *Streams) CloseStdin() {
	s.stdinOnce.Do(func() {
		if s.stdinW != nil {
			s.stdinW.Close()
		}
		if s.pty != nil {
			// A terminal has no separate input to close: send EOF (^D).
			_, _ = s.pty.Write([]byte{4})
		}
	})
}

// Wait waits until the process's output has been copied out.
func (s *Streams) Wait() { s.copies.Wait() }

// Close releases everything.
func (s *Streams) Close() error {
	s.Started()
	s.CloseStdin()
	var errs []error
	for _, c := range s.closers {
		if err := c.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	if s.pty != nil {
		s.pty.Close()
	}
	return errors.Join(errs...)
}
