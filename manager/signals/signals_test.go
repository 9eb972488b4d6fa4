package signals

import (
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"TERM": syscall.SIGTERM, "sigkill": syscall.SIGKILL, "SIGHUP": syscall.SIGHUP, "9": syscall.SIGKILL, "usr1": syscall.SIGUSR1} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "65", "-1", "NOPE", "SIG"} {
		if _, err := Parse(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Parse(%q): %v, want invalid argument", bad, err)
		}
	}
}
