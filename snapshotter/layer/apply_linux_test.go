package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/snapshotter/layer"
)

var formats = []layer.Format{layer.Plain, layer.Overlay}

// capNetRaw is a security.capability value (VFS_CAP_REVISION_2, effective)
// granting CAP_NET_RAW, as ping carries it.
func capNetRaw() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<unix.CAP_NET_RAW)
	return b
}

func TestApplyEntries(t *testing.T) {
	testenv.RequireRoot(t)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC)
	atime := time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)
	dirTime := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	b := tarOf(t,
		dirE("d", 0o755).with(func(h *tar.Header) { h.ModTime = dirTime }),
		dirE("d/private", 0o700).with(func(h *tar.Header) { h.Uid, h.Gid = 1000, 1001 }),
		fileE("d/f", 0o640, "hello").with(func(h *tar.Header) {
			h.Uid, h.Gid, h.ModTime, h.AccessTime = 1000, 1001, mtime, atime
			h.PAXRecords = map[string]string{
				"SCHILY.xattr.user.comment":           "a note",
				"SCHILY.xattr.trusted.berth":          "1",
				"SCHILY.xattr.trusted.overlay.opaque": "y", // overlayfs's own: never from a tar
			}
		}),
		fileE("d/ping", 0o4755, "ping").with(func(h *tar.Header) {
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": string(capNetRaw())}
		}),
		fileE("d/sgid", 0o2755, "sgid").with(func(h *tar.Header) { h.Uid, h.Gid = 1000, 50 }),
		dirE("tmp", 0o1777),
		symlinkE("d/link", "f").with(func(h *tar.Header) { h.Uid, h.Gid = 1000, 1001 }),
		symlinkE("d/dangling", "/nowhere/at/all"),
		linkE("d/hardlink", "d/f"),
		dirE("dev", 0o755),
		ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: epoch}},
		ent{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop9", Mode: 0o660, Gid: 6, Devmajor: 7, Devminor: 9, ModTime: epoch}},
		ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "dev/fifo", Mode: 0o620, ModTime: epoch}},
		fileE("./dot/slash", 0o644, "leading ./ is fine"),
		fileE("empty", 0o600, ""),
		// A setgid directory gives new files its group: the file owned by
		// 0:0 needs a chown that the other does not.
		dirE("sg", 0o2775).with(func(h *tar.Header) { h.Gid = 50 }),
		fileE("sg/root", 0o666, "group 0, mode beyond the umask"),
		fileE("sg/inherit", 0o644, "group 50").with(func(h *tar.Header) { h.Gid = 50 }),
	)
	for _, format := range formats {
		t.Run(format.String(), func(t *testing.T) {
			root := t.TempDir()
			apply(t, root, b, layer.ApplyOptions{Format: format})

			st := lstatT(t, filepath.Join(root, "d/f"))
			if st.Mode&0o7777 != 0o640 || st.Uid != 1000 || st.Gid != 1001 || st.Nlink != 2 {
				t.Errorf("d/f: mode %o owner %d:%d nlink %d; want 640 1000:1001 2", st.Mode&0o7777, st.Uid, st.Gid, st.Nlink)
			}
			if got := time.Unix(st.Mtim.Sec, st.Mtim.Nsec); !got.Equal(mtime) {
				t.Errorf("d/f mtime %v, want %v", got, mtime)
			}
			if got := time.Unix(st.Atim.Sec, st.Atim.Nsec); !got.Equal(atime) {
				t.Errorf("d/f atime %v, want %v", got, atime)
			}
			if x := xattrString(t, filepath.Join(root, "d/f")); x != `trusted.berth="1",user.comment="a note"` {
				t.Errorf("d/f xattrs %s", x)
			}
			if hl := lstatT(t, filepath.Join(root, "d/hardlink")); hl.Ino != st.Ino {
				t.Error("d/hardlink is not a link of d/f")
			}
			if st := lstatT(t, filepath.Join(root, "d/ping")); st.Mode&0o7777 != 0o4755 {
				t.Errorf("d/ping mode %o, want 4755", st.Mode&0o7777)
			}
			if x := xattrString(t, filepath.Join(root, "d/ping")); x != `security.capability=`+strconvQuote(capNetRaw()) {
				t.Errorf("d/ping xattrs %s: want the capability, set after the chown that would clear it", x)
			}
			if st := lstatT(t, filepath.Join(root, "d/sgid")); st.Mode&0o7777 != 0o2755 || st.Uid != 1000 || st.Gid != 50 {
				t.Errorf("d/sgid mode %o owner %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
			}
			if st := lstatT(t, filepath.Join(root, "tmp")); st.Mode&0o7777 != 0o1777 {
				t.Errorf("tmp mode %o, want 1777", st.Mode&0o7777)
			}
			if st := lstatT(t, filepath.Join(root, "d/private")); st.Mode&0o7777 != 0o700 || st.Uid != 1000 {
				t.Errorf("d/private mode %o uid %d", st.Mode&0o7777, st.Uid)
			}
			if st := lstatT(t, filepath.Join(root, "d")); !time.Unix(st.Mtim.Sec, st.Mtim.Nsec).Equal(dirTime) {
				t.Errorf("d mtime %v, want %v (set after its contents)", st.Mtim, dirTime)
			}
			if target, err := os.Readlink(filepath.Join(root, "d/link")); err != nil || target != "f" {
				t.Errorf("d/link -> %q, %v", target, err)
			}
			if st := lstatT(t, filepath.Join(root, "d/link")); st.Uid != 1000 || st.Gid != 1001 {
				t.Errorf("d/link owned by %d:%d, want the symlink itself chowned", st.Uid, st.Gid)
			}
			if target, _ := os.Readlink(filepath.Join(root, "d/dangling")); target != "/nowhere/at/all" {
				t.Errorf("d/dangling -> %q", target)
			}
			if st := lstatT(t, filepath.Join(root, "dev/null")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) || st.Mode&0o777 != 0o666 {
				t.Errorf("dev/null: mode %o rdev %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
			}
			if st := lstatT(t, filepath.Join(root, "dev/loop9")); st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(7, 9) || st.Gid != 6 || st.Mode&0o777 != 0o660 {
				t.Errorf("dev/loop9: mode %o rdev %d:%d gid %d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Gid)
			}
			if st := lstatT(t, filepath.Join(root, "dev/fifo")); st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o777 != 0o620 {
				t.Errorf("dev/fifo: mode %o", st.Mode)
			}
			for p, want := range map[string][3]uint32{"sg": {0o2775, 0, 50}, "sg/root": {0o666, 0, 0}, "sg/inherit": {0o644, 0, 50}} {
				if st := lstatT(t, filepath.Join(root, p)); st.Mode&0o7777 != want[0] || st.Uid != want[1] || st.Gid != want[2] {
					t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", p, st.Mode&0o7777, st.Uid, st.Gid, want[0], want[1], want[2])
				}
			}
			if b, _ := os.ReadFile(filepath.Join(root, "dot/slash")); string(b) != "leading ./ is fine" {
				t.Errorf("dot/slash: %q", b)
			}
		})
	}
}

func strconvQuote(b []byte) string {
	var buf bytes.Buffer
	buf.WriteString(`"`)
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			buf.WriteString(`\` + string(c))
		case c >= 0x20 && c < 0x7f:
			buf.WriteByte(c)
		default:
			buf.WriteString(`\x` + string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15]))
		}
	}
	buf.WriteString(`"`)
	return buf.String()
}

func TestApplySparse(t *testing.T) {
	testenv.RequireRoot(t)
	const size = 64 << 20
	data := map[int64]string{0: "head", 32 << 20: "middle", size - 4: "tail"}
	zeros := make([]byte, 16<<20)
	for name, b := range map[string][]byte{
		"gnu-sparse": sparseTar("sparse", size, data),
		// No sparse map, only a long run of zeros in the data.
		"zeros": tarOf(t, ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "sparse", Mode: 0o644, Size: int64(len(zeros) + 3), ModTime: epoch}, body: append(slices.Clone(zeros), "end"...)}),
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			apply(t, root, b, layer.ApplyOptions{Format: layer.Plain})
			p := filepath.Join(root, "sparse")
			st := lstatT(t, p)
			if st.Blocks*512 > 1<<20 {
				t.Errorf("sparse file uses %d bytes of disk; want its holes kept", st.Blocks*512)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if name == "zeros" {
				if !bytes.Equal(got, append(zeros, "end"...)) {
					t.Error("content differs")
				}
				return
			}
			if len(got) != size {
				t.Fatalf("size %d, want %d", len(got), size)
			}
			want := make([]byte, size)
			for off, s := range data {
				copy(want[off:], s)
			}
			if !bytes.Equal(got, want) {
				t.Error("content differs")
			}
		})
	}
}

