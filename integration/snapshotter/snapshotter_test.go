//go:build linux

package snapshotter

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/internal/ctrd"
	"github.com/berth-project/berth/snapshotter"
)

// What the test image shows in a container: the overlay layer's file, the
// base layer's file it deleted with a whiteout gone, its opaque /opt/old
// holding only its own b, and a writable root.
const (
	imageCheck = `cat /etc/berth-release; test -e /etc/berth-deleted && echo whiteout ignored; ls /opt/old; echo rw > /written && cat /written`
	imageWant  = "berth test image\nb\nrw\n"
)

// The test image, unpacked into berth by ctr image import, runs with each
// shim, and its files are right.
func TestImportAndRun(t *testing.T) {
	e := newEnv(t)
	chain := e.importImage(testimage.DefaultName, 0)
	snaps := e.snapshots()
	want := map[string]string{chain[0]: " Committed", chain[1]: chain[0] + " Committed"}
	if fmt.Sprint(snaps) != fmt.Sprint(want) {
		t.Fatalf("after import, ctr snapshot ls shows %v, want %v", snaps, want)
	}
	back := e.backend()
	if len(back) != 2 || back[chain[1]].Kind != snapshotter.KindCommitted {
		t.Errorf("the berth store holds %v, want the two layers, committed", back)
	}
	for _, shim := range []string{runcShim, berthShim} {
		t.Run(shim, func(t *testing.T) {
			id := "run-" + strings.ReplaceAll(shim, ".", "-")
			e.RemoveOnCleanup(id)
			out, code := e.Exec(e.runArgs(shim, testimage.DefaultName, id, "sh", "-c", imageCheck)...)
			if code != 0 || out != imageWant {
				t.Fatalf("ctr run --snapshotter berth: exit status %d, output %q, want 0 and %q", code, out, imageWant)
			}
			// containerd prepared the container's root in berth (and
			// removed it with the container).
			if !strings.Contains(e.snap.logTail(), "msg=prepare key="+e.NS+"/") {
				t.Errorf("the snapshotter's log shows no prepare for namespace %s", e.NS)
			}
			if _, ok := e.snapshots()[id]; ok {
				t.Errorf("the container's snapshot %s outlived ctr run --rm", id)
			}
		})
	}
}

