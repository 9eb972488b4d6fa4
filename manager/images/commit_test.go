package images

import (
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestCommittedConfig(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := ocispec.Image{
		Config: ocispec.ImageConfig{
			Cmd:    []string{"sh"},
			Env:    []string{"PATH=/bin", "A=1"},
			Labels: map[string]string{"base": "yes"},
		},
		RootFS:  ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("l1")}},
		History: []ocispec.History{{CreatedBy: "base"}},
	}
	run := base.Config
	run.Cmd = []string{"sh", "-c", "echo hi > /f"}
	cfg, err := committedConfig(base, CommitOptions{
		Config:    &run,
		Changes:   []string{`CMD ["cat","/f"]`, "ENV A=2 B=3", "LABEL stage=test", "EXPOSE 80", "WORKDIR /w", "USER nobody"},
		Author:    "Ann",
		Comment:   "msg",
		CreatedBy: "sh -c echo hi > /f",
	}, created)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if !slices.Equal(c.Cmd, []string{"cat", "/f"}) || !slices.Equal(c.Env, []string{"PATH=/bin", "A=2", "B=3"}) ||
		c.Labels["stage"] != "test" || c.Labels["base"] != "yes" || c.WorkingDir != "/w" || c.User != "nobody" {
		t.Errorf("config: %+v", c)
	}
	if _, ok := c.ExposedPorts["80/tcp"]; !ok {
		t.Errorf("exposed ports: %v", c.ExposedPorts)
	}
	if cfg.Author != "Ann" || !cfg.Created.Equal(created) {
		t.Errorf("author %q, created %v", cfg.Author, cfg.Created)
	}
	if n := len(cfg.History); n != 2 || cfg.History[1].Comment != "msg" || cfg.History[1].CreatedBy != "sh -c echo hi > /f" || cfg.History[1].Author != "Ann" {
		t.Errorf("history: %+v", cfg.History)
	}
	// The base is untouched.
	if len(base.History) != 1 || base.Config.Labels["stage"] != "" || !slices.Equal(base.Config.Env, []string{"PATH=/bin", "A=1"}) {
		t.Errorf("the base config changed: %+v", base)
	}
	if len(cfg.RootFS.DiffIDs) != 1 {
		t.Errorf("committedConfig changed the diff IDs: %v", cfg.RootFS.DiffIDs)
	}

	if _, err := committedConfig(base, CommitOptions{Changes: []string{"RUN rm -rf /"}}, created); err == nil {
		t.Error("a RUN change was taken")
	}
	// Without a config the base's is kept.
	cfg, err = committedConfig(base, CommitOptions{}, created)
	if err != nil || !slices.Equal(cfg.Config.Cmd, []string{"sh"}) {
		t.Errorf("no config: %v %v", cfg.Config.Cmd, err)
	}
}

func TestOCILayer(t *testing.T) {
	d := ocispec.Descriptor{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: digest.FromString("x"), Size: 3}
	if got := ociLayer(d); got.MediaType != ocispec.MediaTypeImageLayerGzip || got.Digest != d.Digest || got.Size != 3 {
		t.Errorf("ociLayer: %+v", got)
	}
}