func TestCompressionAndDigests(t *testing.T) {
	testenv.RequireRoot(t)
	plain := tarOf(t, dirE("a", 0o755), fileE("a/b", 0o644, strings.Repeat("layer data ", 10000)), symlinkE("c", "a/b"))
	ref := t.TempDir()
	apply(t, ref, plain, layer.ApplyOptions{Format: layer.Plain})
	wantTree := readTree(t, ref)
	for name, stream := range map[string][]byte{"tar": plain, "gzip": gzipOf(t, plain), "zstd": zstdOf(t, plain)} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			res := apply(t, root, stream, layer.ApplyOptions{
				Format: layer.Plain,
				Digest: digest.FromBytes(stream),
				DiffID: digest.FromBytes(plain),
			})
			want := layer.Result{Digest: digest.FromBytes(stream), DiffID: digest.FromBytes(plain), Size: int64(len(stream)), UncompressedSize: int64(len(plain))}
			if res != want {
				t.Errorf("result %+v, want %+v", res, want)
			}
			compareTrees(t, wantTree, readTree(t, root))
		})
	}
	t.Run("sha512", func(t *testing.T) {
		stream := gzipOf(t, plain)
		d := digest.SHA512.FromBytes(stream)
		res := apply(t, t.TempDir(), stream, layer.ApplyOptions{Format: layer.Plain, Digest: d})
		if res.Digest != d || res.DiffID != digest.FromBytes(plain) {
			t.Errorf("digests %s %s, want %s and the sha256 diff ID", res.Digest, res.DiffID, d)
		}
	})
}

