package images

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The docker media types beside the OCI ones.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Sig   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == mediaTypeDockerManifestList
}

func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mediaTypeDockerManifest
}

func isSchema1(mt string) bool {
	return mt == mediaTypeDockerSchema1 || mt == mediaTypeDockerSchema1Sig
}

// sniffMediaType finds the media type of a manifest or index from its JSON,
// for registries and archives that do not say.
func sniffMediaType(b []byte) string {
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     json.RawMessage   `json:"manifests"`
		Config        json.RawMessage   `json:"config"`
		Layers        json.RawMessage   `json:"layers"`
		FSLayers      []json.RawMessage `json:"fsLayers"`
	}
	if json.Unmarshal(b, &probe) != nil {
		return ""
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.SchemaVersion == 1 || probe.FSLayers != nil:
		return mediaTypeDockerSchema1
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case probe.Config != nil:
		return ocispec.MediaTypeImageManifest
	}
	return ""
}

// manifestMediaType is the media type a blob of a manifest or index has:
// the one its descriptor says, else the one its JSON says.
func manifestMediaType(declared string, b []byte) string {
	if isIndex(declared) || isManifest(declared) || isSchema1(declared) {
		return declared
	}
	return sniffMediaType(b)
}

func parseManifest(d digest.Digest, b []byte) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest %s is not valid JSON: %v: %w", d, err, errdefs.ErrDataLoss)
	}
	if m.Config.Digest.Validate() != nil {
		return m, fmt.Errorf("manifest %s has no valid config: %w", d, errdefs.ErrDataLoss)
	}
	for _, l := range m.Layers {
		if l.Digest.Validate() != nil {
			return m, fmt.Errorf("manifest %s has a layer with a bad digest %q: %w", d, l.Digest, errdefs.ErrDataLoss)
		}
	}
	return m, nil
}

func parseIndex(d digest.Digest, b []byte) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("index %s is not valid JSON: %v: %w", d, err, errdefs.ErrDataLoss)
	}
	for _, m := range idx.Manifests {
		if m.Digest.Validate() != nil {
			return idx, fmt.Errorf("index %s has a manifest with a bad digest %q: %w", d, m.Digest, errdefs.ErrDataLoss)
		}
	}
	return idx, nil
}

func parseConfig(d digest.Digest, b []byte) (ocispec.Image, error) {
	var c ocispec.Image
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("image config %s is not valid JSON: %v: %w", d, err, errdefs.ErrDataLoss)
	}
	return c, nil
}

// isLayer tells the layer media types berth unpacks.
func isLayer(mt string) bool {
	switch mt {
	case mediaTypeDockerLayerGzip, mediaTypeDockerLayer, mediaTypeDockerForeignLayer:
		return true
	}
	return strings.HasPrefix(mt, "application/vnd.oci.image.layer.")
}

