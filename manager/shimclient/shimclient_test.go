//go:build linux

package shimclient

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/testenv"
)

// timeout bounds each test's calls to the shim.
const timeout = time.Minute

// env is one test's manager side: a namespace named after the test, an
// events service on a ttrpc socket in a temporary directory, and a runtime
// root there. Whatever a test leaves (shims, containers, mounts, cgroups,
// sockets) is removed when it ends, pass or fail.
type env struct {
	t      *testing.T
	cfg    Config
	dir    string
	events *recorder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "berth-shimclient-") // short: socket paths must fit sun_path
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, events: &recorder{}}
	e.cfg = Config{
		Binary:        testenv.Binary(t, "containerd-shim-berth-v2"),
		Namespace:     "shimclient-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		Address:       filepath.Join(dir, "berthd.sock"),
		RuntimeBinary: testenv.Binary(t, "berth-runtime"),
		RuntimeRoot:   filepath.Join(dir, "runtime"),
		Debug:         true,
	}
	t.Cleanup(func() {
		testenv.RemoveCgroups(t, e.cfg.Namespace)
		if left, _ := os.ReadDir(filepath.Join(e.cfg.RuntimeRoot, e.cfg.Namespace)); len(left) > 0 {
			t.Errorf("runtime state left in %s: %v", filepath.Join(e.cfg.RuntimeRoot, e.cfg.Namespace), left)
		}
		os.RemoveAll(dir)
	})
	l, err := net.Listen("unix", e.cfg.Address)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	NewEvents(e.events.handle).Register(srv)
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	return e
}

// bundle writes the bundle of container id running args, in the test's
// cgroup parent. When the test ends, the container's shim is killed if it
// still runs, the container deleted by the runtime, its rootfs unmounted
// and the shim's socket removed.
func (e *env) bundle(id string, args ...string) string {
	e.t.Helper()
	b := filepath.Join(e.dir, id)
	if err := testimage.WriteBundle(b, testimage.Options{Args: args}); err != nil {
		e.t.Fatal(err)
	}
	spec := testimage.DefaultSpec(args...)
	spec.Linux.CgroupsPath = "/" + e.cfg.Namespace + "/" + id
	if err := testimage.WriteSpec(b, spec); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if pid := shimPid(b); pid > 0 && running(pid) {
			e.t.Errorf("shim %d of %s still runs; killing it", pid, id)
			unix.Kill(pid, unix.SIGKILL)
			waitUntil(10*time.Second, func() bool { return !running(pid) })
		}
		if e.runtime("state", id) == nil {
			e.t.Errorf("container %s was left behind; deleting it", id)
			if err := e.runtime("delete", "--force", id); err != nil {
				e.t.Errorf("runtime delete --force %s: %v", id, err)
			}
		}
		for unix.Unmount(filepath.Join(b, "rootfs"), unix.MNT_DETACH) == nil {
		}
		if addr, err := os.ReadFile(filepath.Join(b, "address")); err == nil {
			os.Remove(strings.TrimPrefix(string(addr), "unix://"))
		}
	})
	return b
}

// runtime runs the OCI runtime with the shim's state root for the namespace.
func (e *env) runtime(args ...string) error {
	args = append([]string{"--root", filepath.Join(e.cfg.RuntimeRoot, e.cfg.Namespace)}, args...)
	out, err := exec.Command(e.cfg.RuntimeBinary, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// recorder keeps the events the shims forward.
type recorder struct {
	mu     sync.Mutex
	events []event
}

type event struct {
	namespace, topic string
	msg              proto.Message
}

func (r *recorder) handle(_ context.Context, namespace, topic string, msg proto.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{namespace, topic, msg})
}

// of returns container id's events once one of them has topic last.
func (r *recorder) of(t *testing.T, id, last string) []event {
	t.Helper()
	var evs []event
	ok := waitUntil(timeout, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		evs = nil
		for _, ev := range r.events {
			if c, ok := ev.msg.(interface{ GetContainerID() string }); ok && c.GetContainerID() == id {
				evs = append(evs, ev)
			}
		}
		return slices.ContainsFunc(evs, func(ev event) bool { return ev.topic == last })
	})
	if !ok {
		t.Fatalf("no %s event of %s; got %v", last, id, evs)
	}
	return evs
}

