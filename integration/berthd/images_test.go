//go:build linux

package berthd

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/registry"
	"github.com/berth-project/berth/integration/testenv"
)

// withRegistry starts Debian's docker-registry on 127.0.0.1 (stopped by
// its PID when the test ends) and pushes hack/testimage's image into it as
// berth-test:latest; it returns the registry and the image's reference.
func withRegistry(t *testing.T) (*registry.Registry, string) {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := exec.LookPath(registry.Program); err != nil {
		t.Skipf("%s not installed (hack/deps.sh installs it)", registry.Program)
	}
	reg := registry.New(t)
	ref, err := reg.PushTestImage(context.Background(), "berth-test:latest", testimage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return reg, ref
}

// imageIDs is `berth images -q` as a list.
func (d *daemon) imageIDs() []string {
	d.t.Helper()
	return strings.Fields(d.run("images", "-q"))
}

// TestPrivateRegistryWorkflow is the workflow of a private registry:
// pull, list, tag, push, GET /v2/_catalog, inspect, history, rmi.
func TestPrivateRegistryWorkflow(t *testing.T) {
	reg, ref := withRegistry(t)
	d := startDaemon(t, options{})

	// Not a terminal: a plain line per change of a layer's status.
	out := d.run("pull", ref)
	for _, want := range []string{"latest: Pulling from " + reg.Addr + "/berth-test", ": Pull complete", "Digest: sha256:", "Status: Downloaded newer image for " + ref, ref + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("pull output lacks %q:\n%s", want, out)
		}
	}
	if out := d.run("pull", "-q", ref); out != ref+"\n" {
		t.Errorf("pull -q: %q, want %q", out, ref+"\n")
	}
	if out := d.run("pull", ref); !strings.Contains(out, "Status: Image is up to date for "+ref) {
		t.Errorf("second pull:\n%s", out)
	}

	out = d.run("images")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "REPOSITORY") || strings.Join(strings.Fields(lines[0]), " ") != "REPOSITORY TAG IMAGE ID CREATED SIZE" {
		t.Fatalf("images:\n%s", out)
	}
	f := strings.Fields(lines[1])
	if f[0] != reg.Addr+"/berth-test" || f[1] != "latest" || len(f[2]) != 12 {
		t.Errorf("images row: %q", lines[1])
	}
	id := f[2]
	if ids := d.imageIDs(); !slices.Equal(ids, []string{id}) {
		t.Errorf("images -q: %q, want [%s]", ids, id)
	}
	if out := d.run("images", "--digests"); !strings.Contains(out, "DIGEST") || !strings.Contains(out, "sha256:") {
		t.Errorf("images --digests:\n%s", out)
	}
	if out := d.run("image", "ls", "-a", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"); out != ref+" "+id+"\n" {
		t.Errorf("image ls --format: %q", out)
	}

	mine := reg.Addr + "/mine:v1"
	if out := d.run("tag", ref, mine); out != "" {
		t.Errorf("tag wrote %q", out)
	}
	if out := d.run("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, mine) {
		t.Errorf("images after tag:\n%s", out)
	}
	out = d.run("push", mine)
	for _, want := range []string{"The push refers to repository [" + reg.Addr + "/mine]", ": Pushed", "v1: digest: sha256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	repos, err := reg.Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(repos, "mine") {
		t.Errorf("GET /v2/_catalog: %q, want mine among them", repos)
	}

	var inspect []map[string]any
	if err := json.Unmarshal([]byte(d.run("image", "inspect", mine)), &inspect); err != nil {
		t.Fatal(err)
	}
	if len(inspect) != 1 || !strings.HasPrefix(inspect[0]["Id"].(string), "sha256:"+id) {
		t.Fatalf("image inspect: %v", inspect)
	}
	tags, _ := inspect[0]["RepoTags"].([]any)
	if len(tags) != 2 {
		t.Errorf("RepoTags: %v, want both names", tags)
	}
	if out := d.run("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", mine); out != "linux/"+runtime.GOARCH+"\n" {
		t.Errorf("inspect --format: %q", out)
	}
	if out := d.run("history", mine); !strings.HasPrefix(out, "IMAGE") || !strings.Contains(out, id) {
		t.Errorf("history:\n%s", out)
	}

	if out := d.run("rmi", mine); out != "Untagged: "+mine+"\n" {
		t.Errorf("rmi of one name of two: %q", out)
	}
	out = d.run("rmi", ref)
	if !strings.Contains(out, "Untagged: "+ref) || !strings.Contains(out, "Deleted: sha256:"+id) {
		t.Errorf("rmi of the last name:\n%s", out)
	}
	if ids := d.imageIDs(); len(ids) != 0 {
		t.Errorf("images after rmi: %q", ids)
	}
	// Pulled back from the registry, under the name pushed.
	d.run("pull", "-q", mine)
	if ids := d.imageIDs(); !slices.Equal(ids, []string{id}) {
		t.Errorf("images after pulling %s: %q", mine, ids)
	}
}

