package cli

import (
	"testing"
)

func TestSplitCopyArg(t *testing.T) {
	for _, tc := range []struct{ arg, container, path string }{
		{"box:/etc/hosts", "box", "/etc/hosts"},
		{"box:rel", "box", "rel"},
		{"/abs:with:colons", "", "/abs:with:colons"},
		{"./c:x", "", "./c:x"},
		{"file", "", "file"},
		{"-", "", "-"},
	} {
		c, p := splitCopyArg(tc.arg)
		if c != tc.container || p != tc.path {
			t.Errorf("splitCopyArg(%q) = %q, %q; want %q, %q", tc.arg, c, p, tc.container, tc.path)
		}
	}
}

func TestCopyDestination(t *testing.T) {
	for _, tc := range []struct {
		srcBase       string
		srcIsDir      bool
		dst           string
		exists, isDir bool
		into          bool
		rebase        string
		fails         bool
	}{
		{"f", false, "out", true, true, true, "", false},
		{"f", false, "out", false, false, false, "out", false},
		{"f", false, "out/", false, false, false, "", true},
		{"f", false, "x", true, false, false, "x", false},
		{"d", true, "x", true, false, false, "", true},
		{"d", true, "new", false, false, false, "new", false},
		{".", true, "new/", false, false, false, "new", false},
	} {
		into, rebase, err := copyDestination(tc.srcBase, tc.srcIsDir, tc.dst, tc.exists, tc.isDir)
		if (err != nil) != tc.fails || into != tc.into || rebase != tc.rebase {
			t.Errorf("copyDestination(%+v) = %v, %q, %v", tc, into, rebase, err)
		}
	}
}
