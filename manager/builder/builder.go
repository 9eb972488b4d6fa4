// Package builder builds images from Dockerfiles as docker's classic
// builder does: each instruction a step on the image the step before
// made. RUN runs in a container made from the current image, which is
// committed as the next image; COPY and ADD copy from the build context
// into such a container; the other instructions change only the config.
// It works over the image and container libraries (the Images and
// Containers interfaces; berthd passes manager/images and
// manager/containers).
package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/manager/builder/dockerignore"
	"github.com/berth-project/berth/manager/containers"
	"github.com/berth-project/berth/manager/images"
	"github.com/berth-project/berth/manager/log"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// Images is what the builder needs of the image library.
type Images interface {
	Get(ctx context.Context, ref string) (images.Image, error)
	Commit(ctx context.Context, base string, layerTar io.Reader, opts images.CommitOptions) (images.Image, error)
	Import(ctx context.Context, r io.Reader, opts images.ImportOptions) (images.Image, error)
	Tag(ctx context.Context, source, target string) error
	Remove(ctx context.Context, ref string, opts images.RemoveOptions) ([]images.RemoveResult, error)
}

// Containers is what the builder needs of the container library.
type Containers interface {
	Create(ctx context.Context, name string, cfg *containersv1.Config) (*containersv1.Container, error)
	Start(ctx context.Context, ref string) error
	Wait(ctx context.Context, ref, condition string) (int32, error)
	Logs(ctx context.Context, ref string, o containers.LogsOptions, send func(*containersv1.LogEntry) error) error
	Remove(ctx context.Context, ref string, force, volumes bool) error
	Commit(ctx context.Context, ref string, opts containers.CommitOptions) (images.Image, error)
	CopyTo(ctx context.Context, ref string, opts containers.CopyToOptions, r io.Reader) error
	CopyFrom(ctx context.Context, ref, p string, opts containers.CopyFromOptions, stat func(containers.PathStat) error, w io.Writer) error
}

// Builder builds images.
type Builder struct {
	images     Images
	containers Containers
	tempDir    string
}

// New returns a builder over the libraries; build contexts are unpacked
// under tempDir ("" is the system's).
func New(imgs Images, ctrs Containers, tempDir string) *Builder {
	return &Builder{images: imgs, containers: ctrs, tempDir: tempDir}
}

// Options are docker build's.
type Options struct {
	// Context is the build context, a tar; nil with Dockerfile given
	// (docker build -).
	Context io.Reader
	// DockerfilePath is the Dockerfile's path in the context ("" is
	// "Dockerfile"); Dockerfile, when not nil, is the Dockerfile itself.
	DockerfilePath string
	Dockerfile     []byte
	Tags           []string
	// BuildArgs are --build-arg values; a nil value is a KEY given without
	// one that the client's environment lacks.
	BuildArgs   map[string]*string
	NoCache     bool
	Remove      bool // --rm
	ForceRemove bool // --force-rm
	// NetworkMode of RUN: "" (the daemon's default: bridge, or none on a
	// daemon without networking, as docker's), "bridge", "host" or "none".
	NetworkMode string
	Quiet       bool
	// Out receives the output: step lines and RUN's output.
	Out io.Writer
}

