package stdio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func mkfifo(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func pollNow(t *testing.T, fd int) int16 {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if _, err := unix.Poll(fds, 0); err != nil {
		t.Fatal(err)
	}
	return fds[0].Revents
}

// readChunk relies on these kernel semantics of a FIFO opened for reading
// with O_NONBLOCK: reads end (0) before any writer came, yet poll reports
// nothing until a writer came and went; and an anonymous pipe reports
// POLLHUP once its writer is gone.
func TestKernelFIFOSemantics(t *testing.T) {
	path := mkfifo(t, "f")
	r, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(r)
	buf := make([]byte, 8)
	if n, err := unix.Read(r, buf); n != 0 || err != nil {
		t.Fatalf("read before any writer: %d, %v; want 0, nil", n, err)
	}
	if ev := pollNow(t, r); ev != 0 {
		t.Fatalf("poll before any writer: %#x; want 0", ev)
	}
	w, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Read(r, buf); err != unix.EAGAIN {
		t.Fatalf("read with an idle writer: %v; want EAGAIN", err)
	}
	if ev := pollNow(t, r); ev != 0 {
		t.Fatalf("poll with an idle writer: %#x; want 0", ev)
	}
	unix.Write(w, []byte("x"))
	if ev := pollNow(t, r); ev&unix.POLLIN == 0 {
		t.Fatalf("poll with data: %#x; want POLLIN", ev)
	}
	unix.Close(w)
	if ev := pollNow(t, r); ev&unix.POLLHUP == 0 {
		t.Fatalf("poll once the writer left: %#x; want POLLHUP", ev)
	}
	if n, _ := unix.Read(r, buf); n != 1 {
		t.Fatalf("read %d bytes; want 1", n)
	}
	if n, err := unix.Read(r, buf); n != 0 || err != nil {
		t.Fatalf("read at the end: %d, %v; want 0, nil", n, err)
	}

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	if ev := pollNow(t, p[0]); ev != 0 {
		t.Fatalf("poll of a pipe with an idle writer: %#x; want 0", ev)
	}
	unix.Close(p[1])
	if ev := pollNow(t, p[0]); ev&unix.POLLHUP == 0 {
		t.Fatalf("poll of a pipe whose writer left: %#x; want POLLHUP", ev)
	}
}

// readTimeout reads from the process's end of a stream for at most d.
func readTimeout(t *testing.T, f *os.File, d time.Duration) (string, error) {
	t.Helper()
	if err := f.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_, err := io.Copy(&b, f)
	return b.String(), err
}

// Stdin opened before containerd opens its end must neither end nor hold a
// thread in open(2), must deliver what a later writer writes, and must end
// when that writer closes.
func TestStdinWaitsForWriter(t *testing.T) {
	path := mkfifo(t, "stdin")
	s, err := New(context.Background(), Config{Stdin: path}, Logger{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stdin := s.Pipes().Stdin
	if got, err := readTimeout(t, stdin, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("with no writer yet the process read %q, %v; want to wait", got, err)
	}
	if g := syscallGoroutines(); g != "" {
		t.Fatalf("a goroutine is in a system call while stdin waits:\n%s", g)
	}

	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "one ")
	if got, err := readTimeout(t, stdin, 200*time.Millisecond); got != "one " || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the process read %q, %v; want %q and to wait for more", got, err, "one ")
	}
	io.WriteString(w, "two")
	w.Close()
	if got, err := readTimeout(t, stdin, 5*time.Second); got != "two" || err != nil {
		t.Fatalf("the process read %q, %v; want %q and the end", got, err, "two")
	}
}

// A writer that opens and closes without writing ends stdin, even when it
// has come and gone before the copy first looked.
func TestStdinEmptyWriter(t *testing.T) {
	path := mkfifo(t, "stdin")
	s, err := New(context.Background(), Config{Stdin: path}, Logger{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got, err := readTimeout(t, s.Pipes().Stdin, 5*time.Second); got != "" || err != nil {
		t.Fatalf("the process read %q, %v; want the end", got, err)
	}
}

// syscallGoroutines describes the goroutines in a system call whose stacks
// mention this package or fifo (a thread each, such as a blocked open).
func syscallGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[syscall") && (strings.Contains(g, "shim/stdio") || strings.Contains(g, "containerd/fifo")) {
			found = append(found, g)
		}
	}
	return strings.Join(found, "\n\n")
}

// openOutputs opens the stdout and stderr FIFOs for reading as containerd
// does before it creates a process.
func openOutputs(t *testing.T) (stdout, stderr string, outR, errR *os.File) {
	t.Helper()
	stdout, stderr = mkfifo(t, "stdout"), mkfifo(t, "stderr")
	var err error
	if outR, err = os.OpenFile(stdout, os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
		t.Fatal(err)
	}
	if errR, err = os.OpenFile(stderr, os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outR.Close(); errR.Close() })
	return stdout, stderr, outR, errR
}

