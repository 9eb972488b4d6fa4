package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/filters"
	eventsv1 "github.com/berth-project/berth/proto/services/events/v1"
)

// EventsOptions are the flags of `berth events`.
type EventsOptions struct {
	Filters []string
	Since   string // a time as filters.ParseTime reads it
	Until   string
	Format  string
}

// EventMessage is an event as `berth events --format` templates see it:
// docker's events.Message ({{.Type}}, {{.Action}}, {{.Actor.ID}},
// {{.Actor.Attributes}}, {{.TimeNano}}), without its deprecated fields.
type EventMessage struct {
	Type     string
	Action   string
	Actor    EventActor
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

// EventActor is the object of an event.
type EventActor struct {
	ID         string
	Attributes map[string]string
}

// rfc3339NanoFixed is docker's timestamp layout for events: always nine
// digits, so the lines stay aligned.
const rfc3339NanoFixed = "2006-01-02T15:04:05.000000000Z07:00"

// Events streams the daemon's events until Until passes or ctx ends.
func (cli *CLI) Events(ctx context.Context, opts EventsOptions) error {
	req := &eventsv1.SubscribeRequest{Filters: opts.Filters}
	now := time.Now()
	for _, t := range []struct {
		flag, value string
		to          **timestamppb.Timestamp
	}{{"--since", opts.Since, &req.Since}, {"--until", opts.Until, &req.Until}} {
		if t.value == "" {
			continue
		}
		ts, err := filters.ParseTime(t.value, now)
		if err != nil {
			return &UsageError{Command: "berth events", Err: fmt.Errorf("%s: %w", t.flag, err)}
		}
		*t.to = timestamppb.New(ts)
	}
	var write func(*eventsv1.Event) error
	if opts.Format == "" {
		write = func(e *eventsv1.Event) error {
			_, err := io.WriteString(cli.Out, eventLine(e))
			return err
		}
	} else {
		text := opts.Format
		if text == formatJSON {
			text = "{{json .}}"
		}
		t, err := parseTemplate(text)
		if err != nil {
			return &UsageError{Command: "berth events", Err: err}
		}
		write = func(e *eventsv1.Event) error { return executeLine(cli.Out, t, eventMessage(e)) }
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	stream, err := c.Events(ctx, req)
	if err != nil {
		return err
	}
	for {
		e, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := write(e); err != nil {
			return err
		}
	}
}

func eventMessage(e *eventsv1.Event) EventMessage {
	t := e.GetTime().AsTime()
	return EventMessage{
		Type:     e.GetType(),
		Action:   e.GetAction(),
		Actor:    EventActor{ID: e.GetActor().GetId(), Attributes: e.GetActor().GetAttributes()},
		Scope:    "local",
		Time:     t.Unix(),
		TimeNano: t.UnixNano(),
	}
}

// eventLine is docker's default line: the time, type, action, actor and
// its attributes sorted by name.
func eventLine(e *eventsv1.Event) string {
	var b strings.Builder
	b.WriteString(e.GetTime().AsTime().Local().Format(rfc3339NanoFixed))
	fmt.Fprintf(&b, " %s %s %s", e.GetType(), e.GetAction(), e.GetActor().GetId())
	attrs := e.GetActor().GetAttributes()
	if len(attrs) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(attrs)) {
			kv = append(kv, k+"="+attrs[k])
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(kv, ", "))
	}
	b.WriteByte('\n')
	return b.String()
}
