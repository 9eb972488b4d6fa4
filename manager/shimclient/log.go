package shimclient

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/containerd/fifo"
)

// LogFile is where a shim's log goes, in its bundle, when Config.Log is nil.
const LogFile = "shim.log"

// logFIFO is the FIFO in the bundle that the shim writes its log to, if a
// reader has it open when the shim starts serving (containerd reads it).
const logFIFO = "log"

// shimLog is a log writer that can be closed while commands may still be
// writing to it: writes after Close are dropped.
type shimLog struct {
	mu     sync.Mutex
	w      io.Writer
	c      io.Closer // nil for Config.Log, which the caller owns
	closed bool
}

func (l *shimLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	if _, err := l.w.Write(p); err != nil {
		return len(p), nil // a log that fails must not fail the shim's commands
	}
	return len(p), nil
}

func (l *shimLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.c == nil {
		l.closed = true
		return nil
	}
	l.closed = true
	return l.c.Close()
}

// openLog is cfg.Log, or <bundle>/shim.log opened for appending.
func openLog(cfg Config, bundle string) (*shimLog, error) {
	if cfg.Log != nil {
		return &shimLog{w: cfg.Log}, nil
	}
	f, err := os.OpenFile(filepath.Join(bundle, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &shimLog{w: f, c: f}, nil
}

// copyShimLog makes (or reopens) the bundle's log FIFO and copies what
// the shim writes there to l, until the shim exits (EOF) or the returned
// FIFO is closed; then it closes l. The FIFO must be open for reading
// before the shim serves: the shim opens it without blocking, which fails
// when no reader has it open.
func copyShimLog(ctx context.Context, bundle string, l *shimLog) (io.Closer, error) {
	// Not the caller's context: canceled before the shim opens its end,
	// it would close the FIFO.
	f, err := fifo.OpenFifo(context.WithoutCancel(ctx), filepath.Join(bundle, logFIFO), syscall.O_RDONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o700)
	if err != nil {
		return nil, err
	}
	go func() {
		_, _ = io.Copy(l, f)
		f.Close()
		l.Close()
	}()
	return f, nil
}
