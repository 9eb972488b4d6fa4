package layer_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/snapshotter/layer"
)

// attack is a crafted layer that tries to write outside the root.
type attack struct {
	name string
	// entries builds the layer; s names the sandbox, for absolute paths.
	entries func(s *sandbox) []ent
	// setup prepares the root or the parent layer before the apply.
	setup func(t testing.TB, s *sandbox)
	// refused is the entry Apply must refuse as unsafe, "" if the layer
	// is harmless as Apply reads it (it must then apply, changing only
	// the root).
	refused string
	// only limits the attack to one format.
	only *layer.Format
}

func formatPtr(f layer.Format) *layer.Format { return &f }

func symlinkIn(dir, name, target string) func(t testing.TB, s *sandbox) {
	return func(t testing.TB, s *sandbox) {
		d := map[string]string{"root": s.root, "lower": s.lower}[dir]
		if err := os.Symlink(strings.ReplaceAll(target, "SENTINEL", s.sentinel), filepath.Join(d, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func attacks() []attack {
	return []attack{
		{name: "dotdot", refused: "../sentinel/secret", entries: func(*sandbox) []ent {
			return []ent{fileE("../sentinel/secret", 0o644, "pwned")}
		}},
		{name: "dotdot-inner", refused: "a/../../sentinel/secret", entries: func(*sandbox) []ent {
			return []ent{dirE("a", 0o755), fileE("a/../../sentinel/secret", 0o644, "pwned")}
		}},
		{name: "dotdot-dot-slash", refused: "./../sentinel/new", entries: func(*sandbox) []ent {
			return []ent{fileE("./../sentinel/new", 0o644, "pwned")}
		}},
		{name: "dotdot-dir", refused: "../sentinel/newdir/", entries: func(*sandbox) []ent {
			return []ent{dirE("../sentinel/newdir", 0o777)}
		}},
		{name: "dotdot-whiteout", refused: "../sentinel/.wh.secret", entries: func(*sandbox) []ent {
			return []ent{whiteoutE("../sentinel", "secret")}
		}},
		{name: "dotdot-opaque", refused: "../sentinel/.wh..wh..opq", entries: func(*sandbox) []ent {
			return []ent{opaqueE("../sentinel")}
		}},
		{name: "whiteout-of-dotdot", refused: ".wh..", entries: func(*sandbox) []ent {
			return []ent{fileE(".wh..", 0o644, "")}
		}},
		{name: "absolute", refused: "SENTINEL/secret", entries: func(s *sandbox) []ent {
			return []ent{fileE(s.sentinel+"/secret", 0o644, "pwned")}
		}},
		{name: "absolute-dir", refused: "SENTINEL/newdir/", entries: func(s *sandbox) []ent {
			return []ent{dirE(s.sentinel+"/newdir", 0o755)}
		}},
		{name: "root-as-file", refused: ".", entries: func(*sandbox) []ent {
			return []ent{fileE(".", 0o644, "the root, replaced")}
		}},
		{name: "symlink-absolute-parent", refused: "evil/secret", entries: func(s *sandbox) []ent {
			return []ent{symlinkE("evil", s.sentinel), fileE("evil/secret", 0o644, "pwned")}
		}},
		{name: "symlink-relative-parent", refused: "evil/secret", entries: func(*sandbox) []ent {
			return []ent{symlinkE("evil", "../sentinel"), fileE("evil/secret", 0o644, "pwned")}
		}},
		{name: "symlink-dir-entry", refused: "evil/newdir/", entries: func(*sandbox) []ent {
			return []ent{symlinkE("evil", "../sentinel"), dirE("evil/newdir", 0o755)}
		}},
		{name: "symlink-swapped-for-dir", refused: "d/secret", entries: func(*sandbox) []ent {
			return []ent{dirE("d", 0o755), fileE("d/ok", 0o644, "ok"), symlinkE("d", "../sentinel"), fileE("d/secret", 0o644, "pwned")}
		}},
		{name: "symlink-swapped-nested", refused: "a/b/dir/file", entries: func(*sandbox) []ent {
			return []ent{dirE("a", 0o755), dirE("a/b", 0o755), symlinkE("a/b", "../../sentinel"), fileE("a/b/dir/file", 0o644, "pwned")}
		}},
		{name: "symlink-chain", refused: "x/secret", entries: func(*sandbox) []ent {
			return []ent{symlinkE("y", "../sentinel"), symlinkE("x", "y"), fileE("x/secret", 0o644, "pwned")}
		}},
		{name: "symlink-to-dot", refused: "self/self/x", entries: func(*sandbox) []ent {
			return []ent{symlinkE("self", "."), fileE("self/self/x", 0o644, "")}
		}},
		{name: "symlink-loop", refused: "loop/x", entries: func(*sandbox) []ent {
			return []ent{symlinkE("loop", "loop"), fileE("loop/x", 0o644, "")}
		}},
		{name: "symlink-magic", refused: "proc/tmp/x", entries: func(*sandbox) []ent {
			return []ent{symlinkE("proc", "/proc/self/root"), fileE("proc/tmp/x", 0o644, "")}
		}},
		{name: "symlink-whiteout", refused: "s/.wh.secret", entries: func(*sandbox) []ent {
			return []ent{symlinkE("s", "../sentinel"), whiteoutE("s", "secret")}
		}},
		{name: "symlink-opaque", refused: "s/.wh..wh..opq", entries: func(*sandbox) []ent {
			return []ent{symlinkE("s", "../sentinel"), opaqueE("s")}
		}},
		{name: "hardlink-dotdot", refused: "hl", entries: func(*sandbox) []ent {
			return []ent{linkE("hl", "../sentinel/secret")}
		}},
		{name: "hardlink-absolute", refused: "hl", entries: func(s *sandbox) []ent {
			return []ent{linkE("hl", s.sentinel+"/secret")}
		}},
		{name: "hardlink-through-symlink", refused: "hl", entries: func(*sandbox) []ent {
			return []ent{symlinkE("s", "../sentinel"), linkE("hl", "s/secret"), fileE("hl", 0o644, "pwned")}
		}},
		{name: "hardlink-to-root", refused: "hl", entries: func(*sandbox) []ent {
			return []ent{linkE("hl", "./")}
		}},
		{name: "root-symlink-parent", refused: "etc/secret", setup: symlinkIn("root", "etc", "SENTINEL"), entries: func(*sandbox) []ent {
			return []ent{fileE("etc/secret", 0o644, "pwned")}
		}},
		{name: "root-symlink-whiteout", refused: "etc/.wh.secret", setup: symlinkIn("root", "etc", "../sentinel"), entries: func(*sandbox) []ent {
			return []ent{whiteoutE("etc", "secret")}
		}},
		{name: "root-symlink-hardlink", refused: "hl", setup: symlinkIn("root", "etc", "SENTINEL"), entries: func(*sandbox) []ent {
			return []ent{linkE("hl", "etc/secret")}
		}},
		{name: "lower-symlink-parent", refused: "etc/secret", only: formatPtr(layer.Overlay), setup: symlinkIn("lower", "etc", "SENTINEL"), entries: func(*sandbox) []ent {
			return []ent{fileE("etc/secret", 0o644, "pwned")}
		}},
		{name: "lower-symlink-whiteout", refused: "etc/.wh.secret", only: formatPtr(layer.Overlay), setup: symlinkIn("lower", "etc", "../sentinel"), entries: func(*sandbox) []ent {
			return []ent{whiteoutE("etc", "secret")}
		}},
		{name: "lower-symlink-hardlink", refused: "hl", only: formatPtr(layer.Overlay), setup: symlinkIn("lower", "etc", "SENTINEL"), entries: func(*sandbox) []ent {
			return []ent{linkE("hl", "etc/secret")}
		}},

		// Harmless as read: each must apply, and change only the root.
		{name: "file-over-symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkE("f", s.sentinel+"/secret"), fileE("f", 0o644, "pwned")}
		}},
		{name: "dir-over-symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkE("d", s.sentinel), dirE("d", 0o777), fileE("d/x", 0o644, "")}
		}},
		{name: "hardlink-to-symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkE("s", s.sentinel+"/secret"), linkE("h", "s"), fileE("h", 0o644, "pwned")}
		}},
		{name: "device-over-symlink", entries: func(s *sandbox) []ent {
			e := fileE("n", 0o666, "")
			e.hdr.Typeflag, e.hdr.Devmajor, e.hdr.Devminor = '3', 1, 3
			return []ent{symlinkE("n", s.sentinel+"/secret"), e}
		}},
		{name: "whiteout-of-symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkE("s", s.sentinel), whiteoutE(".", "s")}
		}},
		{name: "root-symlink-replaced", setup: symlinkIn("root", "etc", "SENTINEL"), entries: func(*sandbox) []ent {
			return []ent{dirE("etc", 0o755), fileE("etc/secret", 0o644, "mine")}
		}},
		{name: "symlink-dotdot-target", entries: func(*sandbox) []ent {
			return []ent{symlinkE("up", "../../../../../.."), symlinkE("abs", "/etc/passwd")}
		}},
		{name: "dotdot-inside", entries: func(*sandbox) []ent {
			return []ent{dirE("a", 0o755), fileE("a/../b", 0o644, "b")}
		}},
	}
}

func TestAttacks(t *testing.T) {
	testenv.RequireRoot(t)
	for _, a := range attacks() {
		t.Run(a.name, func(t *testing.T) {
			for _, format := range formats {
				if a.only != nil && *a.only != format {
					continue
				}
				s := newSandbox(t)
				if a.setup != nil {
					a.setup(t, s)
				}
				_, err := layer.Apply(context.Background(), s.root, bytes.NewReader(tarOf(t, a.entries(s)...)),
					layer.ApplyOptions{Format: format, Parents: []string{s.lower}})
				s.check(t)
				if a.refused == "" {
					if err != nil {
						t.Errorf("%v: %v", format, err)
					}
					continue
				}
				want := strings.ReplaceAll(a.refused, "SENTINEL", s.sentinel)
				var unsafe *layer.UnsafeEntryError
				if !errors.As(err, &unsafe) {
					t.Fatalf("%v: got %v, want entry %q refused", format, err, want)
				}
				if unsafe.Name != want {
					t.Errorf("%v: refused %q (%v), want %q", format, unsafe.Name, err, want)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("%v: %v is not an invalid argument", format, err)
				}
				t.Logf("%v: %v", format, err)
			}
		})
	}
}
