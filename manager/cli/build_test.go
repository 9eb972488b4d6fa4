package cli

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/berth-project/berth/manager/builder/dockerignore"
)

func TestWriteContext(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"Dockerfile":          "FROM x\n",
		"build/Dockerfile.ci": "FROM y\n",
		"build/other":         "o\n",
		"app/main.go":         "package main\n",
		"app/debug.log":       "log\n",
		"node_modules/m/i.js": "x\n",
		"docs/keep.md":        "k\n",
		"docs/drop.md":        "d\n",
		".dockerignore":       "*/*.log\nnode_modules\nbuild\ndocs\n!docs/keep.md\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("app/main.go", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ig, err := dockerignore.Read(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := contextNames(t, dir, "build/Dockerfile.ci", ig)
	want := []string{".dockerignore", "Dockerfile", "app/", "app/main.go", "build/Dockerfile.ci", "docs/keep.md", "link->app/main.go"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("context %q\nwant %q", got, want)
	}
	// An excluded directory holding the Dockerfile is read (the Dockerfile
	// only), also with no exceptions.
	ig, _ = dockerignore.New([]string{"build", "docs"})
	if got := contextNames(t, dir, "build/Dockerfile.ci", ig); slices.Contains(got, "build/other") || !slices.Contains(got, "build/Dockerfile.ci") || slices.Contains(got, "docs/keep.md") {
		t.Errorf("without exceptions: %q", got)
	}
}

// contextNames are the names in writeContext's tar.
func contextNames(t *testing.T, dir, dockerfile string, ig *dockerignore.Ignore) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := writeContext(&buf, dir, dockerfile, ig); err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s owned by %d:%d", hdr.Name, hdr.Uid, hdr.Gid)
		}
		if hdr.Typeflag == tar.TypeSymlink {
			got = append(got, hdr.Name+"->"+hdr.Linkname)
			continue
		}
		got = append(got, hdr.Name)
	}
	slices.Sort(got)
	return got
}

func TestDockerfileIn(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Other"), []byte("FROM a\n"), 0o644)
	outside := filepath.Join(t.TempDir(), "Outside")
	os.WriteFile(outside, []byte("FROM b\n"), 0o644)
	if rel, content, err := dockerfileIn(dir, "Other"); err != nil || rel != "Other" || content != nil {
		t.Errorf("-f Other (relative to the context): %q %q %v", rel, content, err)
	}
	if rel, content, err := dockerfileIn(dir, filepath.Join(dir, "Other")); err != nil || rel != "Other" || content != nil {
		t.Errorf("-f DIR/Other: %q %q %v", rel, content, err)
	}
	if rel, content, err := dockerfileIn(dir, outside); err != nil || rel != "" || string(content) != "FROM b\n" {
		t.Errorf("-f outside: %q %q %v", rel, content, err)
	}
	if _, _, err := dockerfileIn(dir, "missing"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("-f missing: %v", err)
	}
}
