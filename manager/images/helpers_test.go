package images

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/registry"
	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/mount"
	"github.com/berth-project/berth/snapshotter/native"
	"github.com/berth-project/berth/snapshotter/overlay"
)

// env is one test's image service over a snapshot store of its own.
type env struct {
	t    *testing.T
	ctx  context.Context
	root string
	sn   snapshotter.Snapshotter
	svc  *Service
}

type envOpts struct {
	native bool // the native (copying) store instead of overlay
	cfg    Config
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	var sn snapshotter.Snapshotter
	var err error
	if o.native {
		sn, err = native.New(ctx, filepath.Join(root, "snapshots"))
	} else {
		sn, err = overlay.New(ctx, filepath.Join(root, "snapshots"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	cfg := o.cfg
	cfg.Root = filepath.Join(root, "images")
	cfg.Snapshotter = sn
	svc, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return &env{t: t, ctx: ctx, root: root, sn: sn, svc: svc}
}

// reopen opens a second service over the same store and metadata (a
// daemon restart).
func (e *env) reopen(cfg Config) {
	e.t.Helper()
	e.svc.Close()
	cfg.Root = filepath.Join(e.root, "images")
	cfg.Snapshotter = e.sn
	svc, err := Open(e.ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
	e.t.Cleanup(func() { svc.Close() })
}

func requireRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program(registry.Program))
	return registry.New(t)
}

// pushTestImage pushes hack/testimage's image as repoTag and returns its
// reference and the image as built.
func pushTestImage(t *testing.T, reg *registry.Registry, repoTag string, opts testimage.Options) (string, *testimage.Image) {
	t.Helper()
	ref, err := reg.PushTestImage(context.Background(), repoTag, opts)
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ref, img
}

// blobs lists the digests in the content store.
func (e *env) blobs() []digest.Digest {
	e.t.Helper()
	var out []digest.Digest
	ents, err := os.ReadDir(filepath.Join(e.root, "images", "content", "blobs", "sha256"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Fatal(err)
	}
	for _, en := range ents {
		out = append(out, digest.NewDigestFromEncoded(digest.SHA256, en.Name()))
	}
	slices.Sort(out)
	return out
}

// ingests lists the partial downloads.
func (e *env) ingests() []string {
	e.t.Helper()
	ents, _ := os.ReadDir(filepath.Join(e.root, "images", "content", "ingest"))
	var out []string
	for _, en := range ents {
		out = append(out, en.Name())
	}
	return out
}

// snapshots lists the snapshots by name and kind.
func (e *env) snapshots() map[string]snapshotter.Kind {
	e.t.Helper()
	out := map[string]snapshotter.Kind{}
	if err := e.sn.Walk(e.ctx, func(ctx context.Context, info snapshotter.Info) error {
		out[info.Name] = info.Kind
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// rootfs mounts a view of the snapshot name and calls fn with its root.
func (e *env) rootfs(name string, fn func(root string)) {
	e.t.Helper()
	key := "test-view-" + randomID()
	ms, err := e.sn.View(e.ctx, key, name)
	if err != nil {
		e.t.Fatal(err)
	}
	defer e.sn.Remove(e.ctx, key)
	if err := mount.WithTempMount(e.ctx, ms, func(root string) error {
		fn(root)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

// checkTestRootfs checks the tree of hack/testimage's image: the overlay
// layer's file, its whiteout and its opaque directory honoured, and the
// extra layers there.
func checkTestRootfs(t *testing.T, root string, extra int) {
	t.Helper()
	mustExist := []string{"bin/busybox", "bin/sh", "etc/passwd", "etc/berth-release", "opt/old/b"}
	for i := 1; i <= extra; i++ {
		mustExist = append(mustExist, "layers/"+string(rune('0'+i)))
	}
	for _, p := range mustExist {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("rootfs: %s missing: %v", p, err)
		}
	}
	for _, p := range []string{"etc/berth-deleted", "opt/old/a", "etc/.wh.berth-deleted", "opt/old/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("rootfs: %s present, the image deletes it", p)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "etc/berth-release"))
	if err != nil || string(b) != "berth test image\n" {
		t.Errorf("rootfs: etc/berth-release = %q, %v", b, err)
	}
}

// proxy is a reverse proxy in front of a registry that can drop or corrupt
// blob downloads, and records the blob requests it saw.
type proxy struct {
	Addr string
	srv  *http.Server

	mu       sync.Mutex
	requests []blobRequest

	// cutAfter, when > 0, closes blob responses' connections after that
	// many bytes of body: all of them with cutAll, else the next cutCount.
	cutAfter atomic.Int64
	cutAll   atomic.Bool
	cutCount atomic.Int64
	// cutOnly, if set, limits cutting to the blob of that digest.
	cutOnly atomic.Value
	// corrupt flips a byte in the middle of each blob body.
	corrupt atomic.Bool
	// served counts the blob body bytes sent.
	served atomic.Int64
}

type blobRequest struct {
	Digest string
	Range  string
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	p := &proxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.Contains(resp.Request.URL.Path, "/blobs/sha256:") || resp.Request.Method != http.MethodGet {
			return nil
		}
		cut := p.cutAfter.Load()
		if only, _ := p.cutOnly.Load().(string); only != "" && !strings.HasSuffix(resp.Request.URL.Path, only) {
			cut = 0
		}
		if cut > 0 && !p.cutAll.Load() && p.cutCount.Add(-1) < 0 {
			cut = 0
		}
		resp.Body = &tamper{ReadCloser: resp.Body, p: p, cut: cut, corrupt: p.corrupt.Load(), size: resp.ContentLength}
		return nil
	}
	rp.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = l.Addr().String()
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := strings.Index(r.URL.Path, "/blobs/"); i >= 0 && r.Method == http.MethodGet {
			p.mu.Lock()
			p.requests = append(p.requests, blobRequest{Digest: r.URL.Path[i+len("/blobs/"):], Range: r.Header.Get("Range")})
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(l)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

func (p *proxy) blobRequests() []blobRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

func (p *proxy) reset() {
	p.mu.Lock()
	p.requests = nil
	p.mu.Unlock()
	p.served.Store(0)
}

// tamper passes a blob body through, cutting or corrupting it.
type tamper struct {
	io.ReadCloser
	p       *proxy
	n       int64
	cut     int64
	corrupt bool
	size    int64
}

func (t *tamper) Read(b []byte) (int, error) {
	if t.cut > 0 && t.n >= t.cut {
		// Panicking with ErrAbortHandler makes the server drop the
		// connection mid-body, as a failing network would.
		panic(http.ErrAbortHandler)
	}
	if t.cut > 0 && t.n+int64(len(b)) > t.cut {
		b = b[:t.cut-t.n]
	}
	n, err := t.ReadCloser.Read(b)
	if t.corrupt && t.size > 0 {
		mid := t.size / 2
		if mid >= t.n && mid < t.n+int64(n) {
			b[mid-t.n] ^= 0xff
		}
	}
	t.n += int64(n)
	t.p.served.Add(int64(n))
	return n, err
}

func snapshotterLabels(k, v string) snapshotter.Opt {
	return snapshotter.WithLabels(map[string]string{k: v})
}

func readFile(root, p string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, p))
	return string(b), err
}
