//go:build linux

package shim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/berth-project/berth/integration/internal/ctrd"
)

// event is one line of "ctr events".
type event struct {
	NS, Topic string
	Fields    map[string]any
	Line      string
}

// str is a string field of the event, "" if absent.
func (ev event) str(name string) string { s, _ := ev.Fields[name].(string); return s }

// num is a numeric field of the event, 0 if absent (protobuf's zero).
func (ev event) num(name string) int { f, _ := ev.Fields[name].(float64); return int(f) }

// eventLog is "ctr events" running against the daemon.
type eventLog struct {
	e  *env
	bg *bg
}

var eventLine = regexp.MustCompile(`^.*? (\S+) (/[a-z0-9/_-]+)(?: (.*))?$`)

// watchEvents starts "ctr events" and returns once it is subscribed: once
// it shows a label that it set on the namespace after it started.
func (e *env) watchEvents() *eventLog {
	e.t.Helper()
	l := &eventLog{e: e, bg: startBg(e.t, exec.Command("ctr", "--address", e.D.Sock, "events"))}
	deadline := time.Now().Add(ctrd.WaitTimeout)
	for i := 0; ; i++ {
		token := fmt.Sprintf("probe-%d", i)
		e.Run("namespaces", "label", e.NS, "berth-events="+token)
		for range 20 {
			for _, ev := range l.all() {
				if ev.Topic == "/namespaces/update" && strings.Contains(ev.Line, token) {
					return l
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("ctr events showed no event within %v:\n%s", ctrd.WaitTimeout, l.bg.out)
		}
	}
}

func (l *eventLog) all() []event {
	var evs []event
	sc := bufio.NewScanner(strings.NewReader(l.bg.out.String()))
	for sc.Scan() {
		m := eventLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ev := event{NS: m[1], Topic: m[2], Line: sc.Text()}
		json.Unmarshal([]byte(m[3]), &ev.Fields)
		evs = append(evs, ev)
	}
	return evs
}

// task returns the /tasks/ events of container id in the test's namespace.
func (l *eventLog) task(id string) []event {
	var evs []event
	for _, ev := range l.all() {
		if ev.NS == l.e.NS && strings.HasPrefix(ev.Topic, "/tasks/") && ev.str("container_id") == id {
			evs = append(evs, ev)
		}
	}
	return evs
}

// waitFor waits until an event of container id satisfies ok and returns
// the container's events up to then.
func (l *eventLog) waitFor(id, what string, ok func(event) bool) []event {
	l.e.t.Helper()
	deadline := time.Now().Add(ctrd.WaitTimeout)
	for {
		evs := l.task(id)
		for _, ev := range evs {
			if ok(ev) {
				return evs
			}
		}
		if time.Now().After(deadline) {
			l.e.t.Fatalf("no %s event for %s within %v; its events:\n%s", what, id, ctrd.WaitTimeout, lines(evs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func topic(name string) func(event) bool { return func(ev event) bool { return ev.Topic == name } }

func lines(evs []event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.Line + "\n")
	}
	return b.String()
}

// inOrder tells whether want occur in evs's topics in this order
// (other events may come between).
func inOrder(evs []event, want ...string) bool {
	i := 0
	for _, ev := range evs {
		if i < len(want) && ev.Topic == want[i] {
			i++
		}
	}
	return i == len(want)
}
