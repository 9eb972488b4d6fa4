package containers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/fifo"
	"github.com/docker/go-units"
	"google.golang.org/protobuf/types/known/timestamppb"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// streams are a process's FIFOs as berthd holds them: it reads stdout and
// stderr into the log (for the init) and to whoever is attached, and
// writes what attached clients type to stdin.
type streams struct {
	paths struct{ stdin, stdout, stderr string }

	stdin io.WriteCloser // nil without stdin
	outs  []io.ReadCloser
	log   *jsonLog // nil for an exec
	sink  func(*containersv1.LogEntry)

	mu        sync.Mutex
	stdinOpen bool

	copies sync.WaitGroup
	done   chan struct{} // closed when every output reached its end
}

// attachment is one client attached to a process's output.
type attachment struct {
	out    chan *containersv1.LogEntry
	stdout bool
	stderr bool
	gone   chan struct{} // closed when dropped for falling behind
	once   sync.Once
}

func (a *attachment) drop() { a.once.Do(func() { close(a.gone) }) }

// fifoPaths names the FIFOs of process name ("init" or an exec ID) in dir.
func fifoPaths(dir, name string, stdin, tty bool) (in, out, errPath string) {
	if stdin {
		in = filepath.Join(dir, name+"-stdin")
	}
	out = filepath.Join(dir, name+"-stdout")
	if !tty {
		errPath = filepath.Join(dir, name+"-stderr")
	}
	return in, out, errPath
}

// openStreams makes (or, after berthd restarted, reopens) the FIFOs and
// starts copying the outputs. The shim opens the other ends.
func openStreams(ctx context.Context, dir, name string, stdin, tty bool, log *jsonLog, sink func(*containersv1.LogEntry)) (_ *streams, retErr error) {
	s := &streams{log: log, sink: sink, done: make(chan struct{})}
	s.paths.stdin, s.paths.stdout, s.paths.stderr = fifoPaths(dir, name, stdin, tty)
	defer func() {
		if retErr != nil {
			s.close()
		}
	}()
	// The opens complete in the background once the shim opens its ends;
	// they must outlive the request that made them.
	bg := context.WithoutCancel(ctx)
	if s.paths.stdin != "" {
		w, err := fifo.OpenFifo(bg, s.paths.stdin, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o600)
		if err != nil {
			return nil, fmt.Errorf("make stdin FIFO: %w", err)
		}
		s.stdin, s.stdinOpen = w, true
	}
	for _, p := range []struct {
		path   string
		stream containersv1.Stream
	}{{s.paths.stdout, containersv1.Stream_STREAM_STDOUT}, {s.paths.stderr, containersv1.Stream_STREAM_STDERR}} {
		if p.path == "" {
			continue
		}
		r, err := fifo.OpenFifo(bg, p.path, syscall.O_RDONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o600)
		if err != nil {
			return nil, fmt.Errorf("make output FIFO: %w", err)
		}
		s.outs = append(s.outs, r)
		s.copies.Add(1)
		go s.copy(r, p.stream)
	}
	go func() {
		s.copies.Wait()
		close(s.done)
	}()
	return s, nil
}