// TestSaveLoadRoundTrip saves an image in both formats, removes it, and
// loads it back from each archive.
func TestSaveLoadRoundTrip(t *testing.T) {
	_, ref := withRegistry(t)
	d := startDaemon(t, options{})
	d.run("pull", "-q", ref)
	id := d.imageIDs()[0]
	for _, format := range []string{"docker-archive", "oci-archive"} {
		t.Run(format, func(t *testing.T) {
			archive := filepath.Join(d.dir, format+".tar")
			if out := d.run("save", "--format", format, "-o", archive, ref); out != "" {
				t.Errorf("save wrote %q", out)
			}
			if st, err := os.Stat(archive); err != nil || st.Size() == 0 {
				t.Fatalf("the archive: %v", err)
			}
			d.run("rmi", ref)
			if ids := d.imageIDs(); len(ids) != 0 {
				t.Fatalf("images after rmi: %q", ids)
			}
			out := d.run("load", "-i", archive)
			if !strings.HasPrefix(out, "Loaded image") {
				t.Errorf("load: %q", out)
			}
			if ids := d.imageIDs(); !slices.Equal(ids, []string{id}) {
				t.Errorf("images after load: %q, want [%s]", ids, id)
			}
		})
	}
	// docker-archive names the image: load restores the name.
	if out := d.run("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, ref) {
		t.Errorf("images after load:\n%s", out)
	}
}

// TestImportAndPrune imports a root filesystem tarball, then prunes.
func TestImportAndPrune(t *testing.T) {
	testenv.RequireRoot(t)
	d := startDaemon(t, options{})
	dir := filepath.Join(d.dir, "rootfs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(d.dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	out := d.run("import", "-c", "CMD [\"/hello\"]", tarball, "imported:v1")
	if !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("import: %q", out)
	}
	if out := d.run("image", "inspect", "--format", "{{json .Config.Cmd}}", "imported:v1"); out != "[\"/hello\"]\n" {
		t.Errorf("Cmd of the imported image: %q", out)
	}
	if out := d.run("image", "prune", "-f"); !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("image prune: %q", out)
	}
	if ids := d.imageIDs(); len(ids) != 1 {
		t.Errorf("a named image went with a dangling-only prune: %q", ids)
	}
	out = d.run("image", "prune", "-a", "-f")
	if !strings.Contains(out, "untagged: imported:v1") || !strings.Contains(out, "deleted: sha256:") {
		t.Errorf("image prune -a:\n%s", out)
	}
	if ids := d.imageIDs(); len(ids) != 0 {
		t.Errorf("images after prune -a: %q", ids)
	}
}

