package images

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
)

// Credentials are what berth login stores for a registry; given to a pull
// or push they override the config file.
type Credentials struct {
	Username      string
	Password      string
	IdentityToken string // an OAuth refresh token
	RegistryToken string // a bearer token sent as is
}

// fileKeychain is an authn.Keychain over a docker-style config.json at a
// path of berth's own (not ~/.docker): its auths, credsStore and
// credHelpers, read afresh on each lookup so that berth login takes effect
// at once.
type fileKeychain struct{ path string }

func (k fileKeychain) load() (*configfile.ConfigFile, error) {
	cf := configfile.New(k.path)
	if k.path == "" {
		return cf, nil
	}
	f, err := os.Open(k.path)
	if errors.Is(err, os.ErrNotExist) {
		return cf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	defer f.Close()
	if err := cf.LoadFromReader(f); err != nil {
		return nil, fmt.Errorf("credentials: %s is not a valid config.json: %w", k.path, err)
	}
	return cf, nil
}

func (k fileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	cf, err := k.load()
	if err != nil {
		return nil, err
	}
	var empty types.AuthConfig
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry || key == DefaultDomain {
			key = authn.DefaultAuthKey
		}
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", key, err)
		}
		ac.ServerAddress = ""
		if ac != empty {
			return authn.FromConfig(authn.AuthConfig{
				Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
				IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
			}), nil
		}
	}
	return authn.Anonymous, nil
}

// authKey is the key config.json keeps a registry's credentials under.
func authKey(registry string) string {
	if registry == DefaultDomain || registry == name.DefaultRegistry {
		return authn.DefaultAuthKey
	}
	return registry
}

// newBaseTransport is the HTTP transport under every registry connection.
// Compression is off: a blob must arrive as the bytes its digest names,
// and a Range must count those bytes. checkHTTP keeps plain http to the
// registries allowed it.
func newBaseTransport(allowHTTP func(host string) bool) http.RoundTripper {
	t := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		// Bigger buffers: fewer syscalls for the large bodies of blobs.
		ReadBufferSize:  256 << 10,
		WriteBufferSize: 64 << 10,
	}
	return &httpPolicy{inner: t, allow: allowHTTP}
}

// httpPolicy refuses plain http to a registry that is neither local nor
// named insecure. go-containerregistry also falls back to http for private
// (RFC 1918) addresses; docker does not, and neither does berth.
type httpPolicy struct {
	inner http.RoundTripper
	allow func(host string) bool
}

func (p *httpPolicy) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !p.allow(req.URL.Host) {
		return nil, &insecureError{host: req.URL.Host}
	}
	return p.inner.RoundTrip(req)
}

type insecureError struct{ host string }

func (e *insecureError) Error() string {
	return fmt.Sprintf("plain http to %s is not allowed: start berthd with --insecure-registry %s if it serves no https", e.host, e.host)
}