func TestDigestMismatch(t *testing.T) {
	testenv.RequireRoot(t)
	plain := tarOf(t, fileE("a", 0o644, "a"))
	stream := gzipOf(t, plain)
	wrong := digest.FromString("something else")
	for _, tc := range []struct {
		name string
		opts layer.ApplyOptions
		what string
		got  digest.Digest
	}{
		{"digest", layer.ApplyOptions{Digest: wrong}, "digest", digest.FromBytes(stream)},
		{"diffID", layer.ApplyOptions{DiffID: wrong}, "diff ID", digest.FromBytes(plain)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Format = layer.Plain
			_, err := layer.Apply(context.Background(), t.TempDir(), bytes.NewReader(stream), tc.opts)
			var mismatch *layer.DigestMismatchError
			if !errors.As(err, &mismatch) || mismatch.What != tc.what {
				t.Fatalf("got %v, want a %s mismatch", err, tc.what)
			}
			if !strings.Contains(err.Error(), wrong.String()) || !strings.Contains(err.Error(), tc.got.String()) {
				t.Errorf("%q does not name both %s and %s", err, wrong, tc.got)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("%v is not an invalid argument", err)
			}
		})
	}
	t.Run("bad expected digest", func(t *testing.T) {
		_, err := layer.Apply(context.Background(), t.TempDir(), bytes.NewReader(stream), layer.ApplyOptions{Format: layer.Plain, Digest: "md5:abc"})
		if err == nil {
			t.Fatal("applied with an unusable expected digest")
		}
	})
}