// Build builds the image and returns it, named by opts.Tags.
func (b *Builder) Build(ctx context.Context, opts Options) (_ images.Image, retErr error) {
	if opts.Out == nil || opts.Quiet {
		opts.Out = io.Discard
	}
	switch opts.NetworkMode {
	case "default":
		opts.NetworkMode = ""
	case "", "none", "bridge", "host":
	default:
		return images.Image{}, fmt.Errorf("network mode %q not supported by the builder: none, bridge or host: %w", opts.NetworkMode, errdefs.ErrInvalidArgument)
	}
	for _, t := range opts.Tags {
		ref, err := images.ParseReference(t)
		if err != nil || ref.Digest != "" {
			return images.Image{}, fmt.Errorf("invalid argument %q for \"-t, --tag\" flag: invalid reference format: %w", t, errdefs.ErrInvalidArgument)
		}
	}
	bctx, err := b.openContext(opts)
	if err != nil {
		return images.Image{}, err
	}
	defer bctx.close()
	df, err := Parse(bytes.NewReader(bctx.dockerfile))
	if err != nil {
		return images.Image{}, fmt.Errorf("failed to parse Dockerfile: %w", err)
	}
	s := &state{b: b, opts: opts, ctx: bctx, df: df, out: opts.Out, used: map[string]bool{}}
	img, err := s.run(ctx)
	if err != nil {
		return images.Image{}, err
	}
	for _, t := range opts.Tags {
		if err := b.images.Tag(ctx, img.ID.String(), t); err != nil {
			return images.Image{}, err
		}
	}
	fmt.Fprintf(s.out, "Successfully built %s\n", shortID(img.ID.String()))
	for _, t := range opts.Tags {
		name := t
		if ref, err := images.ParseReference(t); err == nil {
			name = images.FamiliarString(ref.WithDefaultTag().String())
		}
		fmt.Fprintf(s.out, "Successfully tagged %s\n", name)
	}
	if got, err := b.images.Get(ctx, img.ID.String()); err == nil {
		img = got
	}
	return img, nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// buildContext is the build context unpacked in a directory, the
// .dockerignore'd files left out.
type buildContext struct {
	dir        string // "" without a context
	root       *os.Root
	dockerfile []byte
}

func (c *buildContext) close() {
	if c.root != nil {
		c.root.Close()
	}
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

// openContext unpacks the context tar, reads the Dockerfile and
// .dockerignore, and removes what .dockerignore excludes.
func (b *Builder) openContext(opts Options) (_ *buildContext, retErr error) {
	c := &buildContext{dockerfile: opts.Dockerfile}
	if opts.Context == nil {
		if c.dockerfile == nil {
			return nil, fmt.Errorf("no build context and no Dockerfile: %w", errdefs.ErrInvalidArgument)
		}
		return c, nil
	}
	if b.tempDir != "" {
		if err := os.MkdirAll(b.tempDir, 0o700); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(b.tempDir, "build-context-")
	if err != nil {
		return nil, err
	}
	c.dir = dir
	defer func() {
		if retErr != nil {
			c.close()
		}
	}()
	n, err := untar(opts.Context, dir)
	if err != nil {
		return nil, fmt.Errorf("read the build context: %w", err)
	}
	if n == 0 && c.dockerfile != nil {
		// berth build -: a Dockerfile and no context.
		os.RemoveAll(dir)
		c.dir = ""
		return c, nil
	}
	if c.root, err = os.OpenRoot(dir); err != nil {
		return nil, err
	}
	dfPath := opts.DockerfilePath
	if dfPath == "" {
		dfPath = "Dockerfile"
	}
	if c.dockerfile == nil {
		rel := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(dfPath)), "/")
		c.dockerfile, err = c.root.ReadFile(rel)
		if err != nil && rel == "Dockerfile" {
			if alt, aerr := c.root.ReadFile("dockerfile"); aerr == nil {
				c.dockerfile, err = alt, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("Cannot locate specified Dockerfile: %s: %w", dfPath, errdefs.ErrInvalidArgument)
		}
	}
	var ig *dockerignore.Ignore
	if f, err := c.root.Open(".dockerignore"); err == nil {
		ig, err = dockerignore.Read(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	if ig != nil {
		var excluded []string
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if rel != "." && ig.Excluded(filepath.ToSlash(rel)) {
				excluded = append(excluded, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		// Excluded directories may hold exceptions: remove files first,
		// then directories left empty.
		for i := len(excluded) - 1; i >= 0; i-- {
			os.Remove(excluded[i])
		}
	}
	return c, nil
}

// untar extracts a context tar into dir: regular files, directories,
// symlinks and hard links, no entry outside dir. It returns the number
// of entries.
func untar(r io.Reader, dir string) (n int, _ error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for ; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			_, _ = io.Copy(io.Discard, r)
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("not a valid tar: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if name == "" {
			continue
		}
		if d := path.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return n, err
			}
		}
		mode := os.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return n, err
			}
			_ = root.Chmod(name, mode|0o700)
		case tar.TypeReg:
			f, err := root.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
			if err != nil {
				return n, err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return n, err
			}
			_ = root.Chmod(name, mode)
		case tar.TypeSymlink:
			_ = root.Remove(name)
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return n, err
			}
		case tar.TypeLink:
			target := strings.TrimPrefix(path.Clean("/"+hdr.Linkname), "/")
			_ = root.Remove(name)
			if err := root.Link(target, name); err != nil {
				return n, err
			}
		}
	}
}

