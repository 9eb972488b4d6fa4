package containers

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-project/berth/manager/cparchive"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

func TestCopyTarget(t *testing.T) {
	for _, tc := range []struct {
		srcBase       string
		srcIsDir      bool
		dst           string
		exists, isDir bool
		into          bool
		err           error
	}{
		{"f", false, "/d", true, true, true, nil},   // file into a directory
		{"d", true, "/d", true, true, true, nil},    // directory into a directory
		{".", true, "/d", true, true, true, nil},    // contents into a directory
		{"f", false, "/x", true, false, false, nil}, // file over a file
		{"d", true, "/x", true, false, false, errdefs.ErrInvalidArgument},
		{"f", false, "/new", false, false, false, nil}, // file as a new name
		{"d", true, "/new", false, false, false, nil},  // directory as a new name
		{"f", false, "/new/", false, false, false, errdefs.ErrNotFound},
		{"d", true, "/new/", false, false, false, nil},
		{"", false, "/d", true, true, true, nil}, // a tar stream into a directory
		{"", false, "/x", true, false, false, errdefs.ErrInvalidArgument},
		{"", false, "/new", false, false, false, errdefs.ErrNotFound},
	} {
		into, err := copyTarget(tc.srcBase, tc.srcIsDir, tc.dst, tc.exists, tc.isDir)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("copyTarget(%+v): %v, want %v", tc, err, tc.err)
			}
			continue
		}
		if err != nil || into != tc.into {
			t.Errorf("copyTarget(%+v) = %v, %v; want %v", tc, into, err, tc.into)
		}
	}
}

func TestRebaseName(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"f", "f", "g", "g"},
		{"d/", "d", "e", "e/"},
		{"d/x/y", "d", "e", "e/x/y"},
		{"./d/x", "d", "e", "e/x"},
		{"dx", "d", "e", "dx"},
		{"./", ".", "e", "e/"},
		{".", ".", "e", "e"},
		{"x/y", ".", "e", "e/x/y"},
		{"../x", "d", "e", "../x"}, // left for Apply to refuse
		{"d/x", "d", "", "d/x"},
	} {
		if got := cparchive.RebaseName(tc.name, tc.from, tc.to); got != tc.want {
			t.Errorf("cparchive.RebaseName(%q, %q, %q) = %q, want %q", tc.name, tc.from, tc.to, got, tc.want)
		}
	}
}

// TestResolveDestination: symlinks resolve inside the root, whatever
// they point at.
func TestResolveDestination(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	mustCopy(t, os.MkdirAll(filepath.Join(root, "tmp"), 0o755))
	mustCopy(t, os.Symlink("/", filepath.Join(root, "escape")))
	mustCopy(t, os.Symlink("../../../../..", filepath.Join(root, "up")))
	mustCopy(t, os.Symlink(outside+"/file", filepath.Join(root, "abs")))
	mustCopy(t, os.WriteFile(filepath.Join(root, "tmp", "f"), nil, 0o644))
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	mustCopy(t, err)
	defer unix.Close(rootfd)
	for _, tc := range []struct {
		p, parent, base string
		exists, isDir   bool
	}{
		{"/escape/tmp/x", "tmp", "x", false, false},
		{"/up/tmp/f", "tmp", "f", true, false},
		{"up/tmp", ".", "tmp", true, true},
		{"/", ".", ".", true, true},
		{"/abs", filepath.Join(strings.TrimPrefix(outside, "/")), "file", false, false},
	} {
		d, err := resolveDestination(rootfd, tc.p)
		if tc.p == "/abs" {
			// The link's target is taken inside the root, where its
			// directories do not exist.
			if err == nil {
				unix.Close(d.parent)
				t.Errorf("resolveDestination(%q) found %s outside the root", tc.p, outside)
			}
			continue
		}
		if err != nil {
			t.Errorf("resolveDestination(%q): %v", tc.p, err)
			continue
		}
		got, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(d.parent))
		if want := filepath.Join(root, tc.parent); got != want || d.base != tc.base || d.exists != tc.exists || d.isDir != tc.isDir {
			t.Errorf("resolveDestination(%q) = %s %+v, want %s %q exists=%v dir=%v", tc.p, got, d, want, tc.base, tc.exists, tc.isDir)
		}
		unix.Close(d.parent)
	}
}

