//go:build linux

package containerd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/berth-project/berth/integration/internal/ctrd"
	"github.com/berth-project/berth/integration/testenv"
)

const image = ctrd.Image

// shared is the package's containerd, started by the first test that needs it.
var shared ctrd.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "containerd cleanup:", err)
		code = 1
	}
	os.Exit(code)
}

// ctrEnv is one test's view of the shared containerd: its own namespace
// with the test image imported, and the runtime behind a wrapper that logs
// each command line it is run with, which proves containerd ran it and
// shows how.
type ctrEnv struct {
	*ctrd.Client
	t        *testing.T
	runtime  string // the runtime under test
	wrapper  string // given to ctr as --runc-binary; execs runtime
	argvLog  string // one line per wrapper run
	runcRoot string // the shim's --runc-root; it adds the namespace
}

func newCtrEnv(t *testing.T) *ctrEnv {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("containerd"), testenv.Program("ctr"))
	rt := testenv.RuntimeBinary(t)
	d := shared.Get(t, ctrd.Config{})
	tmp := t.TempDir()
	e := &ctrEnv{
		t:        t,
		runtime:  rt,
		wrapper:  filepath.Join(tmp, "bin", filepath.Base(rt)),
		argvLog:  filepath.Join(tmp, "runtime-argv.log"),
		runcRoot: filepath.Join(d.Dir, "runc"),
	}
	if err := os.MkdirAll(filepath.Dir(e.wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> '%s'\nexec '%s' \"$@\"\n", e.argvLog, rt)
	if err := os.WriteFile(e.wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			argv, _ := os.ReadFile(e.argvLog)
			t.Logf("runtime command lines:\n%s", argv)
		}
	})
	e.Client = ctrd.NewClient(t, d, "berth-test-")
	return e
}

// runArgs is "ctr run" with the runtime under test, then flags, the image,
// the container id and its command. Unless flags hold --rm the container is
// removed when the test ends.
func (e *ctrEnv) runArgs(flags []string, id string, cmd ...string) []string {
	if !slices.Contains(flags, "--rm") {
		e.RemoveOnCleanup(id)
	}
	args := []string{"run", "--runc-binary", e.wrapper, "--runc-root", e.runcRoot, "--fifo-dir", e.D.FIFODir()}
	args = append(append(args, flags...), image, id)
	return append(args, cmd...)
}

// execArgs is "ctr task exec" of cmd in container id as process execID.
func (e *ctrEnv) execArgs(execID, id string, cmd ...string) []string {
	return append([]string{"task", "exec", "--fifo-dir", e.D.FIFODir(), "--exec-id", execID, id}, cmd...)
}

// runtimeState is what the runtime under test itself reports for id, from
// the state the shim made it keep: its "state" command's JSON.
type runtimeState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

func (e *ctrEnv) state(id string) (runtimeState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ctrd.CmdTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, e.runtime, "--root", filepath.Join(e.runcRoot, e.NS), "state", id)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return runtimeState{}, fmt.Errorf("%s state %s: %w: %s", e.runtime, id, err, stderr.Bytes())
	}
	var s runtimeState
	if err := json.Unmarshal(out, &s); err != nil {
		return runtimeState{}, fmt.Errorf("%s state %s: %w: %s", e.runtime, id, err, out)
	}
	return s, nil
}

// requireRuntimeRan checks that the shim ran the runtime under test, with
// this namespace's root, with each of cmds for container id.
func (e *ctrEnv) requireRuntimeRan(id string, cmds ...string) {
	e.t.Helper()
	b, _ := os.ReadFile(e.argvLog)
	root := regexp.QuoteMeta(filepath.Join(e.runcRoot, e.NS))
	for _, cmd := range cmds {
		if !regexp.MustCompile(`(?m)^--root ` + root + ` (.* )?` + cmd + ` (.* )?` + regexp.QuoteMeta(id) + `( .*)?$`).Match(b) {
			e.t.Errorf("containerd did not run %s %s for %s; it ran:\n%s", e.runtime, cmd, id, b)
		}
	}
}
