package layer_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/snapshotter/layer"
)

// fuzzAbsent is a fixed path, which the seeds' absolute names aim at, that
// must never come to exist. (A sentinel that exists would outlive the
// fuzzing processes, which share it, as debris.)
var fuzzAbsent = filepath.Join(os.TempDir(), "berth-layer-fuzz-must-not-exist")

// FuzzApply applies arbitrary streams, seeded with the attack corpus and
// real layers, in both formats. The invariant: no panic, and nothing outside
// the root changes (the sandbox's sentinel and parent layer, beside the
// root, and the fixed path that absolute names aim at).
func FuzzApply(f *testing.F) {
	if _, err := os.Lstat(fuzzAbsent); err == nil {
		f.Fatalf("%s exists: remove it (an earlier run wrote outside its root?)", fuzzAbsent)
	}
	for _, a := range attacks() {
		s := &sandbox{sentinel: fuzzAbsent}
		f.Add(tarOf(f, a.entries(s)...))
	}
	parent := tarOf(f, dirE("etc", 0o755), fileE("etc/passwd", 0o644, "root"), symlinkE("etc/link", "passwd"),
		linkE("etc/hard", "etc/passwd"), whiteoutE("etc", "gone"), opaqueE("opt"), fileE("opt/x", 0o644, "x"))
	f.Add(parent)
	f.Add(gzipOf(f, parent))
	f.Add(zstdOf(f, parent))
	f.Add(sparseTar("sparse", 1<<20, map[int64]string{0: "a", 1 << 19: "b"}))
	f.Add([]byte{})

	// Sandboxes on tmpfs if there is one: making and removing directories
	// on a disk costs more than applying most inputs.
	scratch := ""
	var fs unix.Statfs_t
	if unix.Statfs("/dev/shm", &fs) == nil && fs.Type == unix.TMPFS_MAGIC && unix.Access("/dev/shm", unix.W_OK) == nil {
		scratch = "/dev/shm"
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range formats {
			base, err := os.MkdirTemp(scratch, "berth-layer-fuzz-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(base) })
			s := newSandboxIn(t, base)
			// A parent layer with a way out, for Overlay roots.
			mkdir(t, s.lower, "etc")
			if err := os.WriteFile(filepath.Join(s.lower, "etc/passwd"), []byte("lower"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../sentinel", filepath.Join(s.lower, "out")); err != nil {
				t.Fatal(err)
			}
			lowerBefore := readTree(t, s.lower)

			// A few bytes can declare a sparse file of terabytes: bound the time.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = layer.Apply(ctx, s.root, bytes.NewReader(data), layer.ApplyOptions{Format: format, Parents: []string{s.lower}})
			cancel()

			s.check(t)
			compareTrees(t, lowerBefore, readTree(t, s.lower))
			if _, err := os.Lstat(fuzzAbsent); err == nil {
				t.Errorf("%s was made", fuzzAbsent)
			}
		}
	})
}