// ctr snapshot ls, info, label, prepare, mounts, usage and rm against berth.
func TestSnapshotCommands(t *testing.T) {
	e := newEnv(t)
	chain := e.importImage(testimage.DefaultName, 0)
	base, top := chain[0], chain[1]

	var info struct {
		Kind, Name, Parent string
		Labels             map[string]string
	}
	if err := json.Unmarshal([]byte(e.Run("snapshot", "--snapshotter", name, "info", top)), &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != top || info.Parent != base || info.Kind != "Committed" {
		t.Errorf("ctr snapshot info %s: %+v", top, info)
	}

	// Labels under containerd.io/snapshot/ are the backend's: containerd
	// passes them on (Update), the others it keeps itself.
	e.Run("snapshot", "--snapshotter", name, "label", top, "containerd.io/snapshot/berth-test=yes")
	if got := e.backend()[top].Labels["containerd.io/snapshot/berth-test"]; got != "yes" {
		t.Errorf("label in the berth store: %q, want yes (labels %v)", got, e.backend()[top].Labels)
	}

	// An active snapshot on the image, written through its mounts.
	e.Run("snapshot", "--snapshotter", name, "prepare", "work", top)
	if got := e.snapshots()["work"]; got != top+" Active" {
		t.Errorf("ctr snapshot ls shows work as %q, want %q", got, top+" Active")
	}
	target := t.TempDir()
	mountCmd := strings.TrimSpace(e.Run("snapshot", "--snapshotter", name, "mounts", target, "work"))
	if !strings.HasPrefix(mountCmd, "mount -t overlay overlay "+target+" -o ") || !strings.Contains(mountCmd, e.snapRoot()) {
		t.Fatalf("ctr snapshot mounts: %q, want an overlay of layers under %s", mountCmd, e.snapRoot())
	}
	if out, err := exec.Command("sh", "-c", mountCmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", mountCmd, err, out)
	}
	t.Cleanup(func() { ctrd.UnmountUnder(filepath.Dir(target)) })
	if b, err := os.ReadFile(filepath.Join(target, "etc/berth-release")); err != nil || string(b) != "berth test image\n" {
		t.Errorf("the mounted snapshot's /etc/berth-release: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(target, "big"), make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("umount", target).Run(); err != nil {
		t.Fatal(err)
	}
	usage := e.Run("snapshot", "--snapshotter", name, "usage", "work")
	// KEY SIZE INODES, the size human-readable: "work 3.0 MiB 2".
	if f := strings.Fields(strings.Split(strings.TrimSpace(usage), "\n")[1]); len(f) != 4 || f[0] != "work" || !strings.HasPrefix(f[1], "3.") || f[2] != "MiB" {
		t.Errorf("ctr snapshot usage work:\n%s\nwant about 3 MiB", usage)
	}

	// A layer with children cannot go; the active one can.
	if out, code := e.Exec("snapshot", "--snapshotter", name, "rm", base); code == 0 {
		t.Errorf("ctr snapshot rm of %s, which has a child, succeeded:\n%s", base, out)
	}
	e.Run("snapshot", "--snapshotter", name, "rm", "work")
	if _, ok := e.snapshots()["work"]; ok {
		t.Errorf("work is listed after ctr snapshot rm")
	}
	if out, code := e.Exec("snapshot", "--snapshotter", name, "info", "work"); code == 0 || !strings.Contains(out, "not found") {
		t.Errorf("ctr snapshot info of a removed snapshot: exit status %d, %q; want not found", code, out)
	}

	// Removing the image and collecting garbage at once (--sync) removes
	// its snapshots from the berth store too.
	e.Run("image", "rm", "--sync", testimage.DefaultName)
	if left := e.backend(); len(left) != 0 {
		t.Errorf("the berth store still holds %v after ctr image rm --sync", left)
	}
	if snaps := e.snapshots(); len(snaps) != 0 {
		t.Errorf("ctr snapshot ls still shows %v", snaps)
	}
}

// snapRoot is where the berth store keeps its snapshots.
func (e *env) snapRoot() string { return filepath.Join(e.snap.root, "snapshots") }

// An image of 102 layers unpacks into berth and runs: its mount options
// pass a page, so the mount must compact them, and the files of the
// deepest and the topmost layers show.
func TestDeepImage(t *testing.T) {
	const (
		ref   = "docker.io/library/berth-deep:latest"
		extra = 100
	)
	e := newEnv(t)
	chain := e.importImage(ref, extra)
	if len(chain) != extra+2 {
		t.Fatalf("%d layers", len(chain))
	}
	snaps := e.snapshots()
	for i, c := range chain {
		want := " Committed"
		if i > 0 {
			want = chain[i-1] + " Committed"
		}
		if snaps[c] != want {
			t.Fatalf("layer %d (%s) is listed as %q, want %q", i, c, snaps[c], want)
		}
	}
	// The mount of an active snapshot on the top names every layer: more
	// than a page of options.
	e.Run("snapshot", "--snapshotter", name, "prepare", "probe", chain[len(chain)-1])
	mountCmd := e.Run("snapshot", "--snapshotter", name, "mounts", "/mnt", "probe")
	_, lower, _ := strings.Cut(mountCmd, "lowerdir=")
	lower, _, _ = strings.Cut(lower, ",")
	if n := strings.Count(lower, e.snapRoot()); n != extra+2 || len(mountCmd) <= 4096 {
		t.Errorf("the mount of the deep snapshot has %d lower layers in %d bytes; want %d in over 4096:\n%s", n, len(mountCmd), extra+2, mountCmd)
	}
	e.Run("snapshot", "--snapshotter", name, "rm", "probe")

	check := imageCheck + fmt.Sprintf("; cat /layers/1 /layers/%d; ls /layers | wc -l", extra)
	want := imageWant + fmt.Sprintf("1\n%d\n%d\n", extra, extra)
	for _, shim := range []string{runcShim, berthShim} {
		t.Run(shim, func(t *testing.T) {
			id := "deep-" + strings.ReplaceAll(shim, ".", "-")
			e.RemoveOnCleanup(id)
			out, code := e.Exec(e.runArgs(shim, ref, id, "sh", "-c", check)...)
			if code != 0 || out != want {
				t.Fatalf("ctr run of the %d-layer image: exit status %d, output %q, want 0 and %q", extra+2, code, out, want)
			}
		})
	}
}