// allowHTTP tells whether host (host[:port]) may be reached over plain
// http: loopback names and addresses always, and the insecure registries
// configured, by host[:port], host or network (CIDR).
func (s *Service) allowHTTP(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	for _, ins := range s.cfg.InsecureRegistries {
		if ins == host || ins == h {
			return true
		}
		if _, n, err := net.ParseCIDR(ins); err == nil && ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// repoClient is an authenticated connection to one repository.
type repoClient struct {
	ref    Reference
	repo   name.Repository
	t      http.RoundTripper
	client *http.Client
}

// connect pings the registry of r and authenticates for scopes ("pull",
// "push,pull"): with creds if given, else from the config file.
func (s *Service) connect(ctx context.Context, r Reference, creds *Credentials, actions string) (*repoClient, error) {
	var opts []name.Option
	if s.allowHTTP(r.Domain) {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(r.Name(), opts...)
	if err != nil {
		return nil, refError(r.String(), "%v", err)
	}
	var auth authn.Authenticator
	if creds != nil {
		auth = authn.FromConfig(authn.AuthConfig{Username: creds.Username, Password: creds.Password, IdentityToken: creds.IdentityToken, RegistryToken: creds.RegistryToken})
	} else {
		auth, err = fileKeychain{s.cfg.AuthFile}.Resolve(repo)
		if err != nil {
			return nil, err
		}
	}
	t, err := transport.NewWithContext(ctx, repo.Registry, auth, s.transport, []string{repo.Scope(actions)})
	if err != nil {
		return nil, registryError(r, err)
	}
	return &repoClient{ref: r, repo: repo, t: t, client: &http.Client{Transport: t}}, nil
}

func (c *repoClient) remoteOpts(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithTransport(c.t)}
}

// getManifest fetches the manifest or index r names (by digest if it has
// one, verified), or the one of digest d in r's repository.
func (c *repoClient) getManifest(ctx context.Context, r Reference, d digest.Digest) (*remote.Descriptor, error) {
	var ref name.Reference
	switch {
	case d != "":
		ref = c.repo.Digest(d.String())
	case r.Digest != "":
		ref = c.repo.Digest(r.Digest.String())
	default:
		ref = c.repo.Tag(r.Tag)
	}
	desc, err := remote.Get(ref, c.remoteOpts(ctx)...)
	if err != nil {
		return nil, registryError(r, err)
	}
	return desc, nil
}

// openBlob GETs the blob d from offset on. It returns the body and the
// offset the body starts at: 0 when the registry ignored the Range.
func (c *repoClient) openBlob(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, int64, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", c.repo.Scheme(), c.repo.RegistryStr(), c.repo.RepositoryStr(), d)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, 0, nil
	case http.StatusPartialContent:
		start, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start > offset {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("blob %s: registry answered range %d- with %q", d, offset, resp.Header.Get("Content-Range"))
		}
		return resp.Body, start, nil
	case http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		return nil, 0, errRangeNotSatisfiable
	}
	defer resp.Body.Close()
	return nil, 0, transport.CheckError(resp, http.StatusOK)
}

var errRangeNotSatisfiable = errors.New("range not satisfiable")

// parseContentRange reads the start of "bytes START-END/SIZE".
func parseContentRange(v string) (int64, bool) {
	v, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(v, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil && n >= 0
}

// retryable tells whether a failed download may succeed when tried again:
// the network failed or the registry was briefly unwell.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.Temporary()
	}
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

// registryError turns what a registry exchange failed with into an errdefs
// kind and a message that names the image and says what to do.
func registryError(r Reference, err error) error {
	return registryErr(r.Familiar()+": ", r.Domain, err)
}

// registryErr is registryError about subject (an image, or "" when the
// caller names it) at the registry domain.
func registryErr(subject, domain string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ie *insecureError
	if errors.As(err, &ie) {
		return fmt.Errorf("%s%w: %w", subject, err, errdefs.ErrPermissionDenied)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		codes := map[transport.ErrorCode]bool{}
		for _, d := range te.Errors {
			codes[d.Code] = true
		}
		switch {
		case te.StatusCode == http.StatusUnauthorized || codes[transport.UnauthorizedErrorCode]:
			return fmt.Errorf("%saccess denied: the repository does not exist or needs 'berth login %s': %w: %w", subject, domain, err, errdefs.ErrUnauthenticated)
		case te.StatusCode == http.StatusForbidden || codes[transport.DeniedErrorCode]:
			return fmt.Errorf("%saccess denied by registry %s: %w: %w", subject, domain, err, errdefs.ErrPermissionDenied)
		case te.StatusCode == http.StatusNotFound || codes[transport.ManifestUnknownErrorCode] || codes[transport.NameUnknownErrorCode] || codes[transport.BlobUnknownErrorCode]:
			return fmt.Errorf("%snot found in registry %s (check the name and tag): %w: %w", subject, domain, err, errdefs.ErrNotFound)
		case te.StatusCode == http.StatusTooManyRequests || codes[transport.TooManyRequestsErrorCode]:
			return fmt.Errorf("%sregistry %s limits requests (try again later): %w: %w", subject, domain, err, errdefs.ErrUnavailable)
		case te.StatusCode >= 500:
			return fmt.Errorf("%sregistry %s failed: %w: %w", subject, domain, err, errdefs.ErrUnavailable)
		}
		return fmt.Errorf("%sregistry %s: %w: %w", subject, domain, err, errdefs.ErrUnknown)
	}
	var tlsErr tls.RecordHeaderError
	if errors.As(err, &tlsErr) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("%sregistry %s does not speak https: if it serves plain http, start berthd with --insecure-registry %s: %w: %w", subject, domain, domain, err, errdefs.ErrUnavailable)
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	if errors.As(err, &dnsErr) || (errors.As(err, &opErr) && opErr.Op == "dial") || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%sregistry %s is unreachable (check that it runs and that the address is right): %w: %w", subject, domain, err, errdefs.ErrUnavailable)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%sthe connection to registry %s failed (try again: a pull resumes its downloads where they stopped): %w: %w", subject, domain, err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("%sregistry %s: %w", subject, domain, err)
}

// CheckLogin checks the credentials against the registry (server: a
// host[:port] or docker.io, "" for Docker Hub), as `docker login` has the
// daemon do before the client stores them. Wrong ones are Unauthenticated.
func (s *Service) CheckLogin(ctx context.Context, server string, creds Credentials) error {
	server = loginServer(server)
	var opts []name.Option
	if s.allowHTTP(server) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(server, opts...)
	if err != nil {
		return fmt.Errorf("login: bad registry %q: %v: %w", server, err, errdefs.ErrInvalidArgument)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: creds.Username, Password: creds.Password, IdentityToken: creds.IdentityToken, RegistryToken: creds.RegistryToken})
	r := Reference{Domain: server, Path: "login"}
	refused := func(err error) error {
		err = registryError(r, err)
		if errdefs.IsUnauthorized(err) || errdefs.IsPermissionDenied(err) {
			return fmt.Errorf("login to %s: wrong username or password: %w", server, errdefs.ErrUnauthenticated)
		}
		return err
	}
	t, err := transport.NewWithContext(ctx, reg, auth, s.transport, []string{reg.Scope("")})
	if err != nil {
		return refused(err)
	}
	// A basic-auth registry only checks on a request.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		return refused(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("login to %s: wrong username or password: %w", server, errdefs.ErrUnauthenticated)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return registryError(r, err)
	}
	return nil
}

