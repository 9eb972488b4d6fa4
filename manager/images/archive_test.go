package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/hack/testimage"
)

// TestLoadTestImageArchives loads both archives hack/testimage writes.
func TestLoadTestImageArchives(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(io.Writer, testimage.Options) error
	}{
		{"docker", testimage.WriteDockerArchive},
		{"oci", testimage.WriteOCIArchive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			opts := testimage.Options{Name: "docker.io/library/berth-test:" + tc.name, ExtraLayers: 1}
			var buf bytes.Buffer
			if err := tc.write(&buf, opts); err != nil {
				t.Fatal(err)
			}
			res, err := e.svc.Load(e.ctx, &buf, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Names, []string{"berth-test:" + tc.name}) {
				t.Errorf("loaded %+v", res)
			}
			built, _ := testimage.Build(opts)
			img, err := e.svc.Get(e.ctx, "berth-test:"+tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if img.ID != built.Config.Descriptor.Digest {
				t.Errorf("ID %s, want %s", img.ID, built.Config.Descriptor.Digest)
			}
			if tc.name == "oci" && img.Target.Digest != built.Manifest.Descriptor.Digest {
				t.Errorf("target %s, want the manifest %s", img.Target.Digest, built.Manifest.Descriptor.Digest)
			}
			e.rootfs(img.ChainID, func(root string) { checkTestRootfs(t, root, 1) })
		})
	}
}

// TestSaveLoadRoundTrip saves an image in each format, loads it into
// another store and gets the same image; the archive has what each format
// needs.
func TestSaveLoadRoundTrip(t *testing.T) {
	for _, format := range []ArchiveFormat{FormatDocker, FormatOCI} {
		t.Run(string(format), func(t *testing.T) {
			src := newEnv(t, envOpts{})
			img := src.loadTestImage("berth-test:v1", testimage.Options{ExtraLayers: 1})
			if err := src.svc.Tag(src.ctx, "berth-test:v1", "127.0.0.1:5000/other:v2"); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := src.svc.Save(src.ctx, &buf, []string{"berth-test:v1", "127.0.0.1:5000/other:v2"}, SaveOptions{Format: format}); err != nil {
				t.Fatal(err)
			}
			files := tarFiles(t, buf.Bytes())
			if _, ok := files["index.json"]; !ok {
				t.Error("no index.json")
			}
			if _, ok := files["oci-layout"]; !ok {
				t.Error("no oci-layout")
			}
			mj, hasManifest := files["manifest.json"]
			if hasManifest != (format == FormatDocker) {
				t.Errorf("manifest.json present: %v", hasManifest)
			}
			if hasManifest {
				var dms []dockerManifest
				if err := json.Unmarshal(mj, &dms); err != nil {
					t.Fatal(err)
				}
				slices.Sort(dms[0].RepoTags)
				if len(dms) != 1 || !slices.Equal(dms[0].RepoTags, []string{"127.0.0.1:5000/other:v2", "berth-test:v1"}) || len(dms[0].Layers) != 3 {
					t.Errorf("manifest.json: %+v", dms)
				}
			}

			dst := newEnv(t, envOpts{})
			res, err := dst.svc.Load(dst.ctx, bytes.NewReader(buf.Bytes()), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(res.Names)
			if !slices.Equal(res.Names, []string{"127.0.0.1:5000/other:v2", "berth-test:v1"}) {
				t.Errorf("loaded %+v", res)
			}
			got, err := dst.svc.Get(dst.ctx, "127.0.0.1:5000/other:v2")
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != img.ID || got.Target.Digest != img.Target.Digest {
				t.Errorf("loaded %s (target %s), saved %s (target %s)", got.ID, got.Target.Digest, img.ID, img.Target.Digest)
			}
			if !slices.Equal(dst.blobs(), src.blobs()) {
				t.Errorf("blobs differ: %v, %v", dst.blobs(), src.blobs())
			}
			dst.rootfs(got.ChainID, func(root string) { checkTestRootfs(t, root, 1) })

			// By ID, an image is saved without names and loads as such.
			buf.Reset()
			if err := src.svc.Save(src.ctx, &buf, []string{img.ID.Encoded()[:12]}, SaveOptions{Format: format}); err != nil {
				t.Fatal(err)
			}
			third := newEnv(t, envOpts{})
			res, err = third.svc.Load(third.ctx, &buf, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Names) != 0 || !slices.Equal(res.IDs, []digest.Digest{img.ID}) {
				t.Errorf("loaded by ID: %+v", res)
			}
			if g, err := third.svc.Get(third.ctx, img.ID.String()); err != nil || !g.Dangling {
				t.Errorf("image loaded without name: %+v %v", g, err)
			}
		})
	}
}

// TestLoadBad: truncated, corrupt and foreign archives fail clearly and
// leave nothing.
func TestLoadBad(t *testing.T) {
	var docker, oci bytes.Buffer
	if err := testimage.WriteDockerArchive(&docker, testimage.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := testimage.WriteOCIArchive(&oci, testimage.Options{}); err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(oci.Bytes())
	// Flip a byte inside the biggest blob (the base layer's data).
	corrupt[len(corrupt)/3] ^= 0xff
	var notImage bytes.Buffer
	tw := tar.NewWriter(&notImage)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg})
	tw.Write([]byte("hello"))
	tw.Close()

	for _, tc := range []struct {
		name  string
		data  []byte
		is    func(error) bool
		words string
	}{
		{"docker truncated", docker.Bytes()[:docker.Len()/2], errdefs.IsInvalidArgument, "truncated"},
		{"oci truncated", oci.Bytes()[:oci.Len()/2], errdefs.IsInvalidArgument, "truncated"},
		{"oci truncated late", oci.Bytes()[:oci.Len()-1024-512-256], errdefs.IsInvalidArgument, "truncated"},
		{"oci corrupt", corrupt, errdefs.IsInvalidArgument, "does not match"},
		{"not an image", notImage.Bytes(), errdefs.IsInvalidArgument, "manifest.json"},
		{"not a tar", []byte(strings.Repeat("garbage ", 200)), errdefs.IsInvalidArgument, ""},
		{"empty", nil, errdefs.IsInvalidArgument, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			_, err := e.svc.Load(e.ctx, bytes.NewReader(tc.data), LoadOptions{})
			if err == nil {
				t.Fatal("load succeeded")
			}
			t.Logf("error: %v", err)
			if !tc.is(err) {
				t.Errorf("error %q is not of the expected kind", err)
			}
			if !strings.Contains(err.Error(), tc.words) {
				t.Errorf("error %q does not say %q", err, tc.words)
			}
			e.checkClean()
		})
	}
}

func tarFiles(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out[hdr.Name] = data
	}
}