// TestWriteTar: a directory's tar has its top entry and all beneath,
// renamed under the top name; a symlink is a link.
func TestWriteTar(t *testing.T) {
	root := t.TempDir()
	mustCopy(t, os.MkdirAll(filepath.Join(root, "d", "sub"), 0o750))
	mustCopy(t, os.WriteFile(filepath.Join(root, "d", "sub", "f"), []byte("data"), 0o600))
	mustCopy(t, os.Symlink("/etc/passwd", filepath.Join(root, "d", "l")))
	for _, tc := range []struct {
		top  string
		want string
	}{
		{"d", "d/ d/l d/sub/ d/sub/f "},
		{".", "./ l sub/ sub/f "},
	} {
		fd, err := unix.Open(filepath.Join(root, "d"), unix.O_PATH|unix.O_DIRECTORY, 0)
		mustCopy(t, err)
		var st unix.Stat_t
		mustCopy(t, unix.Fstat(fd, &st))
		var buf bytes.Buffer
		mustCopy(t, writeTar(context.Background(), &buf, fd, &st, tc.top, ""))
		unix.Close(fd)
		var names strings.Builder
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			mustCopy(t, err)
			names.WriteString(h.Name + " ")
			if h.Name == "d/sub/f" || h.Name == "sub/f" {
				if b, _ := io.ReadAll(tr); string(b) != "data" || h.Mode != 0o600 {
					t.Errorf("%s: %q mode %o", h.Name, b, h.Mode)
				}
			}
			if strings.HasSuffix(h.Name, "l") && (h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/passwd") {
				t.Errorf("%s: type %c link %q", h.Name, h.Typeflag, h.Linkname)
			}
		}
		if names.String() != tc.want {
			t.Errorf("writeTar(top %q): %q, want %q", tc.top, names.String(), tc.want)
		}
	}
}

func TestRewriteTar(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "src/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 1000, Gid: 1000},
		{Name: "src/f", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1000, Gid: 1000},
		{Name: "src/h", Typeflag: tar.TypeLink, Linkname: "src/f"},
	} {
		mustCopy(t, tw.WriteHeader(h))
	}
	mustCopy(t, tw.Close())
	r := cparchive.RewriteTar(bytes.NewReader(buf.Bytes()), "src", "dst", 0, 0)
	defer r.Close()
	tr := tar.NewReader(r)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		mustCopy(t, err)
		got = append(got, h.Name+">"+h.Linkname+":"+strconv.Itoa(h.Uid))
	}
	if s := strings.Join(got, " "); s != "dst/>:0 dst/f>:0 dst/h>dst/f:0" {
		t.Errorf("rewritten: %s", s)
	}

	buf.Reset()
	tw = tar.NewWriter(&buf)
	mustCopy(t, tw.WriteHeader(&tar.Header{Name: "d/.wh.x", Typeflag: tar.TypeReg}))
	mustCopy(t, tw.Close())
	r = cparchive.RewriteTar(bytes.NewReader(buf.Bytes()), "", "", -1, -1)
	defer r.Close()
	if _, err := io.ReadAll(r); err == nil || !strings.Contains(err.Error(), "whiteout") {
		t.Errorf("a .wh. entry: %v", err)
	}
}

func TestPathStat(t *testing.T) {
	st := unix.Stat_t{Mode: unix.S_IFDIR | 0o1755, Size: 4096}
	if ps := pathStat("d", &st); ps.Mode != fs.ModeDir|fs.ModeSticky|0o755 || !ps.Mode.IsDir() {
		t.Errorf("pathStat of a sticky directory: %v", ps.Mode)
	}
	st = unix.Stat_t{Mode: unix.S_IFLNK | 0o777}
	if ps := pathStat("l", &st); ps.Mode&fs.ModeSymlink == 0 {
		t.Errorf("pathStat of a symlink: %v", ps.Mode)
	}
}

func mustCopy(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
