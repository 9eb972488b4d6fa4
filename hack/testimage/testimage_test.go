package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// busybox-static is a declared dependency of the tests: fail, don't skip.
func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(DefaultBusybox); err != nil {
		t.Fatalf("%s is missing: install busybox-static: %v", DefaultBusybox, err)
	}
}

func TestAppletsExistInBusybox(t *testing.T) {
	requireBusybox(t)
	out, err := exec.Command(DefaultBusybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	have := strings.Fields(string(out))
	for _, a := range Applets() {
		if !slices.Contains(have, a) {
			t.Errorf("applet %q is not built into %s", a, DefaultBusybox)
		}
	}
}

func TestWriteBundle(t *testing.T) {
	requireBusybox(t)
	dir := t.TempDir()
	if err := WriteBundle(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")

	host, err := os.ReadFile(DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(rootfs, "bin/busybox"))
	if err != nil || !bytes.Equal(got, host) {
		t.Fatalf("rootfs /bin/busybox differs from %s (err %v)", DefaultBusybox, err)
	}
	for _, a := range Applets() {
		if target, err := os.Readlink(filepath.Join(rootfs, "bin", a)); err != nil || target != "busybox" {
			t.Errorf("/bin/%s -> %q, %v; want -> busybox", a, target, err)
		}
	}
	// The applet symlinks work: busybox picks the applet from argv[0].
	out, err := exec.Command(filepath.Join(rootfs, "bin/echo"), "hello").Output()
	if err != nil || string(out) != "hello\n" {
		t.Errorf("rootfs /bin/echo hello: %q, %v", out, err)
	}

	if _, err := os.Lstat(filepath.Join(rootfs, "etc/berth-deleted")); !os.IsNotExist(err) {
		t.Errorf("/etc/berth-deleted: want it deleted by the whiteout, stat error %v", err)
	}
	if names := readDirNames(t, filepath.Join(rootfs, "opt/old")); !slices.Equal(names, []string{"b"}) {
		t.Errorf("/opt/old holds %q, want only b (opaque whiteout)", names)
	}
	for name, want := range map[string]string{
		"etc/berth-release": "berth test image\n",
		"etc/resolv.conf":   "",
		"etc/hostname":      "berth\n",
	} {
		if got, err := os.ReadFile(filepath.Join(rootfs, name)); err != nil || string(got) != want {
			t.Errorf("/%s = %q, %v; want %q", name, got, err, want)
		}
	}
	for name, want := range map[string]string{
		"etc/passwd": "berth:x:1000:1000:",
		"etc/group":  "extra:x:1001:berth\n",
	} {
		if got, err := os.ReadFile(filepath.Join(rootfs, name)); err != nil || !strings.Contains(string(got), want) {
			t.Errorf("/%s = %q, %v; want it to contain %q", name, got, err, want)
		}
	}
	for name, want := range map[string]fs.FileMode{
		"tmp":  fs.ModeDir | fs.ModeSticky | 0o777,
		"root": fs.ModeDir | 0o700,
		"proc": fs.ModeDir | 0o755,
		"sys":  fs.ModeDir | 0o755,
		"dev":  fs.ModeDir | 0o755,
	} {
		if fi, err := os.Lstat(filepath.Join(rootfs, name)); err != nil || fi.Mode() != want {
			t.Errorf("/%s: mode %v, %v; want %v", name, fi.Mode(), err, want)
		}
	}

	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("rlimits")) {
		t.Error("config.json sets rlimits; the test hosts cannot raise them")
	}
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if !strings.HasPrefix(spec.Version, "1.") || spec.Root.Path != "rootfs" || spec.Root.Readonly {
		t.Errorf("version %q, root %+v; want 1.x and a writable rootfs", spec.Version, spec.Root)
	}
	p := spec.Process
	if !slices.Equal(p.Args, []string{"sh"}) || p.Terminal || p.Cwd != "/" || p.User.UID != 0 || p.User.GID != 0 || !p.NoNewPrivileges {
		t.Errorf("process = %+v; want sh as 0:0 in /, no terminal, no new privileges", p)
	}
	if !slices.Contains(p.Env, "PATH=/bin:/usr/bin") || !slices.Contains(p.Env, "TERM=xterm") {
		t.Errorf("env = %q", p.Env)
	}
	for _, c := range [][]string{p.Capabilities.Bounding, p.Capabilities.Effective, p.Capabilities.Permitted} {
		if len(c) != 14 || !slices.Contains(c, "CAP_NET_BIND_SERVICE") || slices.Contains(c, "CAP_SYS_ADMIN") {
			t.Errorf("capabilities = %q; want docker's 14 defaults", c)
		}
	}
	if spec.Hostname != "berth" {
		t.Errorf("hostname = %q", spec.Hostname)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range spec.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.CgroupNamespace} {
		if !slices.Contains(ns, want) {
			t.Errorf("namespaces %q lack %q", ns, want)
		}
	}
	var mounts []string
	for _, m := range spec.Mounts {
		mounts = append(mounts, m.Destination+":"+m.Type)
	}
	if want := []string{"/proc:proc", "/dev:tmpfs", "/dev/pts:devpts", "/dev/shm:tmpfs", "/dev/mqueue:mqueue", "/sys:sysfs", "/sys/fs/cgroup:cgroup"}; !slices.Equal(mounts, want) {
		t.Errorf("mounts = %q, want %q", mounts, want)
	}
	if d := spec.Linux.Resources.Devices; len(d) != 1 || d[0].Allow || d[0].Access != "rwm" {
		t.Errorf("device rules = %+v; want only deny all", d)
	}
	if !slices.Contains(spec.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(spec.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %q, readonly %q", spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths)
	}
}

func TestBundleArgsAndTweakedSpec(t *testing.T) {
	requireBusybox(t)
	dir := t.TempDir()
	if err := WriteBundle(dir, Options{Args: []string{"sleep", "10"}}); err != nil {
		t.Fatal(err)
	}
	if spec := readSpec(t, dir); !slices.Equal(spec.Process.Args, []string{"sleep", "10"}) {
		t.Errorf("args = %q", spec.Process.Args)
	}

	spec := DefaultSpec("id", "-u")
	spec.Process.User = specs.User{UID: 1000, GID: 1000}
	spec.Process.Capabilities.Bounding = spec.Process.Capabilities.Bounding[:1]
	if err := WriteSpec(dir, spec); err != nil {
		t.Fatal(err)
	}
	got := readSpec(t, dir)
	if !slices.Equal(got.Process.Args, []string{"id", "-u"}) || got.Process.User.UID != 1000 {
		t.Errorf("process = %+v", got.Process)
	}
	if len(got.Process.Capabilities.Effective) != 14 {
		t.Error("changing the bounding set changed the effective set: DefaultSpec shares slices")
	}
}

func TestLayers(t *testing.T) {
	requireBusybox(t)
	layers, err := Layers(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 || layers[0].Name != "base" || layers[1].Name != "overlay" {
		t.Fatalf("want layers base and overlay, got %d", len(layers))
	}
	for _, l := range layers {
		if l.DiffID != digest.FromBytes(l.Tar) {
			t.Errorf("layer %s: diffID is not the sha256 of its tar", l.Name)
		}
		if d := l.Gzip.Descriptor; d.Digest != digest.FromBytes(l.Gzip.Data) || d.Size != int64(len(l.Gzip.Data)) || d.MediaType != ocispec.MediaTypeImageLayerGzip {
			t.Errorf("layer %s: gzip descriptor %+v does not describe its data", l.Name, d)
		}
		if !bytes.Equal(gunzip(t, l.Gzip.Data), l.Tar) {
			t.Errorf("layer %s: gzip blob does not decompress to its tar", l.Name)
		}
		var names []string
		tr := tar.NewReader(bytes.NewReader(l.Tar))
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(epoch()) {
				t.Errorf("layer %s: %s owned by %d:%d, mtime %v; want 0:0 at %v", l.Name, hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime, epoch())
			}
			names = append(names, strings.TrimSuffix(hdr.Name, "/"))
		}
		if !slices.IsSorted(names) {
			t.Errorf("layer %s: entries not sorted: %q", l.Name, names)
		}
		want := map[string][]string{
			"base":    {"bin/busybox", "bin/sh", "etc/berth-deleted", "opt/old/a", "etc/passwd", "etc/group", "etc/hosts", "etc/resolv.conf", "tmp"},
			"overlay": {"etc/berth-release", "etc/.wh.berth-deleted", "opt/old/.wh..wh..opq", "opt/old/b"},
		}[l.Name]
		for _, w := range want {
			if !slices.Contains(names, w) {
				t.Errorf("layer %s lacks %s", l.Name, w)
			}
		}
	}
}

func TestExtraLayers(t *testing.T) {
	requireBusybox(t)
	img, err := Build(Options{ExtraLayers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 5 {
		t.Fatalf("want 5 layers, got %d", len(img.Layers))
	}
	for i, l := range img.Layers[2:] {
		name := fmt.Sprintf("extra-%d", i+1)
		if l.Name != name {
			t.Errorf("layer %d is %s, want %s", i+2, l.Name, name)
		}
		files := tarFiles(t, l.Tar)
		if got, want := string(files[fmt.Sprintf("layers/%d", i+1)]), fmt.Sprintf("%d\n", i+1); got != want || len(files) != 1 {
			t.Errorf("layer %s: files %q, want only layers/%d = %q", l.Name, files, i+1, want)
		}
	}
	var config ocispec.Image
	if err := json.Unmarshal(img.Config.Data, &config); err != nil {
		t.Fatal(err)
	}
	if len(config.RootFS.DiffIDs) != 5 || len(config.History) != 5 {
		t.Errorf("config has %d diff IDs and %d history entries, want 5", len(config.RootFS.DiffIDs), len(config.History))
	}
	dir := t.TempDir()
	if err := WriteRootfs(dir, Options{ExtraLayers: 3}); err != nil {
		t.Fatal(err)
	}
	if names := readDirNames(t, filepath.Join(dir, "layers")); fmt.Sprint(names) != "[1 2 3]" {
		t.Errorf("rootfs /layers: %v", names)
	}
}

func TestOCILayout(t *testing.T) {
	requireBusybox(t)
	dir := t.TempDir()
	if err := WriteOCILayout(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	var layout ocispec.ImageLayout
	readJSON(t, filepath.Join(dir, "oci-layout"), &layout)
	if layout.Version != ocispec.ImageLayoutVersion {
		t.Errorf("oci-layout version %q", layout.Version)
	}
	// Every blob is named after its sha256.
	for _, name := range readDirNames(t, filepath.Join(dir, "blobs/sha256")) {
		if d := digest.FromBytes(readFile(t, filepath.Join(dir, "blobs/sha256", name))); d.Encoded() != name {
			t.Errorf("blob %s has digest %s", name, d)
		}
	}
	blob := func(d ocispec.Descriptor) []byte {
		t.Helper()
		b := readFile(t, filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded()))
		if digest.FromBytes(b) != d.Digest || int64(len(b)) != d.Size {
			t.Fatalf("blob %s: size %d, want %d", d.Digest, len(b), d.Size)
		}
		return b
	}

	var index ocispec.Index
	readJSON(t, filepath.Join(dir, "index.json"), &index)
	if index.SchemaVersion != 2 || len(index.Manifests) != 1 {
		t.Fatalf("index = %+v; want one manifest", index)
	}
	md := index.Manifests[0]
	if md.MediaType != ocispec.MediaTypeImageManifest ||
		md.Annotations[ocispec.AnnotationRefName] != "latest" ||
		md.Annotations[AnnotationContainerdImageName] != DefaultName {
		t.Errorf("manifest descriptor = %+v", md)
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(blob(md), &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.MediaType != ocispec.MediaTypeImageManifest || manifest.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Errorf("manifest media types %q, config %q", manifest.MediaType, manifest.Config.MediaType)
	}
	var config ocispec.Image
	if err := json.Unmarshal(blob(manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	if config.Architecture != runtime.GOARCH || config.OS != "linux" || !slices.Equal(config.Config.Cmd, []string{"sh"}) ||
		!slices.Contains(config.Config.Env, "PATH=/bin:/usr/bin") {
		t.Errorf("config = %+v", config)
	}
	if len(manifest.Layers) != 2 || len(config.RootFS.DiffIDs) != 2 || len(config.History) != 2 {
		t.Fatalf("%d layers, %d diff_ids, %d history entries; want 2 each", len(manifest.Layers), len(config.RootFS.DiffIDs), len(config.History))
	}
	for i, ld := range manifest.Layers {
		if ld.MediaType != ocispec.MediaTypeImageLayerGzip {
			t.Errorf("layer %d media type %q", i, ld.MediaType)
		}
		uncompressed := gunzip(t, blob(ld))
		if d := digest.FromBytes(uncompressed); d != config.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: decompressed digest %s, diff_id %s", i, d, config.RootFS.DiffIDs[i])
		}
		if i == 1 {
			names := tarNames(t, uncompressed)
			for _, w := range []string{"etc/.wh.berth-deleted", "opt/old/.wh..wh..opq"} {
				if !slices.Contains(names, w) {
					t.Errorf("overlay layer lacks whiteout %s: %q", w, names)
				}
			}
		}
	}
}

func TestOCIArchiveMatchesLayout(t *testing.T) {
	requireBusybox(t)
	dir := t.TempDir()
	opts := Options{Name: "example.com/team/tool:v1"}
	if err := WriteOCILayout(dir, opts); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteOCIArchive(&buf, opts); err != nil {
		t.Fatal(err)
	}
	files := tarFiles(t, buf.Bytes())
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if got, ok := files[rel]; !ok || !bytes.Equal(got, readFile(t, p)) {
			t.Errorf("archive entry %s differs from the layout", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) || n != 6 {
		t.Errorf("layout has %d files, archive %d; want 6 (oci-layout, index.json, 4 blobs)", n, len(files))
	}
	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if a := index.Manifests[0].Annotations; a[ocispec.AnnotationRefName] != "v1" || a[AnnotationContainerdImageName] != "example.com/team/tool:v1" {
		t.Errorf("annotations = %q", a)
	}
}

func TestDockerArchive(t *testing.T) {
	requireBusybox(t)
	var buf bytes.Buffer
	if err := WriteDockerArchive(&buf, Options{}); err != nil {
		t.Fatal(err)
	}
	files := tarFiles(t, buf.Bytes())
	var manifest []DockerManifest
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, []string{"berth-test:latest"}) {
		t.Fatalf("manifest.json = %+v", manifest)
	}
	m := manifest[0]
	configData, ok := files[m.Config]
	if !ok || m.Config != digest.FromBytes(configData).Encoded()+".json" {
		t.Fatalf("config %s missing or not named after its sha256", m.Config)
	}
	var config ocispec.Image
	if err := json.Unmarshal(configData, &config); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != len(config.RootFS.DiffIDs) {
		t.Fatalf("%d layers, %d diff_ids", len(m.Layers), len(config.RootFS.DiffIDs))
	}
	for i, l := range m.Layers {
		data, ok := files[l]
		if !ok {
			t.Fatalf("layer %s missing", l)
		}
		if d := digest.FromBytes(data); d != config.RootFS.DiffIDs[i] {
			t.Errorf("layer %s: sha256 %s, diff_id %s", l, d, config.RootFS.DiffIDs[i])
		}
		id := strings.TrimSuffix(l, "/layer.tar")
		if string(files[id+"/VERSION"]) != "1.0" {
			t.Errorf("%s/VERSION = %q", id, files[id+"/VERSION"])
		}
		var v1 struct{ ID string }
		if err := json.Unmarshal(files[id+"/json"], &v1); err != nil || v1.ID != id {
			t.Errorf("%s/json: id %q, %v", id, v1.ID, err)
		}
	}
	var repos map[string]map[string]string
	if err := json.Unmarshal(files["repositories"], &repos); err != nil {
		t.Fatal(err)
	}
	if top := strings.TrimSuffix(m.Layers[len(m.Layers)-1], "/layer.tar"); repos["berth-test"]["latest"] != top {
		t.Errorf("repositories = %q; want berth-test:latest -> %s", repos, top)
	}
}

func TestDeterministic(t *testing.T) {
	requireBusybox(t)
	a, err := Build(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest.Descriptor.Digest != b.Manifest.Descriptor.Digest {
		t.Errorf("two builds give manifests %s and %s", a.Manifest.Descriptor.Digest, b.Manifest.Descriptor.Digest)
	}
	for name, write := range map[string]func(io.Writer, Options) error{
		"oci-archive": WriteOCIArchive, "docker-archive": WriteDockerArchive,
	} {
		var x, y bytes.Buffer
		if err := write(&x, Options{}); err != nil {
			t.Fatal(err)
		}
		if err := write(&y, Options{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x.Bytes(), y.Bytes()) {
			t.Errorf("%s: two builds differ", name)
		}
	}
}

func TestMissingBusyboxFails(t *testing.T) {
	if _, err := Build(Options{Busybox: filepath.Join(t.TempDir(), "busybox")}); err == nil {
		t.Fatal("Build with a missing busybox succeeded")
	}
}

func TestParseReference(t *testing.T) {
	for _, tc := range []struct{ in, full, familiar string }{
		{"", "docker.io/library/berth-test:latest", "berth-test:latest"},
		{"berth-test", "docker.io/library/berth-test:latest", "berth-test:latest"},
		{"berth-test:v2", "docker.io/library/berth-test:v2", "berth-test:v2"},
		{"team/tool", "docker.io/team/tool:latest", "team/tool:latest"},
		{"docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"},
		{"localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x:latest"},
		{"example.com/a/b:c", "example.com/a/b:c", "example.com/a/b:c"},
	} {
		r, err := parseReference(tc.in)
		if err != nil || r.full != tc.full || r.familiar() != tc.familiar {
			t.Errorf("parseReference(%q) = %q, %q, %v; want %q, %q", tc.in, r.full, r.familiar(), err, tc.full, tc.familiar)
		}
	}
	for _, bad := range []string{"x@sha256:abcd", "x:", ":tag", "/x"} {
		if _, err := parseReference(bad); err == nil {
			t.Errorf("parseReference(%q) succeeded", bad)
		}
	}
}

func readSpec(t *testing.T, dir string) specs.Spec {
	t.Helper()
	var spec specs.Spec
	readJSON(t, filepath.Join(dir, "config.json"), &spec)
	return spec
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	if err := json.Unmarshal(readFile(t, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tarFiles returns the regular files of a tar by name.
func tarFiles(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	entries, err := readTar(b)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.hdr.Typeflag == tar.TypeReg {
			files[e.hdr.Name] = e.data
		}
	}
	return files
}

func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	entries, err := readTar(b)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.hdr.Name)
	}
	return names
}
