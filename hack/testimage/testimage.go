// Package testimage builds berth's offline test image from a static busybox:
// two deterministic layers (a base and an overlay that exercises OCI
// whiteouts), written as an OCI runtime bundle, an OCI image layout, an OCI
// archive or a docker-archive tarball. Building twice gives the same bytes.
package testimage

import (
	_ "crypto/sha256" // the sha256 implementation go-digest uses
	"encoding/json"
	"fmt"
	"os"
	"runtime"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// DefaultBusybox is where Debian's busybox-static installs its binary.
	DefaultBusybox = "/bin/busybox"
	// DefaultName is the reference the image is stored under.
	DefaultName = "docker.io/library/berth-test:latest"
)

// Options select what goes into the image. The zero value is valid.
type Options struct {
	Busybox string   // static busybox binary to copy; "" means DefaultBusybox
	Name    string   // image reference; "" means DefaultName
	Args    []string // process.args of a bundle's config.json; empty means ["sh"]
	// ExtraLayers adds that many small layers on top of the two: layer i
	// (1-based) adds /layers/<i> holding "<i>\n". It makes deep images, to
	// test stores and mounts with many layers.
	ExtraLayers int
}

// Blob is content-addressed data with its descriptor.
type Blob struct {
	Descriptor ocispec.Descriptor
	Data       []byte
}

func newBlob(mediaType string, data []byte) Blob {
	return Blob{ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}, data}
}

// Layer is one filesystem layer of the image.
type Layer struct {
	Name   string        // "base", "overlay" or "extra-<i>", recorded in the image history
	Tar    []byte        // the uncompressed tar
	DiffID digest.Digest // sha256 of Tar
	Gzip   Blob          // Tar compressed, as stored in an image (tar+gzip media type)
}

// Image is the whole test image: layers, config and manifest.
type Image struct {
	Name     string // the fully qualified reference, e.g. DefaultName
	Layers   []Layer
	Config   Blob // application/vnd.oci.image.config.v1+json
	Manifest Blob // application/vnd.oci.image.manifest.v1+json
}

// Applets returns the busybox applets linked into /bin, beside busybox.
func Applets() []string {
	return []string{
		"cat", "date", "dd", "echo", "env", "false", "grep", "head", "hostname", "httpd",
		"id", "ip", "kill", "ls", "mkdir", "mount", "nc", "printf", "ps", "pwd",
		"readlink", "rm", "seq", "sh", "sleep", "stat", "sync", "test", "top", "touch",
		"true", "uname", "wc", "wget", "yes",
	}
}

// Layers builds the image's two layers.
//
// "base" holds /bin/busybox with its applets as symlinks, the usual top-level
// directories, /etc/passwd, /etc/group, /etc/hosts, /etc/hostname, an empty
// /etc/resolv.conf (tests never use the host's DNS), /etc/berth-deleted and
// /opt/old/a. "overlay" adds /etc/berth-release, deletes /etc/berth-deleted
// with a whiteout and makes /opt/old opaque, adding /opt/old/b. Then come
// opts.ExtraLayers layers named "extra-<i>", each adding /layers/<i>.
func Layers(opts Options) ([]Layer, error) {
	bin := opts.Busybox
	if bin == "" {
		bin = DefaultBusybox
	}
	busybox, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read busybox (install busybox-static): %w", err)
	}

	base := tree{}
	for _, d := range []string{"bin", "dev", "etc", "opt", "opt/old", "proc", "run", "sys", "var"} {
		base.dir(d, 0o755)
	}
	base.dir("root", 0o700)
	base.dir("tmp", 0o1777)
	base.file("bin/busybox", 0o755, busybox)
	for _, a := range Applets() {
		base.symlink("bin/"+a, "busybox")
	}
	base.file("etc/passwd", 0o644, []byte(
		"root:x:0:0:root:/root:/bin/sh\n"+
			"berth:x:1000:1000:berth:/tmp:/bin/sh\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	base.file("etc/group", 0o644, []byte(
		"root:x:0:\n"+
			"tty:x:5:\n"+
			"berth:x:1000:\n"+
			"extra:x:1001:berth\n"+
			"nobody:x:65534:\n"))
	base.file("etc/hosts", 0o644, []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"))
	base.file("etc/hostname", 0o644, []byte("berth\n"))
	base.file("etc/resolv.conf", 0o644, nil)
	base.file("etc/berth-deleted", 0o644, []byte("deleted by the overlay layer\n"))
	base.file("opt/old/a", 0o644, []byte("a\n"))

	overlay := tree{}
	overlay.dir("etc", 0o755)
	overlay.file("etc/berth-release", 0o644, []byte("berth test image\n"))
	overlay.file("etc/"+whiteoutPrefix+"berth-deleted", 0, nil)
	overlay.dir("opt", 0o755)
	overlay.dir("opt/old", 0o755)
	overlay.file("opt/old/"+whiteoutOpaque, 0, nil)
	overlay.file("opt/old/b", 0o644, []byte("b\n"))

	trees := []struct {
		name string
		tree tree
	}{{"base", base}, {"overlay", overlay}}
	for i := 1; i <= opts.ExtraLayers; i++ {
		extra := tree{}
		extra.dir("layers", 0o755)
		extra.file(fmt.Sprintf("layers/%d", i), 0o644, fmt.Appendf(nil, "%d\n", i))
		trees = append(trees, struct {
			name string
			tree tree
		}{fmt.Sprintf("extra-%d", i), extra})
	}
	var layers []Layer
	for _, l := range trees {
		tb, err := l.tree.tarball()
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.name, err)
		}
		gz, err := gzipBytes(tb)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.name, err)
		}
		layers = append(layers, Layer{l.name, tb, digest.FromBytes(tb), newBlob(ocispec.MediaTypeImageLayerGzip, gz)})
	}
	return layers, nil
}

// Build builds the layers, the image config (running sh with PATH set) and
// the manifest.
func Build(opts Options) (*Image, error) {
	name, err := parseReference(opts.Name)
	if err != nil {
		return nil, err
	}
	layers, err := Layers(opts)
	if err != nil {
		return nil, err
	}
	created := epoch()
	config := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config: ocispec.ImageConfig{
			Env:        []string{"PATH=" + defaultPath},
			Cmd:        []string{"sh"},
			WorkingDir: "/",
		},
		RootFS: ocispec.RootFS{Type: "layers"},
	}
	manifest := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
	manifest.SchemaVersion = 2
	for _, l := range layers {
		config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, l.DiffID)
		config.History = append(config.History, ocispec.History{Created: &created, CreatedBy: "berth hack/testimage: " + l.Name})
		manifest.Layers = append(manifest.Layers, l.Gzip.Descriptor)
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("marshal image config: %w", err)
	}
	img := &Image{Name: name.full, Layers: layers, Config: newBlob(ocispec.MediaTypeImageConfig, configJSON)}
	manifest.Config = img.Config.Descriptor
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return nil, fmt.Errorf("marshal manifest: %w", err)
	}
	img.Manifest = newBlob(ocispec.MediaTypeImageManifest, manifestJSON)
	return img, nil
}

// blobs returns the image's config, manifest and layer blobs.
func (img *Image) blobs() []Blob {
	b := []Blob{img.Config, img.Manifest}
	for _, l := range img.Layers {
		b = append(b, l.Gzip)
	}
	return b
}