// Login checks the credentials against the registry (CheckLogin) and
// stores them in the config file for later pulls and pushes. An identity
// token the registry hands out is not kept: berth stores what it was given.
func (s *Service) Login(ctx context.Context, server string, creds Credentials) error {
	if s.cfg.AuthFile == "" {
		return fmt.Errorf("login: berthd has no credentials file configured: %w", errdefs.ErrFailedPrecondition)
	}
	if err := s.CheckLogin(ctx, server, creds); err != nil {
		return err
	}
	server = loginServer(server)
	cf, err := fileKeychain{s.cfg.AuthFile}.load()
	if err != nil {
		return err
	}
	key := authKey(server)
	if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{
		Username: creds.Username, Password: creds.Password, ServerAddress: key,
		IdentityToken: creds.IdentityToken, RegistryToken: creds.RegistryToken,
	}); err != nil {
		return fmt.Errorf("login: store credentials: %w", err)
	}
	if err := cf.Save(); err != nil {
		return fmt.Errorf("login: write %s: %w", s.cfg.AuthFile, err)
	}
	return nil
}

// Logout forgets the credentials stored for server. It is not an error if
// there were none.
func (s *Service) Logout(ctx context.Context, server string) error {
	if s.cfg.AuthFile == "" {
		return nil
	}
	cf, err := fileKeychain{s.cfg.AuthFile}.load()
	if err != nil {
		return err
	}
	key := authKey(loginServer(server))
	if _, ok := cf.AuthConfigs[key]; !ok && cf.CredentialsStore == "" && cf.CredentialHelpers[key] == "" {
		return nil
	}
	if err := cf.GetCredentialsStore(key).Erase(key); err != nil {
		return fmt.Errorf("logout from %s: %w", server, err)
	}
	if err := cf.Save(); err != nil {
		return fmt.Errorf("logout: write %s: %w", s.cfg.AuthFile, err)
	}
	return nil
}

// loginServer normalises what a user names a registry by: "" and Docker
// Hub's names are docker.io; a URL loses its scheme and path.
func loginServer(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	switch s {
	case "", name.DefaultRegistry, "registry-1.docker.io":
		return DefaultDomain
	}
	return s
}
