//go:build linux

package shim

import (
	"slices"
	"testing"
)

// TestOOM runs a memory hog under a 16 MiB limit: the kernel kills it, the
// shim reports a /tasks/oom event, and the task exits 137 (SIGKILL).
func TestOOM(t *testing.T) {
	e := newEnv(t)
	events := e.watchEvents()
	const id = "oom"
	out, code := e.Exec(e.runArgs([]string{"--rm", "--memory-limit", "16777216"}, id, "sh", "-c", "x=a; while :; do x=$x$x; done")...)
	if code != 137 {
		t.Errorf("memory hog under a 16 MiB limit: ctr run exit status %d, want 137\n%s", code, out)
	}
	events.waitFor(id, "/tasks/oom", topic("/tasks/oom"))
	events.waitFor(id, "/tasks/exit with exit_status 137", func(ev event) bool {
		return ev.Topic == "/tasks/exit" && ev.str("id") == id && ev.num("exit_status") == 137
	})
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	events := e.watchEvents()

	t.Run("run", func(t *testing.T) {
		const id = "events-run"
		e.Run(e.runArgs([]string{"--rm"}, id, "true")...)
		evs := events.waitFor(id, "/tasks/delete", topic("/tasks/delete"))
		want := []string{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}
		if !slices.Equal(topics(evs), want) {
			t.Errorf("ctr run --rm true: task events %q, want %q:\n%s", topics(evs), want, lines(evs))
		}
		for _, ev := range evs {
			switch ev.Topic {
			case "/tasks/start", "/tasks/delete":
				if ev.num("pid") == 0 {
					t.Errorf("%s event without the init's pid: %s", ev.Topic, ev.Line)
				}
			case "/tasks/exit":
				if ev.str("id") != id || ev.num("pid") == 0 || ev.num("exit_status") != 0 || ev.str("exited_at") == "" {
					t.Errorf("/tasks/exit event of init exiting 0: want id %s, its pid, exit_status 0, exited_at: %s", id, ev.Line)
				}
			}
		}
	})

	const id = "events"
	e.Run(e.runArgs([]string{"-d"}, id, "sleep", "1000")...)

	t.Run("exec", func(t *testing.T) {
		if out, code := e.Exec(e.execArgs("x", id, "sh", "-c", "exit 3")...); code != 3 {
			t.Errorf("ctr task exec sh -c 'exit 3': exit status %d\n%s", code, out)
		}
		evs := events.waitFor(id, "/tasks/exit of exec x", func(ev event) bool { return ev.Topic == "/tasks/exit" && ev.str("id") == "x" })
		var execEvs []event
		for _, ev := range evs {
			if ev.str("exec_id") == "x" || ev.str("id") == "x" {
				execEvs = append(execEvs, ev)
			}
		}
		want := []string{"/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"}
		if !slices.Equal(topics(execEvs), want) {
			t.Fatalf("ctr task exec --exec-id x: events %q, want %q:\n%s", topics(execEvs), want, lines(evs))
		}
		started, exit := execEvs[1], execEvs[2]
		if started.num("pid") == 0 || exit.num("pid") != started.num("pid") || exit.num("exit_status") != 3 {
			t.Errorf("exec x exiting 3: want /tasks/exec-started and /tasks/exit with its pid, exit_status 3:\n%s", lines(execEvs))
		}
	})

	t.Run("pause", func(t *testing.T) {
		e.Run("task", "pause", id)
		e.Run("task", "resume", id)
		evs := events.waitFor(id, "/tasks/resumed", topic("/tasks/resumed"))
		if !inOrder(evs, "/tasks/paused", "/tasks/resumed") {
			t.Errorf("ctr task pause, then resume: want /tasks/paused, then /tasks/resumed:\n%s", lines(evs))
		}
	})

	t.Run("kill", func(t *testing.T) {
		e.Run("task", "kill", "--signal", "SIGKILL", id)
		e.WaitStatus(id, "STOPPED")
		e.Run("task", "delete", id)
		evs := events.waitFor(id, "/tasks/delete", topic("/tasks/delete"))
		var exit, del event
		for _, ev := range evs {
			switch {
			case ev.Topic == "/tasks/exit" && ev.str("id") == id:
				exit = ev
			case ev.Topic == "/tasks/delete":
				del = ev
			}
		}
		if exit.num("exit_status") != 137 || del.num("exit_status") != 137 {
			t.Errorf("task killed with SIGKILL: want /tasks/exit and /tasks/delete with exit_status 137:\n%s", lines(evs))
		}
		if !inOrder(evs, "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete") || evs[len(evs)-1].Topic != "/tasks/delete" {
			t.Errorf("task events out of order:\n%s", lines(evs))
		}
	})
}

func topics(evs []event) []string {
	var ts []string
	for _, ev := range evs {
		ts = append(ts, ev.Topic)
	}
	return ts
}
