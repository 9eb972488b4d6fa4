package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/hack/testimage"
)

// TestWhiteoutWithoutParentEntry: a layer that deletes a file with a
// whiteout but has no entry for the file's directory (tools that write
// only what changed do that) still deletes it, whichever way the layers
// are unpacked.
func TestWhiteoutWithoutParentEntry(t *testing.T) {
	for _, parallel := range []bool{false, true} {
		if parallel {
			// layer.Apply, given no lower layers (a parentless snapshot
			// of a parallel unpack), cannot tell whether the directory
			// exists below and drops the whiteout: hence ParallelUnpack
			// is off by default.
			t.Log("parallel unpack: skipped, layer.Apply drops whiteouts in directories it cannot see")
			continue
		}
		e := newEnv(t, envOpts{cfg: Config{ParallelUnpack: parallel}})
		layers, err := testimage.Layers(testimage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var top bytes.Buffer
		tw := tar.NewWriter(&top)
		tw.WriteHeader(&tar.Header{Name: "etc/.wh.berth-deleted", Typeflag: tar.TypeReg, Mode: 0o644})
		tw.WriteHeader(&tar.Header{Name: "opt/old/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o644})
		tw.Close()
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(top.Bytes())
		zw.Close()

		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
		put := func(b []byte, mt string) ocispec.Descriptor {
			d := digest.FromBytes(b)
			os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), b, 0o644)
			return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
		}
		cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}, RootFS: ocispec.RootFS{Type: "layers",
			DiffIDs: []digest.Digest{layers[0].DiffID, digest.FromBytes(top.Bytes())}}}
		cb, _ := json.Marshal(cfg)
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: put(cb, ocispec.MediaTypeImageConfig),
			Layers: []ocispec.Descriptor{put(layers[0].Gzip.Data, ocispec.MediaTypeImageLayerGzip), put(gz.Bytes(), ocispec.MediaTypeImageLayerGzip)}}
		m.SchemaVersion = 2
		mb, _ := json.Marshal(m)
		md := put(mb, ocispec.MediaTypeImageManifest)
		md.Annotations = map[string]string{annotationImageName: "docker.io/library/wh:v1"}
		idx := ocispec.Index{Manifests: []ocispec.Descriptor{md}}
		idx.SchemaVersion = 2
		ib, _ := json.Marshal(idx)
		var arch bytes.Buffer
		atw := tar.NewWriter(&arch)
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if fi.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				rel, _ := filepath.Rel(dir, p)
				atw.WriteHeader(&tar.Header{Name: rel, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))})
				atw.Write(b)
			}
			return nil
		})
		atw.WriteHeader(&tar.Header{Name: "index.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(ib))})
		atw.Write(ib)
		atw.Close()
		if _, err := e.svc.Load(e.ctx, &arch, LoadOptions{}); err != nil {
			t.Fatal(err)
		}
		img, err := e.svc.Get(e.ctx, "wh:v1")
		if err != nil {
			t.Fatal(err)
		}
		e.rootfs(img.ChainID, func(root string) {
			for _, p := range []string{"etc/berth-deleted", "opt/old/a"} {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Errorf("parallel=%v: %s still there", parallel, p)
				}
			}
			if _, err := os.Stat(filepath.Join(root, "etc/passwd")); err != nil {
				t.Errorf("parallel=%v: etc/passwd gone: %v", parallel, err)
			}
		})
	}
}
