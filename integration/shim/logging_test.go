//go:build linux

package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"

	"github.com/berth-project/berth/integration/internal/ctrd"
)

// TestBinaryLogger runs a container whose output goes to a binary://
// logging program, as nerdctl runs every container: the program gets the
// container's identity in its environment, the URI's query as arguments,
// stdout on fd 3 and stderr on fd 4, and signals it is ready by closing
// fd 5. Once the container is deleted its streams close, the program
// ends, and the shim, still serving, collects its exit: no zombie stays.
func TestBinaryLogger(t *testing.T) {
	d := newDirect(t)
	ctx, cancel := context.WithTimeout(context.Background(), ctrd.CmdTimeout)
	defer cancel()
	ctx = ttrpc.WithMetadata(ctx, ttrpc.MD{"containerd-namespace-ttrpc": []string{d.ns}})

	logs := filepath.Join(d.dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	logger := filepath.Join(d.dir, "logger")
	script := fmt.Sprintf(`#!/bin/sh
echo "$$ $CONTAINER_ID $CONTAINER_NAMESPACE $*" > %[1]s/info.tmp
mv %[1]s/info.tmp %[1]s/info
exec 5>&-
cat <&3 > %[1]s/out &
cat <&4 > %[1]s/err
wait
`, logs)
	if err := os.WriteFile(logger, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	const id = "logged"
	bundle := d.bundle(id, "sh", "-c", "echo to stdout; echo to stderr >&2")
	s := d.startShim(containerd17, id, bundle, d.options(""), "")
	task := taskapi.NewTTRPCTaskClient(s.client)
	uri := "binary://" + logger + "?tag=web"
	if _, err := task.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle, Stdout: uri, Stderr: uri, Options: d.options("")}); err != nil {
		t.Fatalf("Create with a binary:// logger: %v", err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			task.Kill(context.WithoutCancel(ctx), &taskapi.KillRequest{ID: id, Signal: 9, All: true})
			task.Wait(context.WithoutCancel(ctx), &taskapi.WaitRequest{ID: id})
			task.Delete(context.WithoutCancel(ctx), &taskapi.DeleteRequest{ID: id})
		}
	})
	// Create returns only after the logger said it is ready.
	info, err := os.ReadFile(filepath.Join(logs, "info"))
	if err != nil {
		t.Fatalf("the logger had not started when Create returned: %v", err)
	}
	f := strings.Fields(string(info))
	if len(f) != 5 || f[1] != id || f[2] != d.ns || f[3] != "tag" || f[4] != "web" {
		t.Errorf("the logger saw pid, CONTAINER_ID, CONTAINER_NAMESPACE and arguments %q, want <pid> %s %s tag web", info, id, d.ns)
	}
	loggerPid, _ := strconv.Atoi(f[0])

	if _, err := task.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if wr, err := task.Wait(ctx, &taskapi.WaitRequest{ID: id}); err != nil || wr.ExitStatus != 0 {
		t.Fatalf("Wait: exit status %d, %v", wr.GetExitStatus(), err)
	}
	if _, err := task.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deleted = true

	// The logger ends once the shim closed the streams, and is reaped.
	start, _ := startTime(loggerPid)
	if !waitUntil(10*time.Second, func() bool { s, _ := startTime(loggerPid); return s != start || s == "" }) {
		_, state := startTime(loggerPid)
		t.Errorf("the logger (pid %d) is still there after the container was deleted, state %s", loggerPid, state)
	}
	for name, want := range map[string]string{"out": "to stdout\n", "err": "to stderr\n"} {
		if got, err := os.ReadFile(filepath.Join(logs, name)); err != nil || string(got) != want {
			t.Errorf("the logger's %s: %q (%v), want %q", name, got, err, want)
		}
	}
	if _, err := task.Connect(ctx, &taskapi.ConnectRequest{ID: id}); err != nil {
		t.Errorf("the shim stopped serving: %v", err)
	}
}