// TestImageErrors: an unknown image, a malformed reference and a registry
// that is down read as docker's errors and exit 1; the daemon serves on.
func TestImageErrors(t *testing.T) {
	testenv.RequireRoot(t)
	d := startDaemon(t, options{})

	for _, args := range [][]string{{"rmi", "nosuch"}, {"image", "inspect", "nosuch"}, {"history", "nosuch"}, {"tag", "nosuch", "other"}, {"save", "-o", filepath.Join(d.dir, "x.tar"), "nosuch"}} {
		r := d.berth("", args...)
		if r.code != 1 || !strings.Contains(r.stderr, "Error response from daemon: No such image: nosuch") {
			t.Errorf("berth %q: %v", args, r)
		}
	}
	if _, err := os.Stat(filepath.Join(d.dir, "x.tar")); !os.IsNotExist(err) {
		t.Errorf("a failed save left its file: %v", err)
	}

	r := d.berth("", "pull", "UPPER/Case")
	if r.code != 1 || !strings.Contains(r.stderr, "Error response from daemon: invalid reference format") {
		t.Errorf("pull of a malformed reference: %v", r)
	}

	// A registry that is down: a port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r = d.berth("", "pull", addr+"/x:latest")
	if r.code != 1 || !strings.Contains(r.stderr, "Error response from daemon:") || !strings.Contains(r.stderr, fmt.Sprintf("registry %s is unreachable", addr)) {
		t.Errorf("pull from a registry that is down: %v", r)
	}
	// A truncated archive: InvalidArgument, nothing loaded.
	garbage := filepath.Join(d.dir, "garbage.tar")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a tar", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = d.berth("", "load", "-i", garbage)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "Error response from daemon: ") {
		t.Errorf("load of a broken archive: %v", r)
	}
	r = d.berth("", "pull")
	if r.code != 1 || !strings.Contains(r.stderr, `"berth pull" requires exactly 1 argument`) {
		t.Errorf("pull without arguments: %v", r)
	}
	if ids := d.imageIDs(); len(ids) != 0 {
		t.Errorf("failed calls left images: %q", ids)
	}
}

// TestLoginPullPush: a registry that wants a bearer token (from a token
// server in front of it that checks username and password). berth login
// writes the credentials into $BERTH_CONFIG/config.json, and the CLI
// sends them with pull and push; berth logout forgets them.
func TestLoginPullPush(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath(registry.Program); err != nil {
		t.Skipf("%s not installed", registry.Program)
	}
	const user, pass = "berth", "s3cret"
	reg := registry.NewWithLogin(t, user, pass)
	front := reg.Addr
	ref, err := reg.PushTestImage(context.Background(), "private:v1", testimage.Options{})
	if err != nil {
		t.Fatal(err)
	}

	d := startDaemon(t, options{})
	env := []string{"BERTH_CONFIG=" + filepath.Join(d.dir, "client")}
	run := func(stdin string, args ...string) result {
		return berth(t, env, stdin, append([]string{"-H", d.host}, args...)...)
	}
	if r := run("", "pull", ref); r.code != 1 || !strings.Contains(r.stderr, "Error response from daemon:") {
		t.Errorf("anonymous pull from a registry that wants credentials: %v", r)
	}
	// A wrong password is refused by the registry, and nothing is stored.
	if r := run("wrong\n", "login", "-u", user, "--password-stdin", front); r.code != 1 || !strings.Contains(r.stderr, "wrong username or password") {
		t.Errorf("login with a wrong password: %v", r)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "client", "config.json")); err == nil {
		if b, _ := os.ReadFile(filepath.Join(d.dir, "client", "config.json")); strings.Contains(string(b), front) {
			t.Errorf("a refused login was stored:\n%s", b)
		}
	}
	if r := run(pass+"\n", "login", "-u", user, "--password-stdin", front); r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("login: %v", r)
	}
	if r := run("", "pull", "-q", ref); r.code != 0 || r.stdout != ref+"\n" {
		t.Fatalf("pull after login: %v", r)
	}
	mine := front + "/mine:v1"
	if r := run("", "tag", ref, mine); r.code != 0 {
		t.Fatal(r)
	}
	if r := run("", "push", mine); r.code != 0 || !strings.Contains(r.stdout, "v1: digest: sha256:") {
		t.Fatalf("push after login: %v", r)
	}
	if r := run("", "logout", front); r.code != 0 || r.stdout != "Removing login credentials for "+front+"\n" {
		t.Errorf("logout: %v", r)
	}
	run("", "rmi", mine, ref)
	if r := run("", "pull", ref); r.code != 1 {
		t.Errorf("pull after logout: %v", r)
	}
}
