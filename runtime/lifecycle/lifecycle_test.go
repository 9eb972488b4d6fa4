package lifecycle

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{
		"9": unix.SIGKILL, "KILL": unix.SIGKILL, "sigkill": unix.SIGKILL, "SIGTERM": unix.SIGTERM,
		"hup": unix.SIGHUP, "USR1": unix.SIGUSR1,
	} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "NOPE", "0", "-1", "65", "SIG"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) succeeded, want an error", bad)
		}
	}
}