func TestCorruptLayers(t *testing.T) {
	testenv.RequireRoot(t)
	plain := tarOf(t, fileE("a", 0o644, strings.Repeat("x", 100000)), fileE("b", 0o644, "b"))
	gz := gzipOf(t, plain)
	zs := zstdOf(t, plain)
	flipped := slices.Clone(gz)
	flipped[len(flipped)-6] ^= 0xff // the gzip trailer's CRC
	for name, tc := range map[string]struct {
		stream []byte
		msg    string
	}{
		"truncated tar":      {plain[:1000], "unexpected EOF"},
		"truncated gzip":     {gz[:len(gz)/2], "unexpected EOF"},
		"truncated zstd":     {zs[:len(zs)/2], "zstd"},
		"gzip checksum":      {flipped, "gzip"},
		"xz":                 {[]byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2, 3}, "xz"},
		"garbage":            {bytes.Repeat([]byte("garbage!"), 200), ""},
		"gzip then garbage":  {append(slices.Clone(gz), "garbage"...), "gzip"},
		"bad gzip header":    {[]byte{0x1f, 0x8b, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}, "gzip"},
		"bad type":           {tarOf(t, ent{hdr: tar.Header{Typeflag: 'Q', Name: "q", ModTime: epoch}}), "unsupported entry type"},
		"negative owner":     {tarOf(t, fileE("a", 0o644, "").with(func(h *tar.Header) { h.Uid = -5 })), "owner"},
		"hardlink missing":   {tarOf(t, linkE("l", "nothing")), "does not exist"},
		"parent not a dir":   {tarOf(t, fileE("f", 0o644, ""), fileE("f/g", 0o644, "")), "not a directory"},
		"whiteout component": {tarOf(t, fileE("a/.wh.b/c", 0o644, "")), "whiteout name"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, format := range formats {
				_, err := layer.Apply(context.Background(), t.TempDir(), bytes.NewReader(tc.stream), layer.ApplyOptions{Format: format})
				if err == nil {
					t.Fatalf("%v: applied a corrupt layer", format)
				}
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("%v: error %q does not mention %q", format, err, tc.msg)
				}
			}
		})
	}
}

func TestApplyCanceled(t *testing.T) {
	testenv.RequireRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := layer.Apply(ctx, t.TempDir(), bytes.NewReader(tarOf(t, fileE("a", 0o644, "a"))), layer.ApplyOptions{Format: layer.Plain})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}

	// A stream that stalls: Apply returns when the context ends, and only
	// once it no longer reads the stream.
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	pr, pw := io.Pipe()
	go func() {
		b := tarOf(t, fileE("a", 0o644, strings.Repeat("a", 1<<20)))
		pw.Write(b[:len(b)/2])
		<-ctx.Done()
		pw.CloseWithError(errors.New("stalled stream ended"))
	}()
	_, err = layer.Apply(ctx, t.TempDir(), pr, layer.ApplyOptions{Format: layer.Plain})
	if err == nil {
		t.Fatal("applied a stalled stream")
	}
}

