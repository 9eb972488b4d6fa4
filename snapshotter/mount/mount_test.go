package mount

import (
	"fmt"
	"strings"
	"testing"
)

func TestCompactLowerdir(t *testing.T) {
	short := []string{"lowerdir=/a/1/fs:/a/2/fs", "index=off"}
	if _, _, ok := compactLowerdir(short); ok {
		t.Errorf("data that fits was compacted")
	}
	var layers []string
	for i := range 150 {
		layers = append(layers, fmt.Sprintf("/var/lib/berth-snapshotter/snapshots/%d/fs", i+1000))
	}
	data := []string{"workdir=/var/lib/berth-snapshotter/snapshots/9/work", "upperdir=/var/lib/berth-snapshotter/snapshots/9/fs", "lowerdir=" + strings.Join(layers, ":"), "index=off"}
	dir, out, ok := compactLowerdir(data)
	if !ok {
		t.Fatal("data over a page was not compacted")
	}
	if dir != "/var/lib/berth-snapshotter/snapshots" {
		t.Errorf("common dir %q", dir)
	}
	if len(strings.Join(out, ",")) >= pageLimit {
		t.Errorf("compacted data is still %d bytes", len(strings.Join(out, ",")))
	}
	if !strings.HasPrefix(out[2], "lowerdir=1000/fs:1001/fs:") || out[0] != data[0] || out[1] != data[1] || out[3] != "index=off" {
		t.Errorf("compacted options: %q", out)
	}
}

func TestCommonDir(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{"/r/s/1/fs", "/r/s/22/fs"}, "/r/s"},
		{[]string{"/r/s/1/fs", "/r/t/2/fs"}, "/r"},
		{[]string{"/a/fs", "/b/fs"}, "/"},
		{[]string{"/r/s1/fs", "/r/s10/fs"}, "/r"},
	} {
		if got := commonDir(tc.paths); got != tc.want {
			t.Errorf("commonDir(%q) = %q, want %q", tc.paths, got, tc.want)
		}
	}
}