// copy reads one output to its end, line by line as docker's json-file
// log keeps it (a line longer than the buffer is kept in parts).
func (s *streams) copy(r io.Reader, stream containersv1.Stream) {
	defer s.copies.Done()
	br := bufio.NewReaderSize(r, 16<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			e := &containersv1.LogEntry{Stream: stream, Time: timestamppb.Now(), Data: append([]byte(nil), line...)}
			if s.log != nil {
				s.log.write(e)
			}
			s.sink(e)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// attachments are the clients attached to a process's output.
type attachments struct {
	mu  sync.Mutex
	set map[*attachment]struct{}
}

func (as *attachments) broadcast(e *containersv1.LogEntry) {
	as.mu.Lock()
	defer as.mu.Unlock()
	for a := range as.set {
		if (e.Stream == containersv1.Stream_STREAM_STDOUT && !a.stdout) || (e.Stream == containersv1.Stream_STREAM_STDERR && !a.stderr) {
			continue
		}
		select {
		case a.out <- e:
		default:
			// A client that cannot keep up is let go rather than slowing
			// the container or its log.
			delete(as.set, a)
			a.drop()
		}
	}
}

// add attaches a client; detach it with the returned function.
func (as *attachments) add(stdout, stderr bool) (*attachment, func()) {
	a := &attachment{out: make(chan *containersv1.LogEntry, 1024), stdout: stdout, stderr: stderr, gone: make(chan struct{})}
	as.mu.Lock()
	if as.set == nil {
		as.set = map[*attachment]struct{}{}
	}
	as.set[a] = struct{}{}
	as.mu.Unlock()
	return a, func() {
		as.mu.Lock()
		delete(as.set, a)
		as.mu.Unlock()
	}
}

// writeStdin passes what a client typed to the process.
func (s *streams) writeStdin(b []byte) error {
	s.mu.Lock()
	w, open := s.stdin, s.stdinOpen
	s.mu.Unlock()
	if w == nil || !open {
		return nil
	}
	_, err := w.Write(b)
	return err
}

// closeStdin closes the process's stdin: it reads its end.
func (s *streams) closeStdin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stdin != nil && s.stdinOpen {
		s.stdin.Close()
		s.stdinOpen = false
	}
}

// wait waits for the outputs to end, at most d.
func (s *streams) wait(d time.Duration) {
	select {
	case <-s.done:
	case <-time.After(d):
	}
}

// close closes berthd's ends.
func (s *streams) close() {
	s.closeStdin()
	for _, r := range s.outs {
		r.Close()
	}
}

// remove closes and removes the FIFOs.
func (s *streams) remove() {
	s.close()
	for _, p := range []string{s.paths.stdin, s.paths.stdout, s.paths.stderr} {
		if p != "" {
			os.Remove(p)
		}
	}
}

// jsonLog is docker's json-file log: one JSON object per line, with the
// output as a string, its stream and its time. With a max size it rotates
// as docker's does: the full file becomes <log>.1, <log>.1 becomes <log>.2
// and so on up to max-file files in all.
type jsonLog struct {
	mu   sync.Mutex
	path string
	f    *os.File // nil with the none driver
	cfg  logConfig
	size int64
}

type jsonLine struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// logConfig is --log-driver and --log-opt.
type logConfig struct {
	none    bool
	maxSize int64 // bytes; 0 is no limit
	maxFile int   // files in all, the current one included
}

// parseLogConfig reads docker's json-file options (and the none driver).
func parseLogConfig(driver string, opts map[string]string) (logConfig, error) {
	c := logConfig{maxFile: 1}
	switch driver {
	case "", "json-file":
	case "none":
		c.none = true
		if len(opts) > 0 {
			return c, fmt.Errorf("the none log driver takes no --log-opt: %w", errdefs.ErrInvalidArgument)
		}
		return c, nil
	default:
		return c, fmt.Errorf("log driver %q is not supported: berth has json-file and none: %w", driver, errdefs.ErrInvalidArgument)
	}
	for k, v := range opts {
		switch k {
		case "max-size":
			n, err := units.FromHumanSize(v)
			if err != nil || n <= 0 {
				return c, fmt.Errorf("--log-opt max-size=%s: want a size such as 10m: %w", v, errdefs.ErrInvalidArgument)
			}
			c.maxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return c, fmt.Errorf("--log-opt max-file=%s: want a number of at least 1: %w", v, errdefs.ErrInvalidArgument)
			}
			c.maxFile = n
		default:
			return c, fmt.Errorf("unknown log opt %q for the json-file log driver: berth has max-size and max-file: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	if c.maxFile > 1 && c.maxSize == 0 {
		return c, fmt.Errorf("--log-opt max-file=%d needs max-size: %w", c.maxFile, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

func openLog(path string, cfg logConfig) (*jsonLog, error) {
	l := &jsonLog{path: path, cfg: cfg}
	if cfg.none {
		return l, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open the container's log: %w", err)
	}
	if st, err := f.Stat(); err == nil {
		l.size = st.Size()
	}
	l.f = f
	return l, nil
}

func streamName(s containersv1.Stream) string {
	if s == containersv1.Stream_STREAM_STDERR {
		return "stderr"
	}
	return "stdout"
}

func (l *jsonLog) write(e *containersv1.LogEntry) {
	if l.f == nil {
		return
	}
	b, err := json.Marshal(jsonLine{Log: string(e.GetData()), Stream: streamName(e.GetStream()), Time: e.GetTime().AsTime()})
	if err != nil {
		return
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return
	}
	if l.cfg.maxSize > 0 && l.size > 0 && l.size+int64(len(b)) > l.cfg.maxSize {
		l.rotate()
	}
	n, _ := l.f.Write(b)
	l.size += int64(n)
}

// rotate starts a new file; the oldest beyond max-file goes.
func (l *jsonLog) rotate() {
	if l.cfg.maxFile <= 1 {
		if err := l.f.Truncate(0); err == nil {
			_, _ = l.f.Seek(0, 0)
			l.size = 0
		}
		return
	}
	// <log>.N-1 -> <log>.N ... <log>.1 -> <log>.2, then <log> -> <log>.1;
	// the file that was <log>.N is replaced, and so goes.
	for i := l.cfg.maxFile - 1; i >= 2; i-- {
		_ = os.Rename(rotated(l.path, i-1), rotated(l.path, i))
	}
	_ = os.Rename(l.path, rotated(l.path, 1))
	l.f.Close()
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		l.f = nil
		return
	}
	l.f, l.size = f, 0
}

// rotated is the name of the i-th rotated log file (1 the newest).
func rotated(path string, i int) string { return path + "." + strconv.Itoa(i) }

func (l *jsonLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
