package runtime_test

import (
	"regexp"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/integration/testenv"
)

// TestConsoleSocket checks the --console-socket protocol: the runtime sends
// the pty master over the caller's unix socket, and the container's shell
// talks through it.
func TestConsoleSocket(t *testing.T) {
	testenv.RequireRoot(t)
	t.Run("create", func(t *testing.T) {
		r := newRuntime(t)
		bundle := newBundle(t, func(s *specs.Spec) { s.Process.Terminal = true }, "sh")
		sock, master := consoleSocket(t)
		id := r.create(bundle, "--console-socket", sock)
		pty := master()
		r.ok("start", id)

		// The arithmetic shows in the output, not in the terminal's echo.
		if _, err := pty.WriteString("busybox tty; echo round-$((6*7))-trip\n"); err != nil {
			t.Fatal(err)
		}
		out := expect(t, pty, "round-42-trip")
		contains(t, "tty in the container", out, "/dev/pts/0")
		if _, err := pty.WriteString("exit\n"); err != nil {
			t.Fatal(err)
		}
		r.waitStatus(id, "stopped")
	})

	t.Run("exec", func(t *testing.T) {
		r := newRuntime(t)
		id := r.detached(newBundle(t, nil, sleeper...))
		sock, master := consoleSocket(t)
		r.ok("exec", "-t", "-d", "--console-socket", sock, id, "sh")
		pty := master()
		if _, err := pty.WriteString("busybox tty; echo exec-$((6*7))-trip\n"); err != nil {
			t.Fatal(err)
		}
		out := expect(t, pty, "exec-42-trip")
		if !regexp.MustCompile(`/dev/pts/\d+`).MatchString(out) {
			t.Errorf("tty in the exec'd shell: want a /dev/pts device in %q", out)
		}
		if _, err := pty.WriteString("exit\n"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("no socket", func(t *testing.T) {
		// A detached terminal needs a console socket to send the master to.
		r := newRuntime(t)
		bundle := newBundle(t, func(s *specs.Spec) { s.Process.Terminal = true }, "sh")
		id := r.newID()
		stderr, _ := r.fails("create", "--bundle", bundle, id)
		contains(t, "create with a terminal and no console socket", stderr, "console socket")
		r.assertNoLeftovers(id, bundle)
	})
}