// state is one build in progress.
type state struct {
	b    *Builder
	opts Options
	ctx  *buildContext
	df   *Dockerfile
	out  io.Writer

	image  string             // the current image's ID; "" before FROM
	config ocispec.Image      // its config
	shell  []string           // SHELL
	args   map[string]*string // ARGs in scope: nil value declared without one
	meta   map[string]*string // ARGs before the first FROM
	used   map[string]bool    // build args declared
	made   []string           // images the build made (intermediate ones go at the end)
	ctrs   []string           // containers left to remove
	stages map[string]string  // named stages: their last image
	stage  string             // the current stage's name
	cmdSet bool               // CMD given in this stage
}

// cleanup removes the containers the build left (those of failed steps).
func (s *state) cleanup(ctx context.Context) {
	for _, id := range s.ctrs {
		if err := s.b.containers.Remove(ctx, id, true, true); err != nil {
			log.L(ctx).Warn("build: remove an intermediate container", "id", id, "error", err)
		}
	}
}

// removeIntermediate removes the images the build made but keep.
func (s *state) removeIntermediate(ctx context.Context, keep string) {
	for i := len(s.made) - 1; i >= 0; i-- {
		id := s.made[i]
		if id == keep {
			continue
		}
		if _, err := s.b.images.Remove(ctx, id, images.RemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
			log.L(ctx).Warn("build: remove an intermediate image", "id", id, "error", err)
		}
	}
}

func (s *state) run(ctx context.Context) (_ images.Image, retErr error) {
	keep := ""
	defer func() {
		ctx := context.WithoutCancel(ctx)
		s.cleanup(ctx)
		s.removeIntermediate(ctx, keep)
	}()
	s.args = map[string]*string{}
	s.meta = map[string]*string{}
	s.stages = map[string]string{}
	n := len(s.df.Instructions)
	for i, in := range s.df.Instructions {
		fmt.Fprintf(s.out, "Step %d/%d : %s\n", i+1, n, in.Original)
		if s.image == "" && in.Cmd != "FROM" && in.Cmd != "ARG" {
			return images.Image{}, fmt.Errorf("Please provide a source image with `from` prior to commit: %w", errdefs.ErrInvalidArgument)
		}
		if err := s.step(ctx, in); err != nil {
			return images.Image{}, err
		}
		if s.image != "" {
			fmt.Fprintf(s.out, " ---> %s\n", shortID(s.image))
		}
	}
	if s.image == "" {
		return images.Image{}, fmt.Errorf("No image was generated. Is your Dockerfile empty?: %w", errdefs.ErrInvalidArgument)
	}
	var unused []string
	for k := range s.opts.BuildArgs {
		if !s.used[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		fmt.Fprintf(s.out, "[Warning] One or more build-args [%s] were not consumed\n", strings.Join(unused, " "))
	}
	img, err := s.b.images.Get(ctx, s.image)
	if err != nil {
		return images.Image{}, err
	}
	keep = s.image
	return img, nil
}

// lookup finds a variable for expansion: ARGs, then the config's ENV
// (ENV wins, as in docker).
func (s *state) lookup(name string) (string, bool) {
	for _, kv := range s.config.Config.Env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	if v, ok := s.args[name]; ok && v != nil {
		return *v, true
	}
	return "", false
}

func (s *state) metaLookup(name string) (string, bool) {
	if v, ok := s.meta[name]; ok && v != nil {
		return *v, true
	}
	return "", false
}

// words expands an instruction's arguments: the JSON form's strings, or
// the shell form's words.
func (s *state) words(in Instruction) ([]string, error) {
	if in.JSON {
		out := make([]string, len(in.Args))
		for i, a := range in.Args {
			v, err := expand(a, s.df.Escape, s.lookup)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	return shellWords(in.Rest, s.df.Escape, s.lookup)
}

func sortStrings(s []string) { slices.Sort(s) }

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// commitConfig commits a config-only step: the current image with the
// config s.config and an empty layer.
func (s *state) commitConfig(ctx context.Context, createdBy string) error {
	cfg := s.config.Config
	// No layer: the image differs from its parent in its config only.
	img, err := s.b.images.Commit(ctx, s.image, nil, images.CommitOptions{Config: &cfg, CreatedBy: createdBy})
	if err != nil {
		return err
	}
	s.setImage(img)
	return nil
}

func (s *state) setImage(img images.Image) {
	s.image = img.ID.String()
	s.config = img.Config
	if !slices.Contains(s.made, s.image) {
		s.made = append(s.made, s.image)
	}
}

func nop(in Instruction) string {
	return "/bin/sh -c #(nop)  " + in.Original
}
