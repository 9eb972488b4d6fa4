package containers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	"github.com/containerd/errdefs"
)

// LogsOptions select what Logs sends.
type LogsOptions struct {
	Follow         bool
	Stdout, Stderr bool
	Since, Until   time.Time
	Tail           int64 // < 0: all
}

// Logs sends the container's log entries to send: those held, then with
// Follow new ones until the container stops or ctx ends.
func (s *Service) Logs(ctx context.Context, ref string, o LogsOptions, send func(*containersv1.LogEntry) error) error {
	ctx, cancel := s.untilStopping(ctx)
	defer cancel()
	id, r, err := s.lookup(ref)
	if err != nil {
		return err
	}
	c := s.track(id)
	logCfg, err := parseLogConfig(r.GetConfig().GetLogDriver(), r.GetConfig().GetLogOpts())
	if err != nil {
		return err
	}
	if logCfg.none {
		return fmt.Errorf("configured logging driver does not support reading: the container logs with --log-driver none: %w", errdefs.ErrNotImplemented)
	}
	pass := func(e *containersv1.LogEntry) bool {
		if (e.GetStream() == containersv1.Stream_STREAM_STDERR && !o.Stderr) || (e.GetStream() != containersv1.Stream_STREAM_STDERR && !o.Stdout) {
			return false
		}
		t := e.GetTime().AsTime()
		return (o.Since.IsZero() || !t.Before(o.Since)) && (o.Until.IsZero() || !t.After(o.Until))
	}
	// What the log holds, the rotated files oldest first: all of it, or
	// its last Tail entries.
	var held []*containersv1.LogEntry
	each := func(br *lineReader) error {
		for {
			e, err := readEntry(br)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if e == nil || !pass(e) {
				continue
			}
			if o.Tail >= 0 {
				held = append(held, e)
				if int64(len(held)) > o.Tail {
					held = held[1:]
				}
				continue
			}
			if err := send(e); err != nil {
				return err
			}
		}
	}
	for i := logCfg.maxFile - 1; i >= 1; i-- {
		rf, err := os.Open(rotated(r.GetLogPath(), i))
		if err != nil {
			continue
		}
		err = each(newLineReader(rf))
		rf.Close()
		if err != nil {
			return err
		}
	}
	f, err := os.Open(r.GetLogPath())
	if errors.Is(err, os.ErrNotExist) {
		// Never started: nothing logged yet.
		if !o.Follow {
			return nil
		}
		if f, err = os.OpenFile(r.GetLogPath(), os.O_RDONLY|os.O_CREATE, 0o640); err != nil {
			return fmt.Errorf("open the log: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("open the log: %w", err)
	}
	defer func() { f.Close() }()
	br := newLineReader(f)
	if err := each(br); err != nil {
		return err
	}
	for _, e := range held {
		if err := send(e); err != nil {
			return err
		}
	}
	if !o.Follow {
		return nil
	}
	run, _, exited := c.current()
	if run == nil {
		return nil
	}
	// Following: read what is appended until the container stops (and
	// then what it wrote last).
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	stopping := false
	for {
		e, err := readEntry(br)
		switch {
		case err == io.EOF:
			// Rotated: what the old file got last was read; go on with
			// the new one.
			if st, serr := os.Stat(r.GetLogPath()); serr == nil {
				if cur, cerr := f.Stat(); cerr == nil && !os.SameFile(st, cur) {
					if nf, oerr := os.Open(r.GetLogPath()); oerr == nil {
						f.Close()
						f, br = nf, newLineReader(nf)
						continue
					}
				}
			}
			if stopping {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-exited:
				stopping = true
			case <-tick.C:
			}
			continue
		case err != nil:
			return err
		}
		if e == nil || !pass(e) {
			continue
		}
		if !o.Until.IsZero() && e.GetTime().AsTime().After(o.Until) {
			return nil
		}
		if err := send(e); err != nil {
			return err
		}
	}
}

// lineReader reads a file that grows: a line not yet complete waits
// for the next read.
type lineReader struct {
	f     io.Reader
	buf   []byte
	chunk []byte
}

func newLineReader(f io.Reader) *lineReader {
	return &lineReader{f: f, chunk: make([]byte, 32<<10)}
}

func (lr *lineReader) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(lr.buf, '\n'); i >= 0 {
			line := lr.buf[:i+1]
			lr.buf = lr.buf[i+1:]
			return line, nil
		}
		n, err := lr.f.Read(lr.chunk)
		lr.buf = append(lr.buf, lr.chunk[:n]...)
		if n == 0 && err != nil {
			return nil, err
		}
	}
}

// readEntry reads one entry of a json-file log: io.EOF at the end (a
// line half written stays for the next read), a nil entry for a damaged
// line.
func readEntry(lr *lineReader) (*containersv1.LogEntry, error) {
	line, err := lr.next()
	if err != nil {
		return nil, err
	}
	var l jsonLine
	if json.Unmarshal(line, &l) != nil {
		return nil, nil
	}
	st := containersv1.Stream_STREAM_STDOUT
	if l.Stream == "stderr" {
		st = containersv1.Stream_STREAM_STDERR
	}
	return &containersv1.LogEntry{Stream: st, Time: timestamppb.New(l.Time), Data: []byte(l.Log)}, nil
}
