package cli

import (
	"bytes"
	"testing"
)

func TestDetachFilter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inputs []string
		want   string
		detach bool
	}{
		{"plain", []string{"ls\r"}, "ls\r", false},
		{"the keys", []string{"ab\x10\x11cd"}, "ab", true},
		{"split across reads", []string{"ab\x10", "\x11"}, "ab", true},
		{"ctrl-p alone passes", []string{"a\x10b"}, "a\x10b", false},
		{"ctrl-p twice then ctrl-q", []string{"\x10\x10\x11"}, "\x10", true},
		{"ctrl-q alone passes", []string{"\x11x"}, "\x11x", false},
	} {
		var f detachFilter
		var got []byte
		detached := false
		for _, in := range tc.inputs {
			out, d := f.filter([]byte(in))
			got = append(got, out...)
			if d {
				detached = true
				break
			}
		}
		if !bytes.Equal(got, []byte(tc.want)) || detached != tc.detach {
			t.Errorf("%s: sent %q, detached %t; want %q, %t", tc.name, got, detached, tc.want, tc.detach)
		}
	}
}
