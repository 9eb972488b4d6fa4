package testimage

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationContainerdImageName names the image for `ctr image import`.
const AnnotationContainerdImageName = "io.containerd.image.name"

// WriteOCILayout writes the image as an OCI image layout directory:
// oci-layout, index.json and blobs/sha256/.
func WriteOCILayout(dir string, opts Options) error {
	b, err := ociArchive(opts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	defer root.Close()
	if err := extract(root, b); err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	return nil
}

// WriteOCIArchive writes the OCI image layout as a tar stream, the
// oci-archive that `ctr image import` and `docker load` take.
func WriteOCIArchive(w io.Writer, opts Options) error {
	b, err := ociArchive(opts)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write oci archive: %w", err)
	}
	return nil
}

func ociArchive(opts Options) ([]byte, error) {
	img, err := Build(opts)
	if err != nil {
		return nil, err
	}
	ref, err := parseReference(img.Name)
	if err != nil {
		return nil, err
	}
	desc := img.Manifest.Descriptor
	desc.Platform = &ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	desc.Annotations = map[string]string{
		ocispec.AnnotationRefName:     ref.tag,
		AnnotationContainerdImageName: ref.full,
	}
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc}}
	index.SchemaVersion = 2

	t := tree{}
	if err := t.jsonFile("index.json", index); err != nil {
		return nil, err
	}
	if err := t.jsonFile(ocispec.ImageLayoutFile, ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}); err != nil {
		return nil, err
	}
	t.dir(ocispec.ImageBlobsDir, 0o755)
	t.dir(ocispec.ImageBlobsDir+"/sha256", 0o755)
	for _, b := range img.blobs() {
		t.file(ocispec.ImageBlobsDir+"/sha256/"+b.Descriptor.Digest.Encoded(), 0o644, b.Data)
	}
	b, err := t.tarball()
	if err != nil {
		return nil, fmt.Errorf("oci archive: %w", err)
	}
	return b, nil
}

// WriteDockerArchive writes the image as `docker save` does: manifest.json,
// repositories, the config as <hex>.json and each layer as <id>/layer.tar
// (uncompressed) beside its VERSION and json files.
func WriteDockerArchive(w io.Writer, opts Options) error {
	img, err := Build(opts)
	if err != nil {
		return err
	}
	ref, err := parseReference(img.Name)
	if err != nil {
		return err
	}
	var config ocispec.Image
	if err := json.Unmarshal(img.Config.Data, &config); err != nil {
		return fmt.Errorf("docker archive: image config: %w", err)
	}

	configName := img.Config.Descriptor.Digest.Encoded() + ".json"
	t := tree{}
	t.file(configName, 0o644, img.Config.Data)
	var layerPaths []string
	var id, parent digest.Digest
	for i, l := range img.Layers {
		// Docker's legacy layer IDs chain each layer to its parent; the
		// chain ID (sha256 of "parent diffID") has that property.
		id = l.DiffID
		if parent != "" {
			id = digest.FromString(parent.String() + " " + l.DiffID.String())
		}
		v1 := v1Layer{ID: id.Encoded(), Created: epoch(), OS: config.OS, Architecture: config.Architecture}
		if parent != "" {
			v1.Parent = parent.Encoded()
		}
		if i == len(img.Layers)-1 {
			v1.Config = &config.Config
		}
		t.dir(id.Encoded(), 0o755)
		t.file(id.Encoded()+"/VERSION", 0o644, []byte("1.0"))
		if err := t.jsonFile(id.Encoded()+"/json", v1); err != nil {
			return err
		}
		t.file(id.Encoded()+"/layer.tar", 0o644, l.Tar)
		layerPaths = append(layerPaths, id.Encoded()+"/layer.tar")
		parent = id
	}
	manifest := []DockerManifest{{Config: configName, RepoTags: []string{ref.familiar()}, Layers: layerPaths}}
	if err := t.jsonFile("manifest.json", manifest); err != nil {
		return err
	}
	repositories := map[string]map[string]string{ref.repository: {ref.tag: id.Encoded()}}
	if err := t.jsonFile("repositories", repositories); err != nil {
		return err
	}

	b, err := t.tarball()
	if err != nil {
		return fmt.Errorf("docker archive: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write docker archive: %w", err)
	}
	return nil
}

// DockerManifest is one entry of a docker archive's manifest.json.
type DockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// v1Layer is the legacy per-layer json file of a docker archive.
type v1Layer struct {
	ID           string               `json:"id"`
	Parent       string               `json:"parent,omitempty"`
	Created      time.Time            `json:"created"`
	Architecture string               `json:"architecture,omitempty"`
	OS           string               `json:"os,omitempty"`
	Config       *ocispec.ImageConfig `json:"config,omitempty"`
}

// jsonFile adds a regular file holding v as JSON.
func (t tree) jsonFile(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", name, err)
	}
	t.file(name, 0o644, b)
	return nil
}
