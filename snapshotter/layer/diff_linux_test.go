package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/snapshotter/layer"
)

// parentLayer is the tree the round trips start from.
func parentLayer(t *testing.T) []byte {
	return tarOf(t,
		dirE("bin", 0o755),
		fileE("bin/tool", 0o755, "a tool"),
		symlinkE("bin/sh", "tool"),
		dirE("etc", 0o755),
		fileE("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
		fileE("etc/group", 0o644, "root:x:0:\n"),
		fileE("etc/hosts", 0o644, "127.0.0.1 localhost\n").with(func(h *tar.Header) {
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.a": "1"}
		}),
		fileE("etc/gone", 0o644, "to be deleted"),
		fileE("etc/keep", 0o644, "unchanged"),
		dirE("var", 0o755), dirE("var/cache", 0o755), dirE("var/cache/apt", 0o755), fileE("var/cache/apt/pkg", 0o644, "pkg"),
		dirE("opt", 0o755),
		dirE("opt/replaced", 0o700).with(func(h *tar.Header) { h.Uid = 3 }),
		fileE("opt/replaced/a", 0o644, "a"), fileE("opt/replaced/b", 0o644, "b"),
		dirE("opt/replaced/sub", 0o755), fileE("opt/replaced/sub/c", 0o644, "c"),
		fileE("file2dir", 0o644, "a file"),
		dirE("dir2file", 0o755), fileE("dir2file/x", 0o644, "x"),
		dirE("lib", 0o755), fileE("lib/a", 0o644, "shared"), linkE("lib/b", "lib/a"),
		dirE("dev", 0o755),
		ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: epoch}},
		ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "dev/fifo", Mode: 0o600, ModTime: epoch}},
		fileE("truncated", 0o644, "some content"),
	)
}