// TestLifecycle starts a shim, runs a container that prints and exits 3
// through it, and checks what the manager gets: the exit status from
// Wait and Delete, the output, the events in order with their types and
// namespace, the shim's log. A second connection after the first is closed
// reaches the same shim; Shutdown ends it, after which Connect is NotFound.
func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	const id = "lifecycle"
	bundle := e.bundle(id, "sh", "-c", "echo hi; exit 3")

	s, err := Start(ctx, e.cfg, id, bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err := os.ReadFile(filepath.Join(bundle, "address")); err != nil || string(b) != s.Address {
		t.Errorf("the bundle's address file holds %q (%v), want %q", b, err, s.Address)
	}
	opts, err := e.cfg.RuntimeOptions()
	if err != nil {
		t.Fatal(err)
	}
	stdout := filepath.Join(e.dir, id+".out")
	cr, err := s.Task.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle, Stdout: "file://" + stdout, Options: opts})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.Task.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	wr, err := s.Task.Wait(ctx, &taskapi.WaitRequest{ID: id})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if wr.ExitStatus != 3 {
		t.Errorf("Wait: exit status %d, want 3", wr.ExitStatus)
	}
	evs := e.events.of(t, id, TopicExit)
	var topics []string
	for _, ev := range evs {
		topics = append(topics, ev.topic)
		if ev.namespace != e.cfg.Namespace {
			t.Errorf("%s event in namespace %q, want %q", ev.topic, ev.namespace, e.cfg.Namespace)
		}
	}
	if want := []string{TopicCreate, TopicStart, TopicExit}; !slices.Equal(topics, want) {
		t.Errorf("events %q, want %q", topics, want)
	}
	if c, ok := evs[0].msg.(*eventtypes.TaskCreate); !ok || c.Pid != cr.Pid || c.Bundle != bundle {
		t.Errorf("/tasks/create event %#v, want a TaskCreate of pid %d in %s", evs[0].msg, cr.Pid, bundle)
	}
	if x, ok := evs[len(evs)-1].msg.(*eventtypes.TaskExit); !ok || x.ExitStatus != 3 || x.Pid != cr.Pid {
		t.Errorf("/tasks/exit event %#v, want a TaskExit of pid %d with status 3", evs[len(evs)-1].msg, cr.Pid)
	}
	dr, err := s.Task.Delete(ctx, &taskapi.DeleteRequest{ID: id})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if dr.ExitStatus != 3 {
		t.Errorf("Delete: exit status %d, want 3", dr.ExitStatus)
	}
	e.events.of(t, id, TopicDelete)
	if out, err := os.ReadFile(stdout); err != nil || string(out) != "hi\n" {
		t.Errorf("the container's stdout: %q (%v), want %q", out, err, "hi\n")
	}
	// Debug: the shim logs that it serves, through the bundle's log FIFO.
	logFile := filepath.Join(bundle, LogFile)
	if !waitUntil(10*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "serving")
	}) {
		b, err := os.ReadFile(logFile)
		t.Errorf("the shim's log %s holds %q (%v), want its debug message \"serving\"", logFile, b, err)
	}

	// A manager that restarted: a new connection to the same shim.
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := s.Task.Connect(ctx, &taskapi.ConnectRequest{ID: id}); err == nil {
		t.Error("Connect over a closed Shim succeeded")
	}
	s2, err := Connect(ctx, e.cfg, bundle)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer s2.Close()
	pid := shimPid(bundle)
	if _, err := s2.Task.State(ctx, &taskapi.StateRequest{ID: id}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("State of the deleted task: %v, want NotFound", err)
	}
	// The namespace reaches the shim on the new connection too: it takes
	// a second container.
	const id2 = "lifecycle-2"
	bundle2 := e.bundle(id2, "true")
	if _, err := s2.Task.Create(ctx, &taskapi.CreateTaskRequest{ID: id2, Bundle: bundle2, Options: opts}); err != nil {
		t.Fatalf("Create over the new connection: %v", err)
	}
	if c, err := s2.Task.Connect(ctx, &taskapi.ConnectRequest{ID: id2}); err != nil || int(c.ShimPid) != pid {
		t.Errorf("Task.Connect: %v (%v), want shim pid %d", c, err, pid)
	}
	if _, err := s2.Task.Delete(ctx, &taskapi.DeleteRequest{ID: id2}); err != nil {
		t.Fatalf("Delete %s: %v", id2, err)
	}
	if evs := e.events.of(t, id2, TopicDelete); len(evs) == 0 || evs[0].namespace != e.cfg.Namespace {
		t.Errorf("events of %s: %v", id2, evs)
	}

	if err := s2.Shutdown(ctx, id); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if !waitUntil(10*time.Second, func() bool { return !running(pid) }) {
		t.Errorf("shim %d still runs after Shutdown", pid)
	}
	if err := s2.Shutdown(ctx, id); err != nil {
		t.Errorf("Shutdown of a shim that went: %v", err)
	}
	if _, err := Connect(ctx, e.cfg, bundle); !errdefs.IsNotFound(err) {
		t.Errorf("Connect after Shutdown: %v, want NotFound", err)
	}
}

