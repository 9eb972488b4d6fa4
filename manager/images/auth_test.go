package images

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/registry"
	"github.com/berth-project/berth/integration/testenv"
)

// TestLogin runs a registry that wants a bearer token, from a token server
// that hands one out for the right username and password: pulls fail
// without credentials, login checks and stores them in the config file,
// pulls work after, logout forgets them.
func TestLogin(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program(registry.Program))
	const user, pass = "berth", "s3cret"
	reg := registry.NewWithLogin(t, user, pass)
	ref, _ := pushTestImage(t, reg, "private:v1", testimage.Options{})

	authFile := filepath.Join(t.TempDir(), "config.json")
	e := newEnv(t, envOpts{cfg: Config{AuthFile: authFile}})
	ctx := context.Background()
	_, err := e.svc.Pull(ctx, ref, PullOptions{})
	if !errdefs.IsUnauthorized(err) || !strings.Contains(err.Error(), "berth login") {
		t.Errorf("anonymous pull: %v, want Unauthenticated saying berth login", err)
	}
	t.Logf("error: %v", err)
	if err := e.svc.Login(ctx, reg.Addr, Credentials{Username: user, Password: "wrong"}); !errdefs.IsUnauthorized(err) {
		t.Errorf("login with a wrong password: %v", err)
	}
	if _, err := os.Stat(authFile); err == nil {
		t.Error("a failed login wrote the config file")
	}
	if err := e.svc.Login(ctx, reg.Addr, Credentials{Username: user, Password: pass}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(authFile)
	if err != nil || !strings.Contains(string(b), reg.Addr) {
		t.Fatalf("config file after login: %s %v", b, err)
	}
	if _, err := e.svc.Pull(ctx, ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	// Credentials given to the pull override the file.
	if _, err := e.svc.Pull(ctx, ref, PullOptions{Credentials: &Credentials{Username: user, Password: "wrong"}}); !errdefs.IsUnauthorized(err) {
		t.Errorf("pull with wrong explicit credentials: %v", err)
	}
	if err := e.svc.Logout(ctx, reg.Addr); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Pull(ctx, ref, PullOptions{}); !errdefs.IsUnauthorized(err) {
		t.Errorf("pull after logout: %v", err)
	}
}

// TestInsecurePolicy: plain http only to loopback and the insecure
// registries named.
func TestInsecurePolicy(t *testing.T) {
	s := &Service{cfg: Config{InsecureRegistries: []string{"reg.local:5000", "10.1.0.0/16", "plain.example"}}}
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:80": true, "[::1]:5000": true, "localhost": true,
		"reg.local:5000": true, "reg.local:5001": false, "10.1.2.3:5000": true, "10.2.0.1": false,
		"plain.example": true, "plain.example:443": true, "192.168.1.1:5000": false, "docker.io": false,
	} {
		if got := s.allowHTTP(host); got != want {
			t.Errorf("allowHTTP(%q) = %v, want %v", host, got, want)
		}
	}
}