// mutate changes the tree at root as a container would, in every way a
// layer can record.
func mutate(t *testing.T, root string) {
	t.Helper()
	p := func(name string) string { return filepath.Join(root, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Added, with parents.
	must(os.MkdirAll(p("new/dir"), 0o755))
	must(os.Chown(p("new"), 7, 8))
	must(os.Chmod(p("new"), 0o750))
	must(os.WriteFile(p("new/dir/file"), []byte("new file"), 0o644))
	// Rewritten in place, with its old mtime put back: only the content
	// tells.
	var st unix.Stat_t
	must(unix.Lstat(p("etc/passwd"), &st))
	must(os.WriteFile(p("etc/passwd"), []byte("ROOT:X:0:0:ROOT:/ROOT:/BIN/SH\n"), 0o644))
	must(os.Chtimes(p("etc/passwd"), time.Unix(st.Atim.Sec, 0), time.Unix(st.Mtim.Sec, 0)))
	// Metadata only.
	must(os.Chmod(p("bin/tool"), 0o4755))
	must(unix.Setxattr(p("bin/tool"), "security.capability", capNetRaw(), 0))
	must(os.Chown(p("etc/group"), 1, 1))
	must(unix.Removexattr(p("etc/hosts"), "user.a"))
	must(unix.Setxattr(p("etc/hosts"), "user.b", []byte("2"), 0))
	// Deleted.
	must(os.Remove(p("etc/gone")))
	must(os.RemoveAll(p("var/cache")))
	// Replaced whole: nothing of the old directory is left.
	must(os.RemoveAll(p("opt/replaced")))
	must(os.Mkdir(p("opt/replaced"), 0o755))
	must(os.WriteFile(p("opt/replaced/new"), []byte("new"), 0o644))
	// Type changes.
	must(os.Remove(p("file2dir")))
	must(os.Mkdir(p("file2dir"), 0o755))
	must(os.WriteFile(p("file2dir/inner"), []byte("inner"), 0o644))
	must(os.RemoveAll(p("dir2file")))
	must(os.WriteFile(p("dir2file"), []byte("now a file"), 0o600))
	// Links: a new name of a parent's file, and one name traded for
	// another (the link count stays).
	must(os.Link(p("bin/tool"), p("bin/tool-link")))
	must(os.Remove(p("lib/b")))
	must(os.Link(p("lib/a"), p("lib/c")))
	// A symlink retargeted and chowned.
	must(os.Remove(p("bin/sh")))
	must(os.Symlink("busybox", p("bin/sh")))
	must(os.Lchown(p("bin/sh"), 5, 5))
	// Devices.
	must(unix.Mknod(p("dev/zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
	must(unix.Mkfifo(p("dev/newfifo"), 0o644))
	// Sparse, emptied, and a sub-second mtime.
	f, err := os.Create(p("sparse"))
	must(err)
	_, err = f.WriteAt([]byte("x"), 8<<20)
	must(err)
	must(f.Close())
	must(os.Truncate(p("truncated"), 0))
	must(os.WriteFile(p("nanos"), []byte("ns"), 0o644))
	must(os.Chtimes(p("nanos"), time.Unix(1, 2), time.Unix(1700000000, 123456789)))
}

// tarNames lists a layer's entries, as "name" or "name -> link".
func tarNames(t *testing.T, b []byte) map[string]string {
	t.Helper()
	names := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		v := string(hdr.Typeflag)
		if hdr.Typeflag == tar.TypeLink {
			v = "link " + hdr.Linkname
		}
		names[strings.TrimSuffix(hdr.Name, "/")] = v
	}
}

// checkRoundTrip applies the parent and then the diff, in each format, and
// compares what a container sees with want.
func checkRoundTrip(t *testing.T, parent, diff []byte, want map[string]node) {
	t.Helper()
	t.Run("plain", func(t *testing.T) {
		root := t.TempDir()
		apply(t, root, parent, layer.ApplyOptions{Format: layer.Plain})
		apply(t, root, diff, layer.ApplyOptions{Format: layer.Plain})
		compareTrees(t, want, readTree(t, root))
	})
	t.Run("overlay", func(t *testing.T) {
		lower, upper := mkdir(t, t.TempDir(), "lower"), mkdir(t, t.TempDir(), "upper")
		apply(t, lower, parent, layer.ApplyOptions{Format: layer.Overlay})
		apply(t, upper, diff, layer.ApplyOptions{Format: layer.Overlay, Parents: []string{lower}})
		merged, _ := mountOverlay(t, "", upper, lower)
		compareTrees(t, want, readTree(t, merged))

		// Apply's upper directory is itself an overlay upper directory:
		// its diff applies to the same tree.
		var again bytes.Buffer
		if err := layer.OverlayDiff(context.Background(), &again, upper, []string{lower}); err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		apply(t, root, parent, layer.ApplyOptions{Format: layer.Plain})
		apply(t, root, again.Bytes(), layer.ApplyOptions{Format: layer.Plain})
		compareTrees(t, want, readTree(t, root))
	})
}

func TestDiffRoundTrip(t *testing.T) {
	testenv.RequireRoot(t)
	parent := parentLayer(t)
	lower, upper := t.TempDir(), t.TempDir()
	apply(t, lower, parent, layer.ApplyOptions{Format: layer.Plain})
	apply(t, upper, parent, layer.ApplyOptions{Format: layer.Plain})

	var empty bytes.Buffer
	if err := layer.Diff(context.Background(), &empty, lower, upper); err != nil {
		t.Fatal(err)
	}
	if names := tarNames(t, empty.Bytes()); len(names) != 0 {
		t.Errorf("diff of equal trees: %v", names)
	}

	mutate(t, upper)
	want := readTree(t, upper)
	var diff bytes.Buffer
	if err := layer.Diff(context.Background(), &diff, lower, upper); err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, diff.Bytes())
	for name, typ := range map[string]string{
		"etc/.wh.gone": "0", "var/.wh.cache": "0", "opt/replaced/.wh..wh..opq": "0",
		"etc/passwd": "0", "bin/tool-link": "link bin/tool", "lib/c": "link lib/a",
	} {
		if names[name] != typ {
			t.Errorf("diff has %s as %q, want %q", name, names[name], typ)
		}
	}
	for _, name := range []string{"etc/keep", "lib/a", "opt/replaced/.wh.a"} {
		if _, ok := names[name]; ok {
			t.Errorf("diff has %s", name)
		}
	}
	checkRoundTrip(t, parent, diff.Bytes(), want)
}

func TestOverlayDiffRoundTrip(t *testing.T) {
	testenv.RequireRoot(t)
	parent := parentLayer(t)
	lower, upper := mkdir(t, t.TempDir(), "lower"), mkdir(t, t.TempDir(), "upper")
	apply(t, lower, parent, layer.ApplyOptions{Format: layer.Overlay})
	merged, unmount := mountOverlay(t, upper, lower)
	mutate(t, merged)
	want := readTree(t, merged)

	// Diff reads mounted trees too.
	var diff bytes.Buffer
	if err := layer.Diff(context.Background(), &diff, lower, merged); err != nil {
		t.Fatal(err)
	}
	unmount()
	t.Run("Diff", func(t *testing.T) { checkRoundTrip(t, parent, diff.Bytes(), want) })

	var odiff bytes.Buffer
	if err := layer.OverlayDiff(context.Background(), &odiff, upper, []string{lower}); err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, odiff.Bytes())
	for name, typ := range map[string]string{
		"etc/.wh.gone": "0", "var/.wh.cache": "0", "opt/replaced/.wh..wh..opq": "0", "bin/tool-link": "link bin/tool",
	} {
		if names[name] != typ {
			t.Errorf("overlay diff has %s as %q, want %q", name, names[name], typ)
		}
	}
	t.Run("OverlayDiff", func(t *testing.T) { checkRoundTrip(t, parent, odiff.Bytes(), want) })
}

func TestOverlayDiffRefusesRedirects(t *testing.T) {
	testenv.RequireRoot(t)
	upper := t.TempDir()
	if err := os.Mkdir(filepath.Join(upper, "moved"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(upper, "moved"), "trusted.overlay.redirect", []byte("/orig"), 0); err != nil {
		t.Fatal(err)
	}
	err := layer.OverlayDiff(context.Background(), io.Discard, upper, nil)
	if err == nil || !strings.Contains(err.Error(), "redirect_dir") {
		t.Fatalf("got %v, want a refusal of the renamed directory", err)
	}
}
