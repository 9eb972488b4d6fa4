package images

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseReference(t *testing.T) {
	const d = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		in, full, familiar string
	}{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"},
		{"library/busybox", "docker.io/library/busybox:latest", "busybox:latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"},
		{"index.docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"},
		{"user/app", "docker.io/user/app:latest", "user/app:latest"},
		{"localhost/app", "localhost/app:latest", "localhost/app:latest"},
		{"localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1"},
		{"127.0.0.1:5000/a/b/c:v1", "127.0.0.1:5000/a/b/c:v1", "127.0.0.1:5000/a/b/c:v1"},
		{"quay.io/org/app", "quay.io/org/app:latest", "quay.io/org/app:latest"},
		{"[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"},
		{"busybox@" + d, "docker.io/library/busybox@" + d, "busybox@" + d},
		{"busybox:1.36@" + d, "docker.io/library/busybox:1.36@" + d, "busybox:1.36@" + d},
		{"a_b.c-d__e---f", "docker.io/library/a_b.c-d__e---f:latest", "a_b.c-d__e---f:latest"},
		{"Host/app", "Host/app:latest", "Host/app:latest"},
	} {
		r, err := ParseReference(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		r = r.WithDefaultTag()
		if r.String() != tc.full {
			t.Errorf("%q normalises to %q, want %q", tc.in, r.String(), tc.full)
		}
		if r.Familiar() != tc.familiar {
			t.Errorf("%q shows as %q, want %q", tc.in, r.Familiar(), tc.familiar)
		}
	}
	for _, tc := range []struct{ in, says string }{
		{"", "empty"},
		{"Busybox", "must be lowercase"},
		{"busybox:", "bad tag"},
		{"busybox:-x", "bad tag"},
		{"busybox:" + strings.Repeat("a", 129), "bad tag"},
		{"busybox@sha256:abc", "bad digest"},
		{"busy..box", "bad repository name component"},
		{"busybox/", "bad repository name component"},
		{"-busybox", "bad repository name component"},
		{"a/" + strings.Repeat("b", 300), "at most 255"},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "image ID"},
		{"host_name:5000/app", "bad registry"},
		{"http://registry/app", ""},
	} {
		_, err := ParseReference(tc.in)
		if err == nil {
			t.Errorf("%q parsed", tc.in)
			continue
		}
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: error %v is not InvalidArgument", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: error %q does not say %q", tc.in, err, tc.says)
		}
	}
}

func TestPlatform(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"linux/amd64", "linux/amd64"},
		{"linux/arm64/v8", "linux/arm64"},
		{"linux/arm", "linux/arm/v7"},
		{"linux/aarch64", "linux/arm64"},
		{"arm64", "linux/arm64"},
	} {
		p, err := ParsePlatform(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if platformString(p) != tc.want {
			t.Errorf("%q: %s, want %s", tc.in, platformString(p), tc.want)
		}
	}
	if _, err := ParsePlatform("linux//"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("linux//: %v", err)
	}
}

func TestSelectManifest(t *testing.T) {
	idx := indexOf(
		platformDesc("linux", "amd64", ""),
		platformDesc("linux", "arm", "v6"),
		platformDesc("linux", "arm", "v7"),
		platformDesc("linux", "arm64", "v8"),
		platformDesc("unknown", "unknown", ""),
	)
	for _, tc := range []struct{ want, got string }{
		{"linux/amd64", "linux/amd64"},
		{"linux/arm/v7", "linux/arm/v7"},
		{"linux/arm64", "linux/arm64"},
	} {
		p, _ := ParsePlatform(tc.want)
		d, err := selectManifest(idx, p)
		if err != nil {
			t.Fatalf("%s: %v", tc.want, err)
		}
		if s := platformString(normalizePlatform(*d.Platform)); s != tc.got {
			t.Errorf("%s: chose %s", tc.want, s)
		}
	}
	p, _ := ParsePlatform("linux/s390x")
	if _, err := selectManifest(idx, p); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/arm/v7") {
		t.Errorf("s390x: %v", err)
	}
}

func platformDesc(os, arch, variant string) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(os + arch + variant), Size: 1,
		Platform: &ocispec.Platform{OS: os, Architecture: arch, Variant: variant},
	}
}

func indexOf(ds ...ocispec.Descriptor) ocispec.Index { return ocispec.Index{Manifests: ds} }
