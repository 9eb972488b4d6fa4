package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/manager/containers"
	"github.com/berth-project/berth/manager/images"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// fake is the image and container libraries as the builder sees them:
// images are configs, containers configs and the files copied into them.
type fake struct {
	images  map[string]images.Image // by ID and name
	n       int
	removed []string
	tags    map[string]string

	ctrs     map[string]*containersv1.Config
	files    map[string][]string // per container: tar entries copied in
	exists   map[string]bool     // paths existing in every container
	runs     [][]string          // RUN commands
	output   string
	exitCode int32
}

func newFake() *fake {
	f := &fake{images: map[string]images.Image{}, tags: map[string]string{}, ctrs: map[string]*containersv1.Config{}, files: map[string][]string{}, exists: map[string]bool{"/": true, "/etc": true}}
	base := f.add(ocispec.ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}})
	f.images["base:latest"] = base
	return f
}

func (f *fake) add(cfg ocispec.ImageConfig) images.Image {
	f.n++
	id := digest.FromString(fmt.Sprint(f.n))
	img := images.Image{ID: id, Config: ocispec.Image{Config: cfg}}
	f.images[id.String()] = img
	return img
}

func (f *fake) Get(_ context.Context, ref string) (images.Image, error) {
	if img, ok := f.images[ref]; ok {
		return img, nil
	}
	if img, ok := f.images[ref+":latest"]; ok {
		return img, nil
	}
	return images.Image{}, fmt.Errorf("no such image %s: %w", ref, errdefs.ErrNotFound)
}

func (f fakeImages) Commit(_ context.Context, base string, _ io.Reader, opts images.CommitOptions) (images.Image, error) {
	b, err := f.Get(context.Background(), base)
	if err != nil {
		return images.Image{}, err
	}
	cfg := b.Config.Config
	if opts.Config != nil {
		cfg = *opts.Config
	}
	if err := images.ApplyChanges(&cfg, opts.Changes); err != nil {
		return images.Image{}, err
	}
	return f.add(cfg), nil
}

func (f *fake) Import(context.Context, io.Reader, images.ImportOptions) (images.Image, error) {
	return f.add(ocispec.ImageConfig{}), nil
}

func (f *fake) Tag(_ context.Context, source, target string) error {
	f.tags[target] = source
	return nil
}

func (f fakeImages) Remove(_ context.Context, ref string, _ images.RemoveOptions) ([]images.RemoveResult, error) {
	f.removed = append(f.removed, ref)
	return nil, nil
}

func (f *fake) Create(_ context.Context, _ string, cfg *containersv1.Config) (*containersv1.Container, error) {
	if _, err := f.Get(context.Background(), cfg.GetImage()); err != nil {
		return nil, err
	}
	f.n++
	id := fmt.Sprintf("%064x", f.n)
	f.ctrs[id] = cfg
	return &containersv1.Container{Id: id}, nil
}

func (f *fake) Start(_ context.Context, id string) error {
	f.runs = append(f.runs, f.ctrs[id].GetCmd())
	return nil
}

func (f *fake) Wait(context.Context, string, string) (int32, error) { return f.exitCode, nil }

func (f *fake) Logs(_ context.Context, _ string, _ containers.LogsOptions, send func(*containersv1.LogEntry) error) error {
	if f.output == "" {
		return nil
	}
	return send(&containersv1.LogEntry{Data: []byte(f.output)})
}

func (f fakeContainers) Remove(_ context.Context, id string, _, _ bool) error {
	delete(f.ctrs, id)
	return nil
}

func (f *fake) CopyTo(_ context.Context, id string, opts containers.CopyToOptions, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(tr)
		if hdr.Typeflag == tar.TypeDir {
			f.exists[path.Clean("/"+hdr.Name)] = true
		}
		e := fmt.Sprintf("%s %o %d:%d", hdr.Name, hdr.Mode, hdr.Uid, hdr.Gid)
		if hdr.Typeflag == tar.TypeReg {
			e += " " + string(b)
		}
		f.files[id] = append(f.files[id], e)
	}
}

func (f *fake) CopyFrom(_ context.Context, _, p string, _ containers.CopyFromOptions, stat func(containers.PathStat) error, _ io.Writer) error {
	if !f.exists[path.Clean(p)] {
		return fmt.Errorf("%s: %w", p, errdefs.ErrNotFound)
	}
	return stat(containers.PathStat{Name: path.Base(p), Mode: 0o755 | 1<<31})
}

