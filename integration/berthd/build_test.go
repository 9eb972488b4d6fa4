//go:build linux

package berthd

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// writeContext writes a build context directory of files (name →
// content) for t.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkNoBuildLeftovers fails when a build left containers, or images
// other than the test image and keep (intermediate ones, dangling).
func (d *daemon) checkNoBuildLeftovers(t *testing.T, what string, keep ...string) {
	t.Helper()
	if out := d.run("ps", "-aq"); out != "" {
		t.Errorf("%s: ps -a lists %q", what, out)
	}
	want := append([]string{image}, keep...)
	got := strings.Fields(d.run("images", "--format", "{{.Repository}}:{{.Tag}}"))
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: images %q, want %q", what, got, want)
	}
}

// TestBuild builds an image as docker's classic builder does: ARG with
// --build-arg, ENV, WORKDIR made, COPY from the context, RUN in a
// container without network, CMD; the output step by step; no
// intermediate container or image left; the image runs.
func TestBuild(t *testing.T) {
	d := containerDaemon(t, options{})
	dir := writeContext(t, map[string]string{
		"hello.txt": "from the context\n",
		"Dockerfile": `# a comment
FROM berth-test:latest
ARG WHO=world
ENV GREETING=hello
WORKDIR /app
COPY hello.txt .
RUN echo "$GREETING $WHO" > built.txt && \
    cat hello.txt >> built.txt
CMD ["cat", "/app/built.txt"]
`,
	})
	r := d.berth("", "build", "-t", "built:v1", "-t", "built:also", "--build-arg", "WHO=berth", dir)
	if r.code != 0 {
		t.Fatalf("build: %v\n%s", r, d.logTail())
	}
	for _, want := range []string{
		"Step 1/7 : FROM berth-test:latest\n",
		"Step 2/7 : ARG WHO=world\n",
		"Step 6/7 : RUN echo \"$GREETING $WHO\" > built.txt &&     cat hello.txt >> built.txt\n",
		"Step 7/7 : CMD [\"cat\", \"/app/built.txt\"]\n",
		"Successfully tagged built:v1\n",
		"Successfully tagged built:also\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("build output lacks %q:\n%s", want, r.stdout)
		}
	}
	m := regexp.MustCompile(`Successfully built ([0-9a-f]{12})\n`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no 'Successfully built <id>' in\n%s", r.stdout)
	}
	if n := len(regexp.MustCompile(`(?m)^ ---> [0-9a-f]{12}$`).FindAllString(r.stdout, -1)); n != 7 {
		t.Errorf("%d ' ---> <id>' lines, want 7:\n%s", n, r.stdout)
	}
	if id := strings.TrimSpace(d.run("image", "inspect", "-f", "{{.Id}}", "built:v1")); !strings.HasPrefix(id, "sha256:"+m[1]) {
		t.Errorf("built:v1 is %s, the build said %s", id, m[1])
	}
	if out := d.run("run", "--rm", "built:v1"); out != "hello berth\nfrom the context\n" {
		t.Errorf("run --rm built:v1 printed %q", out)
	}
	// The build arg is not in the image's environment; ENV and WORKDIR are.
	// Only the steps that change files add a layer (WORKDIR's directory,
	// COPY, RUN) to the base's two; ARG, ENV and CMD change the config.
	if out := d.run("image", "inspect", "-f", "{{len .RootFS.Layers}}", "built:v1"); out != "5\n" {
		t.Errorf("layers of the built image: %q, want 5", out)
	}
	if out := d.run("run", "--rm", "built:v1", "sh", "-c", `echo "${WHO:-unset} $GREETING $(pwd)"`); out != "unset hello /app\n" {
		t.Errorf("the image's environment: %q, want \"unset hello /app\"", out)
	}
	d.checkNoBuildLeftovers(t, "after the build", "built:v1", "built:also")

	// -q prints the ID only; a Dockerfile on stdin needs no context.
	r = d.berth("FROM berth-test:latest\nRUN echo quiet > /q\n", "build", "-q", "-t", "quiet", "-")
	if r.code != 0 || !regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`).MatchString(r.stdout) {
		t.Errorf("build -q -: %v", r)
	}
	if out := d.run("run", "--rm", "quiet", "cat", "/q"); out != "quiet\n" {
		t.Errorf("the image built from stdin: /q is %q", out)
	}
}

// TestBuildFailures: a RUN that fails ends the build with docker's
// message and exit 1, leaving no container and no named image; COPY of
// a file outside the context or excluded by .dockerignore is refused;
// ADD of a URL is refused.
func TestBuildFailures(t *testing.T) {
	d := containerDaemon(t, options{})
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM berth-test:latest\nENV A=b\nRUN echo before\nRUN echo failing; exit 3\nCMD [\"true\"]\n",
	})
	r := d.berth("", "build", "-t", "failed", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3") {
		t.Errorf("build with a failing RUN: %v", r)
	}
	if !strings.Contains(r.stdout, "failing\n") || strings.Contains(r.stdout, "Successfully") {
		t.Errorf("build with a failing RUN printed:\n%s", r.stdout)
	}
	d.checkNoBuildLeftovers(t, "after a failed RUN")

	for _, c := range []struct {
		name, dockerfile, want string
	}{
		{"outside", "FROM berth-test:latest\nCOPY ../secret /\n", "COPY failed: forbidden path outside the build context: ../secret"},
		{"ignored", "FROM berth-test:latest\nCOPY secret.txt /\n", "COPY failed: file not found in build context or excluded by .dockerignore: stat secret.txt: file does not exist"},
		{"ignored-dir", "FROM berth-test:latest\nCOPY private/key /\n", "COPY failed: file not found in build context or excluded by .dockerignore"},
		{"missing", "FROM berth-test:latest\nCOPY nothing.txt /\n", "COPY failed: file not found in build context or excluded by .dockerignore: stat nothing.txt"},
		{"url", "FROM berth-test:latest\nADD http://example.com/x /x\n", "ADD of a URL is not supported"},
		{"no-image", "FROM not-held:here\n", "pull it first"},
	} {
		dir := writeContext(t, map[string]string{
			"Dockerfile":    c.dockerfile,
			"secret.txt":    "secret\n",
			"private/key":   "key\n",
			"kept.txt":      "kept\n",
			".dockerignore": "secret.txt\nprivate\n",
		})
		r := d.berth("", "build", "-t", "refused", dir)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: build: %v\nwant exit 1 and %q", c.name, r, c.want)
		}
	}
	d.checkNoBuildLeftovers(t, "after the refused COPYs")

	// What .dockerignore leaves in is copied, directories' contents too;
	// ADD of a local tar extracts it.
	dir = writeContext(t, map[string]string{
		"Dockerfile":    "FROM berth-test:latest\nCOPY . /ctx/\nCMD [\"sh\", \"-c\", \"cd /ctx && find . -type f | sort\"]\n",
		"secret.txt":    "secret\n",
		"private/key":   "key\n",
		"sub/kept.txt":  "kept\n",
		".dockerignore": "secret.txt\nprivate\n",
	})
	d.run("build", "-t", "ctx", dir)
	if out := d.run("run", "--rm", "ctx"); out != "./.dockerignore\n./Dockerfile\n./sub/kept.txt\n" {
		t.Errorf("the context copied: %q", out)
	}
}
