package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
)

func TestLoginLogoutConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(ConfigEnv, dir)
	// What berth does not know in config.json stays.
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credsStore":"pass","auths":{"other:1":{"auth":"eDp5"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cli := &CLI{In: strings.NewReader("s3cret\n"), Out: &out, Err: &errOut}
	// What login keeps once the daemon has checked the credentials.
	if err := cli.saveLogin("127.0.0.1:5000", LoginOptions{Username: "me", Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Login Succeeded") {
		t.Errorf("login: %q", out.String())
	}
	a := authFor("127.0.0.1:5000/app:v1")
	if a.GetUsername() != "me" || a.GetPassword() != "s3cret" {
		t.Errorf("authFor: %v", a)
	}
	if a := authFor("busybox"); a != nil {
		t.Errorf("Docker Hub credentials without a login: %v", a)
	}
	if a := authFor("other:1/x"); a.GetUsername() != "x" || a.GetPassword() != "y" {
		t.Errorf("authFor of the existing entry: %v", a)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil || raw["credsStore"] != "pass" {
		t.Errorf("config.json lost what berth does not use: %s", b)
	}
	if st, _ := os.Stat(filepath.Join(dir, "config.json")); st.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v, want 0600", st.Mode())
	}
	out.Reset()
	if err := cli.Logout("127.0.0.1:5000"); err != nil {
		t.Fatal(err)
	}
	if out.String() != "Removing login credentials for 127.0.0.1:5000\n" || authFor("127.0.0.1:5000/app") != nil {
		t.Errorf("logout: %q, %v", out.String(), authFor("127.0.0.1:5000/app"))
	}
	out.Reset()
	if err := cli.Logout("127.0.0.1:5000"); err != nil || out.String() != "Not logged in to 127.0.0.1:5000\n" {
		t.Errorf("second logout: %v %q", err, out.String())
	}
	if err := (&CLI{In: strings.NewReader("x"), Out: &out, Err: &errOut}).Login(t.Context(), "", LoginOptions{PasswordStdin: true}); ExitCode(err) != ExitUsage {
		t.Errorf("--password-stdin without --username: %v", err)
	}
}

func TestRegistryOf(t *testing.T) {
	for ref, want := range map[string]string{
		"busybox":                "docker.io",
		"user/app:v1":            "docker.io",
		"127.0.0.1:5000/x":       "127.0.0.1:5000",
		"localhost/x":            "localhost",
		"ghcr.io/a/b@sha256:123": "ghcr.io",
	} {
		if got := registryOf(ref); got != want {
			t.Errorf("registryOf(%q) = %q, want %q", ref, got, want)
		}
	}
	if authKey("docker.io") != dockerHubAuthKey || authKey("https://reg:5000/") != "reg:5000" {
		t.Error("authKey")
	}
}

func TestPullHeader(t *testing.T) {
	for name, want := range map[string]string{
		"docker.io/library/busybox:latest": "latest: Pulling from library/busybox",
		"127.0.0.1:5000/app:v1":            "v1: Pulling from 127.0.0.1:5000/app",
		"127.0.0.1:5000/app@sha256:abc":    "sha256:abc: Pulling from 127.0.0.1:5000/app",
	} {
		if got := pullHeader(name); got != want {
			t.Errorf("pullHeader(%q) = %q, want %q", name, got, want)
		}
	}
	if familiar("docker.io/library/busybox:latest") != "busybox:latest" {
		t.Error("familiar")
	}
}

func TestPlainPullLines(t *testing.T) {
	var out bytes.Buffer
	v := newLineView(&out)
	v.started(&imagesv1.PullStarted{Name: "docker.io/library/busybox:latest"})
	d := "sha256:0123456789abcdef"
	for _, st := range []imagesv1.LayerStatus{
		imagesv1.LayerStatus_LAYER_STATUS_WAITING,
		imagesv1.LayerStatus_LAYER_STATUS_DOWNLOADING,
		imagesv1.LayerStatus_LAYER_STATUS_DOWNLOADING, // bytes only: no line
		imagesv1.LayerStatus_LAYER_STATUS_DOWNLOADED,
		imagesv1.LayerStatus_LAYER_STATUS_EXTRACTING,
		imagesv1.LayerStatus_LAYER_STATUS_COMPLETE,
	} {
		v.layer(&imagesv1.LayerProgress{Digest: d, Status: st})
	}
	want := "latest: Pulling from library/busybox\n" +
		"0123456789ab: Waiting\n0123456789ab: Downloading\n0123456789ab: Download complete\n" +
		"0123456789ab: Extracting\n0123456789ab: Pull complete\n"
	if out.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestParsePlatform(t *testing.T) {
	p, err := parsePlatform("linux/arm64/v8")
	if err != nil || p.GetOs() != "linux" || p.GetArchitecture() != "arm64" || p.GetVariant() != "v8" {
		t.Errorf("%v %v", p, err)
	}
	if _, err := parsePlatform("linux"); ExitCode(err) != ExitUsage {
		t.Errorf("bad platform: %v", err)
	}
}