// Idle copies wait without a buffer or a thread; a copy takes a buffer only
// while it has data, and the process's output reaches containerd whole.
func TestIdleCopiesHoldNoBuffer(t *testing.T) {
	stdout, stderr, outR, _ := openOutputs(t)
	s, err := New(context.Background(), Config{Stdin: mkfifo(t, "stdin"), Stdout: stdout, Stderr: stderr}, Logger{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(100 * time.Millisecond) // let the copies start waiting
	if n := buffersHeld.Load(); n != 0 {
		t.Fatalf("idle copies hold %d buffers; want 0", n)
	}
	if g := syscallGoroutines(); g != "" {
		t.Fatalf("a goroutine is in a system call while the copies are idle:\n%s", g)
	}

	// More than a buffer, written by the process and read by containerd.
	want := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	go func() {
		s.Pipes().Stdout.Write(want)
	}()
	got := make([]byte, len(want))
	if err := outR.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(outR, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("containerd read %d bytes (%v), equal %v; want %d", len(got), err, bytes.Equal(got, want), len(want))
	}
	deadline := time.Now().Add(5 * time.Second)
	for buffersHeld.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := buffersHeld.Load(); n != 0 {
		t.Fatalf("copies hold %d buffers once the output was copied; want 0", n)
	}
}

// Output copying ends once the process closes its ends, after copying what
// it wrote.
func TestOutputEndsWhenProcessCloses(t *testing.T) {
	stdout, stderr, outR, errR := openOutputs(t)
	s, err := New(context.Background(), Config{Stdout: stdout, Stderr: stderr}, Logger{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The process's own copies of its ends.
	p := s.Pipes()
	procOut, err := dup(p.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	procErr, err := dup(p.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	s.Started()
	io.WriteString(procOut, "out")
	io.WriteString(procErr, "err")
	procOut.Close()
	procErr.Close()
	done := make(chan struct{})
	go func() { s.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("output copying did not end when the process closed its ends")
	}
	for _, c := range []struct {
		f    *os.File
		want string
	}{{outR, "out"}, {errR, "err"}} {
		b := make([]byte, 16)
		n, _ := c.f.Read(b)
		if string(b[:n]) != c.want {
			t.Errorf("containerd read %q; want %q", b[:n], c.want)
		}
	}
}

func dup(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// Close ends every copy, including stdin's waiting for a writer and output
// copies whose process still holds its ends.
func TestCloseEndsCopies(t *testing.T) {
	stdout, stderr, _, _ := openOutputs(t)
	before := runtime.NumGoroutine()
	s, err := New(context.Background(), Config{Stdin: mkfifo(t, "stdin"), Stdout: stdout, Stderr: stderr}, Logger{})
	if err != nil {
		t.Fatal(err)
	}
	p := s.Pipes()
	procOut, err := dup(p.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer procOut.Close()
	s.Started()
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the output copies")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines left after Close:\n%s", n-before, buf[:runtime.Stack(buf, true)])
	}
}