// The parent and the layer that the whiteout tests stack, and what a
// container must see afterwards.
func whiteoutLayers(t *testing.T) (parent, top []byte) {
	parent = tarOf(t,
		dirE("etc", 0o750).with(func(h *tar.Header) {
			h.Uid, h.Gid = 5, 6
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.dir": "etc"}
		}),
		fileE("etc/keep", 0o644, "keep"),
		fileE("etc/gone", 0o644, "gone"),
		dirE("etc/dir", 0o755), fileE("etc/dir/a", 0o644, "a"), dirE("etc/dir/sub", 0o755), fileE("etc/dir/sub/b", 0o644, "b"),
		dirE("etc/recreated", 0o755), fileE("etc/recreated/old", 0o644, "old"),
		dirE("opt", 0o755),
		dirE("opt/old", 0o755), fileE("opt/old/a", 0o644, "a"), fileE("opt/old/b", 0o644, "b"),
		dirE("opt/re2", 0o755), fileE("opt/re2/old", 0o644, "old"),
		dirE("opt/keep", 0o755), fileE("opt/keep/x", 0o644, "x"),
		fileE("file2dir", 0o644, "file"),
		dirE("dir2file", 0o755), fileE("dir2file/c", 0o644, "c"),
		fileE("linkme", 0o640, "lower data").with(func(h *tar.Header) { h.Uid = 42 }),
		dirE("linkdir", 0o711), fileE("linkdir/target", 0o600, "deep lower data"),
	)
	top = tarOf(t,
		whiteoutE("etc", "gone"),
		whiteoutE("etc", "dir"),
		// Deleted and made again in one layer: only the new one is seen.
		whiteoutE("etc", "recreated"),
		dirE("etc/recreated", 0o755), fileE("etc/recreated/new", 0o644, "new"),
		opaqueE("opt/old"), fileE("opt/old/new", 0o644, "new"),
		// The same, the whiteout after: it still hides only what is below.
		dirE("opt/re2", 0o755), fileE("opt/re2/new", 0o644, "new"), whiteoutE("opt", "re2"),
		dirE("file2dir", 0o755), fileE("file2dir/x", 0o644, "x"),
		fileE("dir2file", 0o644, "now a file"),
		fileE("newdir/deep/file", 0o644, "parents implied"),
		linkE("hl", "linkme"),
		linkE("hl2", "linkdir/target"),
		whiteoutE(".", "nonexistent"),
		whiteoutE("nodir", "nothing"),
	)
	return parent, top
}

func checkWhiteoutView(t *testing.T, root string) {
	t.Helper()
	for _, p := range []string{"etc/gone", "etc/dir", "etc/recreated/old", "opt/old/a", "opt/old/b", "opt/re2/old", "dir2file/c", "nonexistent", "nodir"} {
		if exists(filepath.Join(root, p)) {
			t.Errorf("%s is still there", p)
		}
	}
	for p, want := range map[string]string{
		"etc/keep": "keep", "etc/recreated/new": "new", "opt/old/new": "new", "opt/re2/new": "new",
		"opt/keep/x": "x", "file2dir/x": "x", "dir2file": "now a file", "newdir/deep/file": "parents implied",
		"hl": "lower data", "linkme": "lower data", "hl2": "deep lower data", "linkdir/target": "deep lower data",
	} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	if a, b := lstatT(t, filepath.Join(root, "hl")), lstatT(t, filepath.Join(root, "linkme")); a.Ino != b.Ino || a.Uid != 42 {
		t.Errorf("hl and linkme: inodes %d, %d, uid %d: want one file owned by 42", a.Ino, b.Ino, a.Uid)
	}
	if st := lstatT(t, filepath.Join(root, "etc")); st.Uid != 5 || st.Gid != 6 || st.Mode&0o7777 != 0o750 {
		t.Errorf("etc: %d:%d %o, want the parent's 5:6 750", st.Uid, st.Gid, st.Mode&0o7777)
	}
	if x := xattrString(t, filepath.Join(root, "etc")); x != `user.dir="etc"` {
		t.Errorf("etc xattrs %s", x)
	}
}

func TestWhiteoutsPlain(t *testing.T) {
	testenv.RequireRoot(t)
	parent, top := whiteoutLayers(t)
	root := t.TempDir()
	apply(t, root, parent, layer.ApplyOptions{Format: layer.Plain})
	apply(t, root, top, layer.ApplyOptions{Format: layer.Plain})
	checkWhiteoutView(t, root)
}

