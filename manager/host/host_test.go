package host

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///run/berth/berthd.sock": "/run/berth/berthd.sock",
		"unix:///tmp/x/../y.sock":       "/tmp/y.sock",
		"/tmp/b.sock":                   "/tmp/b.sock",
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"tcp://127.0.0.1:2375", "unix://relative.sock", "berthd.sock", "", "fd://"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestResolve(t *testing.T) {
	if got := Resolve("unix:///a", "unix:///b"); got != "unix:///a" {
		t.Errorf("the flag must win: %s", got)
	}
	if got := Resolve("", "unix:///b"); got != "unix:///b" {
		t.Errorf("the environment must come next: %s", got)
	}
	if got := Resolve("", ""); got != "unix:///run/berth/berthd.sock" {
		t.Errorf("default = %s", got)
	}
	if got := ForState("/tmp/s"); got != "unix:///tmp/s/berthd.sock" {
		t.Errorf("ForState = %s", got)
	}
}
