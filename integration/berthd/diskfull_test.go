//go:build linux

package berthd

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	diskFullSize  = 24 << 20 // the tmpfs berthd's --root is on
	diskFullLayer = 40 << 20 // the incompressible file of the image too big for it
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted
// (and removed) when the test ends, also when it fails.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(newDir(t), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	})
	return dir
}

// bigImage is an image of one layer holding a file of size bytes. Random
// bytes (a fixed seed) do not compress, so neither the layer's blob nor its
// unpacked file fits on a disk smaller than size; a repeated line
// compresses to almost nothing, so only the unpack fills the disk (not
// zeros: those may be unpacked as a sparse file).
func bigImage(t *testing.T, size int, random bool) v1.Image {
	t.Helper()
	data := make([]byte, size)
	if random {
		rng := rand.New(rand.NewChaCha8([32]byte{'d', 'i', 's', 'k', 'f', 'u', 'l', 'l'}))
		for i := 0; i+8 <= len(data); i += 8 {
			binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
		}
	} else {
		line := []byte("berth: a disk full of lines\n")
		for i := 0; i < len(data); i += copy(data[i:], line) {
		}
	}
	var tgz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&tgz, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Mode: 0o644, Size: int64(size)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	blob := tgz.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = []string{"/big"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// checkNothingLeft checks that a failed operation left nothing on the
// disk: no blob, no partial download, no snapshot, and the disk as
// empty as a fresh daemon's.
func (d *daemon) checkNothingLeft(t *testing.T, what string, baseline uint64) {
	t.Helper()
	for _, dir := range []string{
		filepath.Join(d.root, "images", "content", "blobs", "sha256"),
		filepath.Join(d.root, "images", "content", "ingest"),
		filepath.Join(d.root, "snapshotter", "snapshots"),
		filepath.Join(d.root, "snapshotter", "staging"),
	} {
		ents, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Errorf("after %s: %v", what, err)
			continue
		}
		for _, e := range ents {
			t.Errorf("after %s: %s is left in %s", what, e.Name(), dir)
		}
	}
	if used := diskUsed(t, d.root); used > baseline+1<<20 {
		t.Errorf("after %s: %d KiB used on the disk, %d KiB before", what, used>>10, baseline>>10)
	}
	if r := d.berth("", "system", "df"); r.code != 0 {
		t.Errorf("after %s: system df: %v", what, r)
	} else if r.stdout == "" {
		t.Errorf("after %s: system df printed nothing", what)
	}
}

func diskUsed(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return (st.Blocks - st.Bfree) * uint64(st.Bsize)
}

// checkServing checks that the daemon answers and lists no image.
func (d *daemon) checkServing(t *testing.T, what string) {
	t.Helper()
	if r := d.berth("", "version"); r.code != 0 || !strings.Contains(r.stdout, "Server:") {
		t.Errorf("after %s: version: %v", what, r)
	}
	if r := d.berth("", "images", "-q"); r.code != 0 || strings.TrimSpace(r.stdout) != "" {
		t.Errorf("after %s: images -q: %v", what, r)
	}
}

// checkDiskFull checks the failure of an operation that ran out of disk:
// docker's error (exit 1, "Error response from daemon:" and the cause).
func checkDiskFull(t *testing.T, what string, r result) {
	t.Helper()
	if r.code != 1 || !strings.Contains(r.stderr, "Error response from daemon:") || !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("%s on a full disk: want exit 1 and %q, got %v", what, "no space left on device", r)
		return
	}
	// Only the error: no log lines of the client's RPC library.
	if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 {
		t.Errorf("%s on a full disk: stderr holds more than the error:\n%s", what, r.stderr)
	}
	t.Logf("%s: %s", what, strings.TrimSpace(r.stderr))
}

// ociArchive writes img as an oci-archive (an OCI image layout in a tar)
// named ref.
func ociArchive(t *testing.T, img v1.Image, ref, file string) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(file), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": ref})); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if out, err := exec.Command("tar", "-C", dir, "-cf", file, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
}

// TestDiskFull: berthd's --root on a small tmpfs. Pulls and loads of
// images too big for it (a blob that does not fit; a small blob whose
// unpacked layer does not) fail with docker's error naming the full
// disk; the daemon serves on, nothing half-made stays (no blob, no
// partial download, no snapshot, no disk used), and a small image pulls
// after.
func TestDiskFull(t *testing.T) {
	reg, small := withRegistry(t)
	disk := mountTmpfs(t, diskFullSize)
	d := startDaemon(t, options{root: filepath.Join(disk, "root")})
	baseline := diskUsed(t, disk)

	for _, tc := range []struct {
		name   string
		random bool
	}{
		{"blob", true},      // the download fills the disk
		{"unpacked", false}, // the unpack does
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := bigImage(t, diskFullLayer, tc.random)
			ref := reg.Addr + "/berth-big-" + tc.name + ":latest"
			if err := reg.PushImage(context.Background(), img, ref); err != nil {
				t.Fatal(err)
			}
			tag, err := name.NewTag(ref, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			dockerArchive := filepath.Join(d.dir, tc.name+"-docker.tar")
			if err := tarball.WriteToFile(dockerArchive, tag, img); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(dockerArchive)
			ociFile := filepath.Join(d.dir, tc.name+"-oci.tar")
			ociArchive(t, img, ref, ociFile)
			defer os.Remove(ociFile)

			checkDiskFull(t, "pull", d.berth("", "pull", ref))
			d.checkServing(t, "a pull that filled the disk")
			d.checkNothingLeft(t, "a pull that filled the disk", baseline)
			// Again: the same failure, not a worse one.
			checkDiskFull(t, "a second pull", d.berth("", "pull", ref))
			d.checkNothingLeft(t, "a second pull that filled the disk", baseline)

			for _, archive := range []string{dockerArchive, ociFile} {
				what := "load of " + filepath.Base(archive)
				checkDiskFull(t, what, d.berth("", "load", "-i", archive))
				d.checkServing(t, "a "+what+" that filled the disk")
				d.checkNothingLeft(t, "a "+what+" that filled the disk", baseline)
			}
		})
	}

	// The disk is usable: a small image pulls, and goes.
	if out := d.run("pull", "-q", small); out != small+"\n" {
		t.Errorf("pull of a small image after the failures: %q", out)
	}
	if ids := d.imageIDs(); len(ids) != 1 {
		t.Errorf("images after pulling %s: %q", small, ids)
	}
	d.run("rmi", small)
	d.checkNothingLeft(t, "rmi of the small image", baseline)
}