// fakeImages and fakeContainers are fake's two sides (both have Commit
// and Remove).
type (
	fakeImages     struct{ *fake }
	fakeContainers struct{ *fake }
)

func (c fakeContainers) Commit(_ context.Context, id string, opts containers.CommitOptions) (images.Image, error) {
	cfg := c.ctrs[id]
	base, _ := c.Get(context.Background(), cfg.GetImage())
	out := base.Config.Config
	out.Entrypoint, out.Cmd = nil, cfg.GetCmd()
	out.Env = append(slices.Clone(out.Env), cfg.GetEnv()...)
	out.WorkingDir = cfg.GetWorkingDir()
	if err := images.ApplyChanges(&out, opts.Changes); err != nil {
		return images.Image{}, err
	}
	return c.add(out), nil
}

// contextTar is a tar of files.
func contextTar(files map[string]string) io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o640, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	return &buf
}

func build(t *testing.T, f *fake, files map[string]string, opts Options) (images.Image, string, error) {
	t.Helper()
	var out strings.Builder
	opts.Out = &out
	if opts.Context == nil && opts.Dockerfile == nil {
		opts.Context = contextTar(files)
	}
	b := New(fakeImages{f}, fakeContainers{f}, t.TempDir())
	img, err := b.Build(context.Background(), opts)
	return img, out.String(), err
}

func TestBuildSteps(t *testing.T) {
	f := newFake()
	f.output = "ran\n"
	who := "berth"
	img, out, err := build(t, f, map[string]string{
		"Dockerfile": `ARG BASE=base
FROM $BASE
ARG WHO=world
ARG UNUSED
ENV GREETING=hello DIR=app
WORKDIR /$DIR
COPY --chown=7:8 hello.txt sub/ ./
RUN echo "$GREETING $WHO" > built.txt
RUN ["printenv", "WHO"]
LABEL a=b "c d"=e
EXPOSE 80 53/udp
USER 1000
ENTRYPOINT ["/bin/app"]
`,
		"hello.txt":     "hi\n",
		"sub/inner.txt": "inner\n",
		"secret.txt":    "no\n",
		".dockerignore": "secret.txt\n",
	}, Options{Tags: []string{"built:v1", "other"}, BuildArgs: map[string]*string{"WHO": &who, "EXTRA": &who}, Remove: true})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Step 1/13 : ARG BASE=base\nStep 2/13 : FROM $BASE\n ---> ",
		"Step 8/13 : RUN echo \"$GREETING $WHO\" > built.txt\n ---> Running in ",
		"ran\nRemoving intermediate container ",
		"[Warning] One or more build-args [EXTRA] were not consumed\n",
		"Successfully built " + shortID(img.ID.String()) + "\nSuccessfully tagged built:v1\nSuccessfully tagged other:latest\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// RUN: the shell form gets the build args through its script, the
	// exec form through the environment; no network.
	wantRuns := [][]string{
		{"/bin/sh", "-c", "WHO='berth'; export WHO; echo \"$GREETING $WHO\" > built.txt"},
		{"printenv", "WHO"},
	}
	if !reflect.DeepEqual(f.runs, wantRuns) {
		t.Errorf("runs %q, want %q", f.runs, wantRuns)
	}
	c := img.Config.Config
	if c.WorkingDir != "/app" || c.User != "1000" || !reflect.DeepEqual(c.Entrypoint, []string{"/bin/app"}) || c.Cmd != nil {
		t.Errorf("config: %+v", c)
	}
	if !slices.Contains(c.Env, "GREETING=hello") || !slices.Contains(c.Env, "DIR=app") || !slices.Contains(c.Env, "PATH=/bin") {
		t.Errorf("env %q", c.Env)
	}
	if c.Labels["a"] != "b" || c.Labels["c d"] != "e" || len(c.ExposedPorts) != 2 {
		t.Errorf("labels %v ports %v", c.Labels, c.ExposedPorts)
	}
	if f.tags["built:v1"] != img.ID.String() || f.tags["other"] != img.ID.String() {
		t.Errorf("tags %v", f.tags)
	}
	if len(f.ctrs) != 0 {
		t.Errorf("containers left: %v", f.ctrs)
	}
	if slices.Contains(f.removed, img.ID.String()) || len(f.removed) < 8 {
		t.Errorf("removed %d intermediate images %q (the final is %s)", len(f.removed), f.removed, img.ID)
	}
	// WORKDIR made /app; COPY copied the file and the directory's content
	// with the owner given.
	var copied []string
	for _, fs := range f.files {
		copied = append(copied, fs...)
	}
	slices.Sort(copied)
	want := []string{"app/ 755 0:0", "app/hello.txt 640 7:8 hi\n", "app/inner.txt 640 7:8 inner\n"}
	if !reflect.DeepEqual(copied, want) {
		t.Errorf("copied %q, want %q", copied, want)
	}
}