// TestCleanup kills a shim whose container runs and cleans up after it as
// containerd does: Connect says NotFound, Cleanup reports the container
// killed, and the runtime no longer knows it.
func TestCleanup(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	const id = "cleanup"
	bundle := e.bundle(id, "sleep", "1000")
	s, err := Start(ctx, e.cfg, id, bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opts, err := e.cfg.RuntimeOptions()
	if err != nil {
		t.Fatal(err)
	}
	cr, err := s.Task.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle, Options: opts})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.Task.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	e.events.of(t, id, TopicStart)

	pid := shimPid(bundle)
	if pid <= 0 {
		t.Fatal("no shim.pid in the bundle")
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(10*time.Second, func() bool { return !running(pid) }) {
		t.Fatalf("shim %d survived SIGKILL", pid)
	}
	if _, err := s.Task.State(ctx, &taskapi.StateRequest{ID: id}); err == nil {
		t.Error("State through the killed shim succeeded")
	}
	if _, err := Connect(ctx, e.cfg, bundle); !errdefs.IsNotFound(err) {
		t.Errorf("Connect to the killed shim: %v, want NotFound", err)
	}
	if e.runtime("state", id) != nil {
		t.Fatal("the container went with its shim: nothing to clean up")
	}

	dr, err := Cleanup(ctx, e.cfg, id, bundle)
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if dr.ExitStatus != 128+uint32(unix.SIGKILL) || dr.ExitedAt == nil {
		t.Errorf("Cleanup: exit status %d at %v, want %d and a time", dr.ExitStatus, dr.ExitedAt, 128+unix.SIGKILL)
	}
	if err := e.runtime("state", id); err == nil {
		t.Error("the runtime still knows the container after Cleanup")
	}
	if !waitUntil(10*time.Second, func() bool { return !running(int(cr.Pid)) }) {
		t.Errorf("the container's process %d still runs after Cleanup", cr.Pid)
	}
	// Cleaning up twice is no error: there is nothing left.
	if _, err := Cleanup(ctx, e.cfg, id, bundle); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
	if err := s.Shutdown(ctx, id); err != nil {
		t.Errorf("Shutdown of a killed shim: %v", err)
	}
}

// TestStartErrors: a missing binary is NotFound and named; a failing one
// is named with its stderr.
func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := Config{Binary: filepath.Join(dir, "no-such-shim"), Namespace: "berth", Address: filepath.Join(dir, "berthd.sock")}
	_, err := Start(ctx, cfg, "missing", dir)
	if err == nil || !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), cfg.Binary) {
		t.Errorf("Start with a missing binary: %v, want NotFound naming %s", err, cfg.Binary)
	}
	if _, err := os.Stat(filepath.Join(dir, "log")); err != nil {
		t.Errorf("the log FIFO: %v", err)
	}

	cfg.Binary = filepath.Join(dir, "failing-shim")
	if err := os.WriteFile(cfg.Binary, []byte("#!/bin/sh\necho \"no container for you: $*\" >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Start(ctx, cfg, "failing", dir)
	if err == nil || !strings.Contains(err.Error(), cfg.Binary) || !strings.Contains(err.Error(), "no container for you: -namespace berth") {
		t.Errorf("Start with a failing binary: %v, want an error naming it with its stderr", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, LogFile)); !strings.Contains(string(b), "no container for you") {
		t.Errorf("the shim's log holds %q, want its stderr", b)
	}
	_, err = Cleanup(ctx, cfg, "failing", dir)
	if err == nil || !strings.Contains(err.Error(), "no container for you") || !strings.Contains(err.Error(), "delete") {
		t.Errorf("Cleanup with a failing binary: %v, want an error naming it with its stderr", err)
	}
	if _, err := Start(ctx, Config{}, "x", dir); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Start without a binary: %v, want InvalidArgument", err)
	}
	if _, err := Connect(ctx, cfg, dir); !errdefs.IsNotFound(err) {
		t.Errorf("Connect without an address file: %v, want NotFound", err)
	}
}

// TestParseReply reads each form of bootstrap reply as containerd 1.7 does.
func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		reply, want string
		err         bool
	}{
		{reply: `{"version":2,"address":"unix:///run/s/x","protocol":"ttrpc"}` + "\n", want: "unix:///run/s/x"},
		{reply: "unix:///run/s/y\n", want: "unix:///run/s/y"},
		{reply: `{"version":3,"address":"unix:///run/s/x","protocol":"ttrpc"}`, err: true},
		{reply: `{"version":2,"address":"unix:///run/s/x","protocol":"grpc"}`, err: true},
		{reply: "", err: true},
	} {
		got, err := parseReply([]byte(tc.reply))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseReply(%q) = %q, %v; want %q, error %v", tc.reply, got, err, tc.want, tc.err)
		}
	}
}

// shimPid is the pid the shim recorded in its bundle, 0 if none.
func shimPid(bundle string) int {
	b, _ := os.ReadFile(filepath.Join(bundle, "shim.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// running tells whether pid is a live process: not gone, and not a zombie
// whose threads have all exited. (A killed process's main thread is a
// zombie before its other threads have exited and closed its files.)
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if len(f) == 0 {
		return false
	}
	if f[0] != "Z" && f[0] != "X" {
		return true
	}
	threads, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return len(threads) > 1
}

func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
