//go:build linux

package ctrd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/testenv"
)

const (
	// Image is the test image every Client imports.
	Image = testimage.DefaultName
	// CmdTimeout bounds one ctr command: a hang fails the test.
	CmdTimeout = 2 * time.Minute
	// WaitTimeout bounds a wait for a state that should come soon.
	WaitTimeout = time.Minute
)

// Client runs ctr against a daemon in a namespace of one test's own.
type Client struct {
	T  testing.TB
	D  *Daemon
	NS string
}

// NewClient gives t a namespace on d, named prefix + t's name, with the
// test image imported. Its cleanup runs after those the test registers
// later (which should remove the test's containers) and checks that they
// left nothing: no shim serving the namespace, no container cgroup. What
// is left fails the test and is killed and removed.
func NewClient(t testing.TB, d *Daemon, prefix string) *Client {
	t.Helper()
	c := &Client{
		T:  t,
		D:  d,
		NS: prefix + strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(t.Name()), "-"), "-"),
	}
	t.Cleanup(func() {
		c.killShims()
		testenv.RemoveCgroups(t, "/"+c.NS)
		if t.Failed() {
			t.Logf("containerd log for namespace %s:\n%s", c.NS, d.LogTail("namespace="+c.NS))
		}
	})

	archive := filepath.Join(t.TempDir(), "image.oci.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.WriteOCIArchive(f, testimage.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	c.Run("image", "import", archive)
	return c
}

// killShims waits a little for the namespace's shims to exit, then fails
// the test for each that is left and kills it.
func (c *Client) killShims() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := c.Shims()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, s := range left {
				c.T.Errorf("shim %d for %s/%s outlived its container; killing it: %q", s.PID, s.Namespace, s.ID, s.Argv)
				unix.Kill(s.PID, unix.SIGKILL)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Shims are the daemon's shims that serve this namespace.
func (c *Client) Shims() []Shim {
	return slices.DeleteFunc(c.D.Shims(), func(s Shim) bool { return s.Namespace != c.NS })
}

// Command is ctr with the daemon's address and the namespace, then args.
func (c *Client) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.D.Sock, "--namespace", c.NS}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Exec runs ctr and returns its combined output and exit code. It fails
// the test when ctr cannot run or times out.
func (c *Client) Exec(args ...string) (string, int) {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CmdTimeout)
	defer cancel()
	out, err := c.Command(ctx, args...).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || ctx.Err() != nil) {
		c.T.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), ExitCode(err)
}

// Output runs ctr like Exec, keeping its stdout and stderr apart.
func (c *Client) Output(args ...string) (stdout, stderr string, code int) {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CmdTimeout)
	defer cancel()
	var outBuf, errBuf bytes.Buffer
	cmd := c.Command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || ctx.Err() != nil) {
		c.T.Fatalf("ctr %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, outBuf.Bytes(), errBuf.Bytes())
	}
	return outBuf.String(), errBuf.String(), ExitCode(err)
}

// Run runs ctr, fails the test unless it exits 0 and returns its output.
func (c *Client) Run(args ...string) string {
	c.T.Helper()
	out, code := c.Exec(args...)
	if code != 0 {
		c.T.Fatalf("ctr %s: exit status %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// ExitCode is the exit code of a finished command: -1 if it did not exit.
func ExitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// RemoveOnCleanup deletes container id, and its task, when the test ends.
func (c *Client) RemoveOnCleanup(id string) {
	c.T.Cleanup(func() {
		c.Exec("task", "delete", "--force", id)
		c.Exec("container", "delete", id)
	})
}

// Task returns the pid and status of task id as "ctr task ls" shows them;
// status is "" when the task is not listed.
func (c *Client) Task(id string) (pid int, status string) {
	c.T.Helper()
	sc := bufio.NewScanner(strings.NewReader(c.Run("task", "ls")))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == id {
			pid, _ = strconv.Atoi(f[1])
			return pid, f[2]
		}
	}
	return 0, ""
}

// WaitStatus waits until "ctr task ls" shows task id in one of statuses
// ("" for not listed) and returns that status.
func (c *Client) WaitStatus(id string, statuses ...string) string {
	c.T.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		_, got := c.Task(id)
		if slices.Contains(statuses, got) {
			return got
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("task %s is %q, not %q, after %v", id, got, statuses, WaitTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
