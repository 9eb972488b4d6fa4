package filters

import (
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestParse(t *testing.T) {
	a, err := Parse([]string{"dangling=true", " Label = a=b ", "label=c", "reference=busy*"}, "dangling", "label", "reference", "until")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Get("label"); len(got) != 2 || got[0] != "a=b" || got[1] != "c" {
		t.Errorf("label values = %q", got)
	}
	if !a.Has("dangling") || a.Has("until") {
		t.Error("Has")
	}
	if !a.Match("until", "anything") {
		t.Error("a key not given must match")
	}
	if !a.Match("dangling", "true") || a.Match("dangling", "false") {
		t.Error("Match")
	}
	if !a.MatchLabels("label", map[string]string{"a": "b", "c": ""}) {
		t.Error("MatchLabels: all present")
	}
	if a.MatchLabels("label", map[string]string{"a": "x", "c": ""}) {
		t.Error("MatchLabels: a wrong value matched")
	}
	if a.MatchLabels("label", map[string]string{"a": "b"}) {
		t.Error("MatchLabels: a missing label matched")
	}
	if got := a.Keys(); len(got) != 3 || got[0] != "dangling" {
		t.Errorf("Keys = %q", got)
	}

	for _, bad := range []string{"dangling", "=true", "bogus=1"} {
		if _, err := Parse([]string{bad}, "dangling"); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Parse(%q) = %v, want invalid argument", bad, err)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"10m":                       now.Add(-10 * time.Minute),
		"1h30m":                     now.Add(-90 * time.Minute),
		"0":                         now,
		"1700000000":                time.Unix(1700000000, 0),
		"1700000000.5":              time.Unix(1700000000, 500000000),
		"1700000000.000000001":      time.Unix(1700000000, 1),
		"2025-05-01T10:00:00Z":      time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC),
		"2025-05-01T10:00:00+02:00": time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC),
		"2025-05-01":                time.Date(2025, 5, 1, 0, 0, 0, 0, time.Local),
	} {
		got, err := ParseTime(in, now)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", in, err)
			continue
		}
		if !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, want %v", in, got, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "1700000000.", "1.0000000001", "10x"} {
		if _, err := ParseTime(bad, now); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseTime(%q) = %v, want invalid argument", bad, err)
		}
	}
}
