package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func rootfsTar(t *testing.T, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name, data string
		dir        bool
	}{{"etc", "", true}, {"etc/hostname", "imported\n", false}, {"bin", "", true}, {"bin/tool", "#!/bin/sh\n", false}} {
		h := &tar.Header{Name: f.name, Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		if f.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.data))
	}
	tw.Close()
	if !gz {
		return buf.Bytes()
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(buf.Bytes())
	zw.Close()
	return z.Bytes()
}

func TestImport(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, gz := range []bool{false, true} {
		img, err := e.svc.Import(e.ctx, bytes.NewReader(rootfsTar(t, gz)), ImportOptions{
			Ref: "imported:v1", Source: "rootfs.tar",
			Changes: []string{`CMD ["/bin/tool", "x"]`, "ENV A=1 B=\"two words\"", "WORKDIR /etc", "EXPOSE 80", "LABEL k=v"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !img.Unpacked || len(img.Layers) != 1 || img.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
			t.Errorf("imported image: %+v", img)
		}
		c := img.Config.Config
		if !slices.Equal(c.Cmd, []string{"/bin/tool", "x"}) || !slices.Equal(c.Env, []string{"A=1", "B=two words"}) ||
			c.WorkingDir != "/etc" || c.Labels["k"] != "v" {
			t.Errorf("config: %+v", c)
		}
		if _, ok := c.ExposedPorts["80/tcp"]; !ok {
			t.Errorf("ports: %v", c.ExposedPorts)
		}
		if h := img.Config.History; len(h) != 1 || h[0].Comment != "Imported from rootfs.tar" {
			t.Errorf("history %+v", h)
		}
		e.rootfs(img.ChainID, func(root string) {
			if b, err := readFile(root, "etc/hostname"); err != nil || b != "imported\n" {
				t.Errorf("etc/hostname: %q %v", b, err)
			}
		})
	}
	// Imported twice, the first is dangling now (created times differ).
	list, _ := e.svc.List(e.ctx)
	if len(list) != 2 {
		t.Errorf("%d images, want 2", len(list))
	}
	// No name: dangling.
	img, err := e.svc.Import(e.ctx, bytes.NewReader(rootfsTar(t, false)), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !img.Dangling {
		t.Errorf("import without a name: %+v", img)
	}

	for _, tc := range []struct {
		name string
		data []byte
		opts ImportOptions
		says string
	}{
		{"garbage", []byte(strings.Repeat("x", 2000)), ImportOptions{Ref: "bad:v1"}, "not a valid tarball"},
		{"bad change", rootfsTar(t, false), ImportOptions{Changes: []string{"RUN rm -rf /"}}, "can be changed"},
		{"bad name", rootfsTar(t, false), ImportOptions{Ref: "Bad:v1"}, "lowercase"},
	} {
		before := e.blobs()
		_, err := e.svc.Import(e.ctx, bytes.NewReader(tc.data), tc.opts)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if after := e.blobs(); !slices.Equal(before, after) {
			t.Errorf("%s: blobs changed: %v -> %v", tc.name, before, after)
		}
	}
	if _, err := e.svc.Prune(e.ctx, PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	e.checkClean()
}
