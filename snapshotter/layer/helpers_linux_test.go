package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/snapshotter/layer"
)

// epoch is the mtime the test tars give unless told otherwise.
var epoch = time.Unix(1735689600, 0)

// ent is one entry of a test tar.
type ent struct {
	hdr  tar.Header
	body []byte
}

func dirE(name string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: epoch}}
}

func fileE(name string, mode int64, body string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: epoch}, body: []byte(body)}
}

func symlinkE(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch}}
}

func linkE(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: epoch}}
}

func whiteoutE(dir, name string) ent {
	return fileE(filepath.Join(dir, ".wh."+name), 0, "")
}

func opaqueE(dir string) ent {
	return fileE(filepath.Join(dir, ".wh..wh..opq"), 0, "")
}

// with changes an entry's header.
func (e ent) with(f func(*tar.Header)) ent {
	f(&e.hdr)
	return e
}

// tarOf writes the entries, in the order given, as an uncompressed tar.
func tarOf(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if hdr.Format == tar.FormatUnknown {
			hdr.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("tar header %s: %v", hdr.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("tar data %s: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// apply applies b to root and fails the test on an error.
func apply(t testing.TB, root string, b []byte, opts layer.ApplyOptions) layer.Result {
	t.Helper()
	res, err := layer.Apply(context.Background(), root, bytes.NewReader(b), opts)
	if err != nil {
		t.Fatalf("apply to %s: %v", root, err)
	}
	return res
}

// mkdir makes a fresh directory below a test's temporary directory.
func mkdir(t testing.TB, parts ...string) string {
	t.Helper()
	p := filepath.Join(parts...)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// mountOverlay mounts an overlay of lowers (newest first) at a new
// directory, read-only when upper is "", and unmounts it when the test ends,
// also when it fails, unless unmount did so before. It mounts as berth
// does: index, redirect_dir and metacopy off.
func mountOverlay(t testing.TB, upper string, lowers ...string) (target string, unmount func()) {
	t.Helper()
	base := t.TempDir()
	target = mkdir(t, base, "merged")
	opts := "lowerdir=" + strings.Join(lowers, ":") + ",index=off,redirect_dir=off,metacopy=off"
	var flags uintptr
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + mkdir(t, filepath.Dir(upper), "work-"+filepath.Base(upper))
	} else {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount("overlay", target, "overlay", flags, opts); err != nil {
		t.Fatalf("mount overlay %s: %v", opts, err)
	}
	var once sync.Once
	unmount = func() {
		once.Do(func() {
			if err := unix.Unmount(target, 0); err != nil {
				t.Errorf("unmount %s: %v", target, err)
			}
		})
	}
	t.Cleanup(unmount)
	return target, unmount
}

// node is what a container sees of one file.
type node struct {
	Type     string
	Mode     uint32 // permissions, setuid, setgid, sticky
	UID, GID uint32
	Size     int64
	Data     string // a regular file's sha256, a symlink's target
	Rdev     uint64
	Xattrs   string
	Mtime    int64  // ns; not compared for symlinks in an overlay view
	Link     string // for a multiply linked regular file, its first name in the tree
}

func (n node) String() string {
	return fmt.Sprintf("%s %04o %d:%d size=%d data=%.16s rdev=%d:%d xattrs=[%s] mtime=%s link=%q",
		n.Type, n.Mode, n.UID, n.GID, n.Size, n.Data, unix.Major(n.Rdev), unix.Minor(n.Rdev), n.Xattrs,
		time.Unix(0, n.Mtime).UTC().Format(time.RFC3339Nano), n.Link)
}

// readTree reads the tree at root, keyed by path relative to it ("." for
// root itself).
func readTree(t testing.TB, root string) map[string]node {
	t.Helper()
	tree := map[string]node{}
	links := map[[2]uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Nano()}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			n.Type = "dir"
		case unix.S_IFREG:
			n.Type, n.Size = "file", st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			n.Data = hex.EncodeToString(sum[:])
			if st.Nlink > 1 {
				in := [2]uint64{st.Dev, st.Ino}
				if _, ok := links[in]; !ok {
					links[in] = rel
				}
				n.Link = links[in]
			}
		case unix.S_IFLNK:
			n.Type, n.Mode = "symlink", 0
			if n.Data, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFCHR:
			n.Type, n.Rdev = "char", st.Rdev
		case unix.S_IFBLK:
			n.Type, n.Rdev = "block", st.Rdev
		case unix.S_IFIFO:
			n.Type = "fifo"
		default:
			n.Type = "socket"
		}
		n.Xattrs = xattrString(t, p)
		tree[rel] = n
		return nil
	})
	if err != nil {
		t.Fatalf("read tree %s: %v", root, err)
	}
	return tree
}

// xattrString lists the xattrs of p but overlayfs's own.
func xattrString(t testing.TB, p string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if err == unix.ENOTSUP {
			return ""
		}
		t.Fatalf("list xattrs of %s: %v", p, err)
	}
	var out []string
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k == "" || strings.HasPrefix(k, "trusted.overlay.") {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, k, v)
		if err != nil {
			t.Fatalf("get xattr %s of %s: %v", k, p, err)
		}
		out = append(out, k+"="+strconv.Quote(string(v[:m])))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// compareTrees reports how got differs from want. The roots themselves are
// compared only by type: a layer does not carry its root.
func compareTrees(t testing.TB, want, got map[string]node) {
	t.Helper()
	var names []string
	for k := range want {
		names = append(names, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	bad := 0
	for _, k := range names {
		w, wok := want[k]
		g, gok := got[k]
		if k == "." {
			w, g = node{Type: w.Type}, node{Type: g.Type}
		}
		switch {
		case !gok:
			t.Errorf("%s: missing; want %v", k, w)
		case !wok:
			t.Errorf("%s: unexpected %v", k, g)
		case w != g:
			t.Errorf("%s:\n\tgot  %v\n\twant %v", k, g, w)
		default:
			continue
		}
		if bad++; bad > 30 {
			t.Fatal("too many differences")
		}
	}
}

// sandbox is a root to apply to, with a sentinel directory beside it that
// no layer may change, and lower directories for Overlay roots.
type sandbox struct {
	base, root, sentinel, lower string
	before                      map[string]node
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	return newSandboxIn(t, t.TempDir())
}

// newSandboxIn makes the sandbox in base, an empty directory.
func newSandboxIn(t testing.TB, base string) *sandbox {
	t.Helper()
	s := &sandbox{base: base}
	s.root = mkdir(t, s.base, "root")
	s.lower = mkdir(t, s.base, "lower")
	s.sentinel = mkdir(t, s.base, "sentinel")
	mkdir(t, s.sentinel, "dir")
	for name, body := range map[string]string{"secret": "keep me", "dir/file": "keep me too"} {
		if err := os.WriteFile(filepath.Join(s.sentinel, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Unix(1e9, 0)
	for _, p := range []string{"secret", "dir/file", "dir", "."} {
		if err := os.Chtimes(filepath.Join(s.sentinel, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	s.before = readTree(t, s.sentinel)
	return s
}

// check fails the test if anything outside root and lower changed.
func (s *sandbox) check(t testing.TB) {
	t.Helper()
	after := readTree(t, s.sentinel)
	if len(after) != len(s.before) {
		t.Errorf("sentinel changed: %d files, want %d", len(after), len(s.before))
	}
	for k, w := range s.before {
		if g := after[k]; g != w {
			t.Errorf("sentinel %s changed:\n\tgot  %v\n\twant %v", k, g, w)
		}
	}
	names, err := readNames(s.base)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"lower", "root", "sentinel"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("outside the root: %q, want only %q", names, want)
	}
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// lstatT stats p or fails the test.
func lstatT(t testing.TB, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return st
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// pax encodes PAX records as an extended header's data: each is
// "<length> <key>=<value>\n", the length counting its own digits.
func pax(records [][2]string) []byte {
	var b []byte
	for _, r := range records {
		base := len(r[0]) + len(r[1]) + 3
		n := base + 1
		for n != base+len(strconv.Itoa(n)) {
			n = base + len(strconv.Itoa(n))
		}
		b = append(b, strconv.Itoa(n)+" "+r[0]+"="+r[1]+"\n"...)
	}
	return b
}

// rawHeader is a ustar header block with the given name, type and size.
func rawHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", epoch.Unix()))
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad512(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// sparseTar is a tar of one GNU sparse (PAX 1.0) file name of size bytes,
// holding data at each offset given, and nothing (a hole) elsewhere.
func sparseTar(name string, size int64, data map[int64]string) []byte {
	var offs []int64
	for o := range data {
		offs = append(offs, o)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	sparseMap := strconv.Itoa(len(offs)) + "\n"
	var frags []byte
	for _, o := range offs {
		sparseMap += strconv.FormatInt(o, 10) + "\n" + strconv.Itoa(len(data[o])) + "\n"
		frags = append(frags, data[o]...)
	}
	body := append(pad512([]byte(sparseMap)), frags...)
	records := pax([][2]string{
		{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", name}, {"GNU.sparse.realsize", strconv.FormatInt(size, 10)},
	})
	var out []byte
	out = append(out, rawHeader("PaxHeaders/"+name, 'x', int64(len(records)))...)
	out = append(out, pad512(records)...)
	out = append(out, rawHeader("GNUSparseFile.0/"+name, '0', int64(len(body)))...)
	out = append(out, pad512(body)...)
	return append(out, make([]byte, 1024)...)
}

// readAll is io.ReadAll for a test.
func readAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