func TestWhiteoutsOverlay(t *testing.T) {
	testenv.RequireRoot(t)
	parent, top := whiteoutLayers(t)
	lower, upper := mkdir(t, t.TempDir(), "lower"), mkdir(t, t.TempDir(), "upper")
	apply(t, lower, parent, layer.ApplyOptions{Format: layer.Overlay})
	apply(t, upper, top, layer.ApplyOptions{Format: layer.Overlay, Parents: []string{lower}})

	// The upper directory holds overlayfs's forms.
	for _, p := range []string{"etc/gone", "etc/dir", "nonexistent"} {
		if st := lstatT(t, filepath.Join(upper, p)); !(st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0) {
			t.Errorf("%s in the upper directory: mode %o rdev %d, want a 0:0 character device", p, st.Mode, st.Rdev)
		}
	}
	for _, p := range []string{"opt/old", "etc/recreated", "opt/re2"} {
		if v, err := getxattr(filepath.Join(upper, p), "trusted.overlay.opaque"); v != "y" {
			t.Errorf("%s in the upper directory: opaque %q, %v; want y", p, v, err)
		}
	}
	if exists(filepath.Join(upper, "nodir")) {
		t.Error("a whiteout in a directory no layer has made the directory")
	}
	if st, lst := lstatT(t, filepath.Join(upper, "etc")), lstatT(t, filepath.Join(lower, "etc")); st.Mtim != lst.Mtim {
		t.Errorf("etc copied up with mtime %v, want the parent's %v", st.Mtim, lst.Mtim)
	}

	merged, _ := mountOverlay(t, "", upper, lower)
	checkWhiteoutView(t, merged)

	// And a container sees what it would see with the layers applied in
	// full, one over the other.
	plain := t.TempDir()
	apply(t, plain, parent, layer.ApplyOptions{Format: layer.Plain})
	apply(t, plain, top, layer.ApplyOptions{Format: layer.Plain})
	// Directories no entry names are made when they are needed.
	compareTrees(t, dropMtimes(readTree(t, plain), "newdir", "newdir/deep"), dropMtimes(readTree(t, merged), "newdir", "newdir/deep"))
}

func dropMtimes(tree map[string]node, paths ...string) map[string]node {
	for _, p := range paths {
		n := tree[p]
		n.Mtime = 0
		tree[p] = n
	}
	return tree
}

func getxattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// The test image's layers (hack/testimage) are real layers with a whiteout
// and an opaque directory.
func TestTestImageLayers(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := os.Stat(testimage.DefaultBusybox); err != nil {
		t.Skipf("needs %s (busybox-static): %v", testimage.DefaultBusybox, err)
	}
	layers, err := testimage.Layers(testimage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := func(l testimage.Layer, format layer.Format, parents ...string) layer.ApplyOptions {
		return layer.ApplyOptions{Format: format, Parents: parents, Digest: l.Gzip.Descriptor.Digest, DiffID: l.DiffID}
	}
	plain := t.TempDir()
	for _, l := range layers {
		res := apply(t, plain, l.Gzip.Data, opts(l, layer.Plain))
		if res.Size != l.Gzip.Descriptor.Size || res.UncompressedSize != int64(len(l.Tar)) {
			t.Errorf("layer %s: sizes %d, %d; want %d, %d", l.Name, res.Size, res.UncompressedSize, l.Gzip.Descriptor.Size, len(l.Tar))
		}
	}
	var dirs []string
	for _, l := range layers {
		dir := mkdir(t, t.TempDir(), "layer")
		apply(t, dir, l.Gzip.Data, opts(l, layer.Overlay, dirs...))
		dirs = slices.Insert(dirs, 0, dir)
	}
	merged, _ := mountOverlay(t, "", dirs...)
	for _, root := range []string{plain, merged} {
		if exists(filepath.Join(root, "etc/berth-deleted")) {
			t.Errorf("%s: etc/berth-deleted survived its whiteout", root)
		}
		if names, _ := readNames(filepath.Join(root, "opt/old")); strings.Join(names, " ") != "b" {
			t.Errorf("%s: opt/old holds %q, want only b", root, names)
		}
		if target, _ := os.Readlink(filepath.Join(root, "bin/sh")); target != "busybox" {
			t.Errorf("%s: bin/sh -> %q", root, target)
		}
	}
	compareTrees(t, readTree(t, plain), readTree(t, merged))
}

// An opaque root hides all the parents have; overlayfs ignores the opaque
// xattr on a layer's root, so Apply must not rely on it there.
func TestOpaqueRoot(t *testing.T) {
	testenv.RequireRoot(t)
	parent := tarOf(t, fileE("a", 0o644, "a"), dirE("b", 0o755), fileE("b/c", 0o644, "c"))
	for name, top := range map[string][]byte{
		"opaque first": tarOf(t, fileE("new", 0o644, "new"), opaqueE("."), dirE("b", 0o755), fileE("b/d", 0o644, "d")),
		"opaque last":  tarOf(t, fileE("new", 0o644, "new"), dirE("b", 0o755), fileE("b/d", 0o644, "d"), opaqueE(".")),
	} {
		t.Run(name, func(t *testing.T) { testOpaqueRoot(t, parent, top) })
	}
}

func testOpaqueRoot(t *testing.T, parent, top []byte) {
	check := func(t *testing.T, root string) {
		t.Helper()
		names, _ := readNames(root)
		bnames, _ := readNames(filepath.Join(root, "b"))
		if strings.Join(names, " ") != "b new" || strings.Join(bnames, " ") != "d" {
			t.Errorf("root holds %q, b holds %q; want [b new] and [d]", names, bnames)
		}
	}
	t.Run("plain", func(t *testing.T) {
		root := t.TempDir()
		apply(t, root, parent, layer.ApplyOptions{Format: layer.Plain})
		apply(t, root, top, layer.ApplyOptions{Format: layer.Plain})
		check(t, root)
	})
	t.Run("overlay", func(t *testing.T) {
		lower, upper := mkdir(t, t.TempDir(), "lower"), mkdir(t, t.TempDir(), "upper")
		apply(t, lower, parent, layer.ApplyOptions{Format: layer.Overlay})
		apply(t, upper, top, layer.ApplyOptions{Format: layer.Overlay, Parents: []string{lower}})
		merged, _ := mountOverlay(t, "", upper, lower)
		check(t, merged)
	})
}

// A layer unpacked with no parents (a parallel unpack, stacked on its
// parent when committed) keeps its whiteouts and opaque markers even in
// directories it has no entry for, and they hold once stacked.
func TestWhiteoutsRebased(t *testing.T) {
	testenv.RequireRoot(t)
	parent := tarOf(t, dirE("etc", 0o755), fileE("etc/a", 0o644, "a"), fileE("etc/b", 0o644, "b"),
		dirE("opt", 0o755), dirE("opt/old", 0o755), fileE("opt/old/x", 0o644, "x"))
	top := tarOf(t, whiteoutE("etc", "a"), opaqueE("opt/old"), fileE("opt/old/y", 0o644, "y"))
	lower, upper := mkdir(t, t.TempDir(), "lower"), mkdir(t, t.TempDir(), "upper")
	apply(t, lower, parent, layer.ApplyOptions{Format: layer.Overlay})
	apply(t, upper, top, layer.ApplyOptions{Format: layer.Overlay})
	merged, _ := mountOverlay(t, "", upper, lower)
	for dir, want := range map[string]string{"etc": "b", "opt/old": "y"} {
		if names, err := readNames(filepath.Join(merged, dir)); err != nil || strings.Join(names, " ") != want {
			t.Errorf("%s holds %q (%v), want %q", dir, names, err, want)
		}
	}
}
