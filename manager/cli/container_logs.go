package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/filters"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// LogsOptions are the flags of `berth logs`.
type LogsOptions struct {
	Follow     bool
	Timestamps bool
	Since      string
	Until      string
	Tail       string // a number, or "all"
}

// LogsRequest turns the flags into what berthd is asked.
func (o LogsOptions) LogsRequest(id string, now time.Time) (*containersv1.LogsRequest, error) {
	req := &containersv1.LogsRequest{Id: id, Follow: o.Follow, Stdout: true, Stderr: true, Tail: -1}
	switch o.Tail {
	case "", "all":
	default:
		n, err := strconv.ParseInt(o.Tail, 10, 64)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("invalid value for \"tail\": %q", o.Tail)}
		}
		if n >= 0 {
			req.Tail = n
		}
	}
	for _, t := range []struct {
		flag, value string
		to          **timestamppb.Timestamp
	}{{"--since", o.Since, &req.Since}, {"--until", o.Until, &req.Until}} {
		if t.value == "" {
			continue
		}
		ts, err := filters.ParseTime(t.value, now)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("%s: %w", t.flag, err)}
		}
		*t.to = timestamppb.New(ts)
	}
	return req, nil
}

// Logs writes a container's log as `docker logs` does: what it wrote on
// stdout to stdout, on stderr to stderr.
func (cli *CLI) Logs(ctx context.Context, name string, opts LogsOptions) error {
	req, err := opts.LogsRequest(name, time.Now())
	if err != nil {
		return err
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	stream, err := c.Containers().Logs(ctx, req)
	if err != nil {
		return c.Error(err)
	}
	for {
		e, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return c.Error(err)
		}
		if err := cli.writeLogEntry(e, opts.Timestamps); err != nil {
			return err
		}
	}
}

func (cli *CLI) writeLogEntry(e *containersv1.LogEntry, timestamps bool) error {
	w := cli.Out
	if e.GetStream() == containersv1.Stream_STREAM_STDERR {
		w = cli.Err
	}
	if timestamps {
		if _, err := io.WriteString(w, e.GetTime().AsTime().UTC().Format(rfc3339NanoFixed)+" "); err != nil {
			return err
		}
	}
	_, err := w.Write(e.GetData())
	return err
}
