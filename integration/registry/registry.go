// Package registry runs Debian's docker-registry (distribution 2.x) for
// tests and benchmarks: on 127.0.0.1 at a free port, with its storage and
// config in a directory of its own, stopped by its PID. It also pushes
// images into it (hack/testimage's, or any OCI layout) with
// go-containerregistry, as a client other than berth would.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-project/berth/hack/testimage"
)

// Program is the registry binary Debian's docker-registry package installs.
const Program = "docker-registry"

// Registry is a running docker-registry.
type Registry struct {
	Addr string // 127.0.0.1:PORT
	Dir  string // config.yml, storage/, registry.log
	// Auth is what PushImage authenticates with (anonymous if nil).
	Auth authn.Authenticator

	cmd  *exec.Cmd
	done chan struct{}
}

// Options adjust a registry.
type Options struct {
	// TokenRealm, if set, makes the registry demand a bearer token from
	// this URL (distribution's "silly" auth: any token is accepted, so the
	// test's token server decides who gets one).
	TokenRealm string
}

// Start starts a registry keeping everything under dir (made if missing)
// and waits until it answers GET /v2/.
func Start(ctx context.Context, dir string, opts ...Options) (*Registry, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Registry{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir}
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, filepath.Join(dir, "storage"), r.Addr)
	if o.TokenRealm != "" {
		config += fmt.Sprintf("auth:\n  silly:\n    realm: %s\n    service: berth-test-registry\n", o.TokenRealm)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	r.cmd = exec.Command(Program, "serve", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	// Should the test binary die without cleaning up, the registry goes too.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", Program, err)
	}
	r.done = make(chan struct{})
	go func() { r.cmd.Wait(); close(r.done) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL()+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || (o.TokenRealm != "" && resp.StatusCode == http.StatusUnauthorized) {
				return r, nil
			}
		}
		select {
		case <-r.done:
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			return nil, fmt.Errorf("%s exited: %v\n%s", Program, r.cmd.ProcessState, log)
		case <-ctx.Done():
			r.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("%s did not answer on %s within 20s", Program, r.Addr)
		}
	}
}

// New starts a registry in a temporary directory of the test and stops it
// when the test ends.
func New(t testing.TB, opts ...Options) *Registry {
	t.Helper()
	r, err := Start(context.Background(), t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return r
}

// URL is the registry's base URL.
func (r *Registry) URL() string { return "http://" + r.Addr }

// Stop stops the registry by its PID: SIGTERM, then SIGKILL after 5s.
func (r *Registry) Stop() error {
	if r.cmd == nil || r.cmd.Process == nil {
		return nil
	}
	select {
	case <-r.done:
		return nil
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	return nil
}

// Catalog lists the repositories, as GET /v2/_catalog does.
func (r *Registry) Catalog(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL()+"/v2/_catalog", nil)
	if err != nil {
		return nil, err
	}
	if r.Auth != nil {
		req.Header.Set("Authorization", "Bearer any") // silly auth takes any
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v2/_catalog: %s", resp.Status)
	}
	var c struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return nil, err
	}
	return c.Repositories, nil
}

// PushLayout pushes the image of an OCI image layout (its first manifest)
// as ref, e.g. 127.0.0.1:PORT/name:tag.
func (r *Registry) PushLayout(ctx context.Context, dir, ref string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(im.Manifests) == 0 {
		return errors.New("oci layout has no manifest")
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return err
	}
	return r.PushImage(ctx, img, ref)
}

// PushLayoutIndex pushes the index.json of an OCI image layout itself as
// the image index ref (a multi-platform image).
func (r *Registry) PushLayoutIndex(ctx context.Context, dir, ref string) error {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return err
	}
	nr, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	ropts := []remote.Option{remote.WithContext(ctx)}
	if r.Auth != nil {
		ropts = append(ropts, remote.WithAuth(r.Auth))
	}
	return remote.WriteIndex(nr, idx, ropts...)
}

// PushImage pushes a go-containerregistry image as ref.
func (r *Registry) PushImage(ctx context.Context, img v1.Image, ref string) error {
	nr, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	ropts := []remote.Option{remote.WithContext(ctx)}
	if r.Auth != nil {
		ropts = append(ropts, remote.WithAuth(r.Auth))
	}
	return remote.Write(nr, img, ropts...)
}

// PushTestImage builds hack/testimage's image with opts and pushes it as
// REGISTRY/repoTag (e.g. "berth-test:latest"); it returns the full
// reference.
func (r *Registry) PushTestImage(ctx context.Context, repoTag string, opts testimage.Options) (string, error) {
	dir, err := os.MkdirTemp("", "berth-registry-push-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := testimage.WriteOCILayout(dir, opts); err != nil {
		return "", err
	}
	ref := r.Addr + "/" + repoTag
	if err := r.PushLayout(ctx, dir, ref); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// NewWithLogin starts a registry that wants a bearer token, with a token
// server in front of it that hands one out only for user and pass. Addr
// is the front's address (go-containerregistry refuses a token realm on
// another loopback port than the registry's), and Auth holds the
// credentials so that PushImage gets in. Both stop when the test ends.
func NewWithLogin(t testing.TB, user, pass string) *Registry {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := l.Addr().String()
	r := New(t, Options{TokenRealm: "http://" + front + "/token"})
	backend, err := url.Parse(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(backend)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/token" {
			rp.ServeHTTP(w, req)
			return
		}
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"wrong credentials"}]}`, http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": "t", "access_token": "t"})
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	r.Addr = front
	r.Auth = &authn.Basic{Username: user, Password: pass}
	return r
}