func TestBuildRunFails(t *testing.T) {
	f := newFake()
	f.exitCode = 3
	_, out, err := build(t, f, map[string]string{"Dockerfile": "FROM base\nENV A=b\nRUN exit 3\nCMD x\n"}, Options{Tags: []string{"x"}, Remove: true})
	if err == nil || err.Error() != "The command '/bin/sh -c exit 3' returned a non-zero code: 3" {
		t.Errorf("err %v", err)
	}
	if strings.Contains(out, "Step 4/4") || len(f.tags) != 0 || len(f.ctrs) != 0 {
		t.Errorf("after the failure: tags %v containers %v\n%s", f.tags, f.ctrs, out)
	}
	if len(f.removed) != 1 { // the ENV step's image
		t.Errorf("removed %q", f.removed)
	}
	_, _, err = build(t, f, nil, Options{Dockerfile: []byte("FROM base\nRUN [\"false\", \"x\"]\n")})
	if err == nil || err.Error() != `The command '["false","x"]' returned a non-zero code: 3` {
		t.Errorf("exec form: %v", err)
	}
}

func TestBuildRefusals(t *testing.T) {
	files := func(df string) map[string]string {
		return map[string]string{"Dockerfile": df, "secret": "s", "dir/x": "x", ".dockerignore": "secret\ndir\n"}
	}
	for _, c := range []struct{ df, want string }{
		{"FROM base\nCOPY ../x /\n", "COPY failed: forbidden path outside the build context: ../x ()"},
		{"FROM base\nCOPY secret /\n", "COPY failed: file not found in build context or excluded by .dockerignore: stat secret: file does not exist"},
		{"FROM base\nCOPY dir/x /\n", "excluded by .dockerignore"},
		{"FROM base\nCOPY s* /\n", "excluded by .dockerignore"},
		{"FROM base\nCOPY Dockerfile .dockerignore /d\n", "the destination must be a directory and end with a /"},
		{"FROM base\nADD https://example.com/f /f\n", "ADD of a URL is not supported"},
		{"FROM base\nCOPY --from=x a /\n", "not supported"},
		{"FROM missing\n", "pull it first (berth pull missing)"},
		{"RUN true\n", "Please provide a source image with `from` prior to commit"},
		{"FROM base\nBOGUS x\n", "unknown instruction: BOGUS"},
		{"FROM base\nSHELL sh -c\n", "SHELL requires the arguments to be in JSON form"},
		{"FROM base\nHEALTHCHECK NONE\n", "not supported"},
	} {
		f := newFake()
		_, out, err := build(t, f, files(c.df), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q\n%s", c.df, err, c.want, out)
		}
		if len(f.ctrs) != 0 {
			t.Errorf("%q: containers left %v", c.df, f.ctrs)
		}
	}
	f := newFake()
	if _, _, err := build(t, f, nil, Options{Dockerfile: []byte("FROM base\nCOPY a /\n")}); err == nil || !strings.Contains(err.Error(), "no build context") {
		t.Errorf("COPY without a context: %v", err)
	}
	if _, _, err := build(t, f, map[string]string{"Dockerfile": "FROM base\n"}, Options{Tags: []string{"Bad:Name"}}); err == nil || !errdefs.IsInvalidArgument(err) {
		t.Errorf("-t Bad:Name: %v", err)
	}
}

func TestBuildADDTar(t *testing.T) {
	var inner bytes.Buffer
	tw := tar.NewWriter(&inner)
	tw.WriteHeader(&tar.Header{Name: "top/f", Mode: 0o600, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	f := newFake()
	f.exists["/opt"] = true
	_, out, err := build(t, f, map[string]string{"Dockerfile": "FROM base\nADD a.tar /opt\nCOPY a.tar /opt\n", "a.tar": inner.String()}, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var copied []string
	for _, fs := range f.files {
		for _, e := range fs {
			copied = append(copied, strings.Fields(e)[0])
		}
	}
	slices.Sort(copied)
	if want := []string{"opt/a.tar", "opt/top/f"}; !reflect.DeepEqual(copied, want) {
		t.Errorf("copied %q, want %q", copied, want)
	}
}