// hostPlatform is the platform of this machine.
func hostPlatform() ocispec.Platform {
	return normalizePlatform(ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
}

// normalizePlatform gives architectures their canonical names and
// variants, as image indexes write them.
func normalizePlatform(p ocispec.Platform) ocispec.Platform {
	p.OS = strings.ToLower(p.OS)
	switch strings.ToLower(p.Architecture) {
	case "x86_64", "x86-64", "amd64":
		p.Architecture = "amd64"
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "8" || p.Variant == "v8" {
			p.Variant = ""
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		if p.Variant == "" {
			p.Variant = "v7"
		} else if !strings.HasPrefix(p.Variant, "v") {
			p.Variant = "v" + p.Variant
		}
	case "i386", "386":
		p.Architecture = "386"
	}
	return p
}

// platformScore ranks how well have fits want: 0 is no fit, higher is
// better. An exact variant beats a lower one that this CPU also runs
// (arm v6 on v7), which beats a manifest that names no variant.
func platformScore(want ocispec.Platform, have *ocispec.Platform) int {
	if have == nil {
		return 0
	}
	h := normalizePlatform(*have)
	if h.OS != want.OS || h.Architecture != want.Architecture {
		return 0
	}
	if h.Variant == want.Variant {
		return 100
	}
	if h.Variant == "" {
		return 50
	}
	if want.Architecture == "arm" && strings.HasPrefix(want.Variant, "v") && strings.HasPrefix(h.Variant, "v") && h.Variant < want.Variant {
		return 40 + int(h.Variant[1]-'0')
	}
	return 0
}

// selectManifest picks the manifest of idx for the platform.
func selectManifest(idx ocispec.Index, plat ocispec.Platform) (ocispec.Descriptor, error) {
	best, bestScore := -1, 0
	var seen []string
	for i, m := range idx.Manifests {
		if !isManifest(m.MediaType) && m.MediaType != "" {
			continue // nested indexes and attestations are not images to run
		}
		if m.Platform != nil {
			if m.Platform.OS == "unknown" {
				continue // buildkit's attestation manifests
			}
			seen = append(seen, platformString(*m.Platform))
		}
		if s := platformScore(plat, m.Platform); s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return ocispec.Descriptor{}, fmt.Errorf("no image for %s (the image has %s): pull with --platform to choose one: %w",
			platformString(plat), strings.Join(seen, ", "), errdefs.ErrNotFound)
	}
	return idx.Manifests[best], nil
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// chainIDs computes the OCI chain IDs of a stack of layers' diff IDs: the
// first is its diff ID, each next one the digest of "parent diffID". A
// layer's snapshot is named by its chain ID, so images sharing a base
// share its snapshots.
func chainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// imageManifest is an image as the content store holds it: the manifest
// for the platform under its record's target, and what it names.
type imageManifest struct {
	Target   ocispec.Descriptor // the record's target (index or manifest)
	Manifest ocispec.Descriptor
	Parsed   ocispec.Manifest
	ConfigB  []byte
	Config   ocispec.Image
}

// resolveLocal reads the manifest of target for plat from the content
// store, with its config.
func (s *Service) resolveLocal(ctx context.Context, target ocispec.Descriptor, plat ocispec.Platform) (*imageManifest, error) {
	desc := target
	for depth := 0; ; depth++ {
		if depth > 4 {
			return nil, fmt.Errorf("image %s: indexes nested too deep: %w", target.Digest, errdefs.ErrInvalidArgument)
		}
		b, err := s.content.ReadBlob(ctx, desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", target.Digest, err)
		}
		mt := manifestMediaType(desc.MediaType, b)
		if isIndex(mt) {
			idx, err := parseIndex(desc.Digest, b)
			if err != nil {
				return nil, err
			}
			// Only the platform's manifest is present in the store; choose
			// among those that are, so that an image pulled for another
			// platform (--platform) is still found.
			var present ocispec.Index
			for _, m := range idx.Manifests {
				if s.content.Exists(ctx, m.Digest) {
					present.Manifests = append(present.Manifests, m)
				}
			}
			next, err := selectManifest(present, plat)
			if err != nil && len(present.Manifests) == 1 {
				next, err = present.Manifests[0], nil
			}
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", target.Digest, err)
			}
			desc = next
			continue
		}
		if !isManifest(mt) {
			return nil, fmt.Errorf("image %s: unsupported manifest type %q: %w", target.Digest, mt, errdefs.ErrNotImplemented)
		}
		m, err := parseManifest(desc.Digest, b)
		if err != nil {
			return nil, err
		}
		cb, err := s.content.ReadBlob(ctx, m.Config.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: config: %w", target.Digest, err)
		}
		c, err := parseConfig(m.Config.Digest, cb)
		if err != nil {
			return nil, err
		}
		desc.MediaType = mt
		return &imageManifest{Target: target, Manifest: desc, Parsed: m, ConfigB: cb, Config: c}, nil
	}
}

// children lists the descriptors a manifest or index blob names (for GC,
// save and push).
func children(mt string, d digest.Digest, b []byte) ([]ocispec.Descriptor, error) {
	mt = manifestMediaType(mt, b)
	switch {
	case isIndex(mt):
		idx, err := parseIndex(d, b)
		if err != nil {
			return nil, err
		}
		return idx.Manifests, nil
	case isManifest(mt):
		m, err := parseManifest(d, b)
		if err != nil {
			return nil, err
		}
		return append([]ocispec.Descriptor{m.Config}, m.Layers...), nil
	}
	return nil, nil
}
