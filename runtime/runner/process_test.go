package runner

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestRlimits(t *testing.T) {
	got, err := Rlimits([]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 20}})
	if err != nil || len(got) != 1 || got[0].Type != unix.RLIMIT_NOFILE || got[0].Soft != 10 || got[0].Hard != 20 {
		t.Fatalf("Rlimits = %+v, %v", got, err)
	}
	if _, err := Rlimits([]specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}}); err == nil {
		t.Error("unknown rlimit accepted")
	}
	if _, err := Rlimits([]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 30, Hard: 20}}); err == nil {
		t.Error("soft above hard accepted")
	}
}

func TestCheckTerminal(t *testing.T) {
	tty := &specs.Process{Terminal: true}
	plain := &specs.Process{}
	for _, tc := range []struct {
		p      *specs.Process
		detach bool
		socket string
		ok     bool
	}{
		{tty, true, "/sock", true},
		{tty, false, "", true},
		{plain, true, "", true},
		{tty, true, "", false},
		{plain, true, "/sock", false},
		{tty, false, "/sock", false},
	} {
		if err := checkTerminal(tc.p, tc.detach, tc.socket); (err == nil) != tc.ok {
			t.Errorf("checkTerminal(terminal=%v, detach=%v, socket=%q) = %v", tc.p.Terminal, tc.detach, tc.socket, err)
		}
	}
}
