//go:build linux

package berthd

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/integration/testenv"
)

// TestCommit commits a stopped and a running container: the new image is
// the old one with one more layer holding the container's changes, with
// the -c changes, author and message, and runs.
func TestCommit(t *testing.T) {
	d := containerDaemon(t, options{})
	d.run("run", "--name", "writer", image, "sh", "-c", "echo committed > /f; rm /bin/true")
	out := d.run("container", "commit", "-a", "Ann <ann@example.com>", "-m", "wrote /f",
		"-c", `CMD ["cat","/f"]`, "-c", "ENV GREETING=hi", "-c", "LABEL stage=test", "writer", "committed:v1")
	if !strings.HasPrefix(out, "sha256:") || len(strings.TrimSpace(out)) != 71 {
		t.Fatalf("commit printed %q, want sha256:<id>", out)
	}
	id := strings.TrimSpace(out)
	if got := d.run("image", "inspect", "-f", "{{.Id}}", "committed:v1"); strings.TrimSpace(got) != id {
		t.Errorf("committed:v1 is %q, commit printed %q", got, id)
	}
	if r := d.berth("", "run", "--rm", "committed:v1"); r.code != 0 || r.stdout != "committed\n" {
		t.Errorf("run --rm committed:v1 (CMD cat /f): %v", r)
	}
	if r := d.berth("", "run", "--rm", "committed:v1", "sh", "-c", "echo $GREETING; test -e /bin/true || echo deleted"); r.stdout != "hi\ndeleted\n" {
		t.Errorf("ENV and the deletion in the committed image: %v", r)
	}
	layers := func(ref string) int {
		return strings.Count(d.run("image", "inspect", "-f", `{{range .RootFS.Layers}}{{.}} {{end}}`, ref), "sha256:")
	}
	historyLines := func(ref string) int {
		return strings.Count(d.run("history", "-q", ref), "\n")
	}
	if b, c := layers(image), layers("committed:v1"); c != b+1 {
		t.Errorf("the committed image has %d layers, its base %d", c, b)
	}
	if b, c := historyLines(image), historyLines("committed:v1"); c != b+1 {
		t.Errorf("history of the committed image has %d entries, its base %d", c, b)
	}
	if out := d.run("image", "inspect", "-f", "{{.Author}}|{{.Config.Labels.stage}}", "committed:v1"); out != "Ann <ann@example.com>|test\n" {
		t.Errorf("author and label: %q", out)
	}
	if out := d.run("history", "--format", "{{.Comment}}", "committed:v1"); !strings.HasPrefix(out, "wrote /f\n") {
		t.Errorf("history's newest comment: %q", out)
	}
	if !strings.Contains(d.run("images"), "committed") {
		t.Error("images does not list the committed image")
	}
	archive := filepath.Join(d.dir, "committed.tar")
	d.run("save", "-o", archive, "committed:v1")
	d.run("rmi", "committed:v1")
	d.run("load", "-q", "-i", archive)
	if r := d.berth("", "run", "--rm", "committed:v1"); r.code != 0 || r.stdout != "committed\n" {
		t.Errorf("run the committed image saved and loaded again: %v", r)
	}
	// The container's command is the image's unless -c changes it.
	d.run("container", "commit", "writer", "committed:cmd")
	if out := d.run("image", "inspect", "-f", "{{json .Config.Cmd}}", "committed:cmd"); !strings.Contains(out, "echo committed") {
		t.Errorf("Cmd of a commit without changes: %q", out)
	}

	// A running container is paused while committed, and runs on.
	d.run("run", "-d", "--name", "live", image, "sh", "-c", "echo live > /g; while true; do sleep 0.1; done")
	waitFor(t, "the container to write /g", func() bool { return d.berth("", "exec", "live", "test", "-e", "/g").code == 0 })
	out = d.run("container", "commit", "live")
	id = strings.TrimSpace(out)
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("commit of a running container: %q", out)
	}
	if st := d.status("live"); st != "running 0" {
		t.Errorf("after commit: %q, want running", st)
	}
	if r := d.berth("", "run", "--rm", id, "cat", "/g"); r.code != 0 || r.stdout != "live\n" {
		t.Errorf("run the dangling committed image: %v", r)
	}
	if r := d.berth("", "container", "commit", "-c", "FROM x", "live"); r.code == 0 || !strings.Contains(r.stderr, "FROM") {
		t.Errorf("commit -c FROM: %v", r)
	}
	d.run("rm", "-f", "live")
	if r := d.berth("", "container", "commit", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "No such container") {
		t.Errorf("commit of an unknown container: %v", r)
	}
}

// TestCp copies files, directories and tar streams both ways, into a
// running and a stopped container, with docker's rules for where they go.
func TestCp(t *testing.T) {
	d := containerDaemon(t, options{})
	host := filepath.Join(d.dir, "cp")
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(host, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	read := func(rel string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(host, rel))
		if err != nil {
			t.Errorf("read %s: %v", rel, err)
		}
		return string(b)
	}
	write("in.txt", "hello\n")
	write("tree/a", "a\n")
	write("tree/sub/b", "b\n")
	cp := func(args ...string) { d.run(append([]string{"container", "cp"}, args...)...) }
	sh := func(name, script string) string { return d.run("exec", name, "sh", "-c", script) }

	d.run("run", "-d", "--name", "box", image, "sh", "-c", "while true; do sleep 0.1; done")
	cp(filepath.Join(host, "in.txt"), "box:/tmp/in.txt")
	cp(filepath.Join(host, "in.txt"), "box:/tmp/")
	cp(filepath.Join(host, "in.txt"), "box:renamed.txt")
	if out := sh("box", "cat /tmp/in.txt /renamed.txt; stat -c %u:%g:%a /tmp/in.txt"); out != "hello\nhello\n0:0:640\n" {
		t.Errorf("files copied in: %q", out)
	}
	cp(filepath.Join(host, "tree"), "box:/tmp/t")      // a new name
	cp(filepath.Join(host, "tree"), "box:/tmp")        // into a directory
	cp(filepath.Join(host, "tree")+"/.", "box:/tmp/c") // the contents
	if out := sh("box", "cat /tmp/t/a /tmp/t/sub/b /tmp/tree/sub/b /tmp/c/a"); out != "a\nb\nb\na\n" {
		t.Errorf("directories copied in: %q", out)
	}
	if r := d.berth("", "container", "cp", filepath.Join(host, "in.txt"), "box:/nosuchdir/"); r.code == 0 {
		t.Errorf("cp a file to a directory that does not exist: %v", r)
	}
	if r := d.berth("", "container", "cp", filepath.Join(host, "tree"), "box:/tmp/in.txt"); r.code == 0 {
		t.Errorf("cp a directory onto a file: %v", r)
	}

	sh("box", "mkdir -p /data/d && echo x > /data/d/x && echo y > /data/y && ln -s y /data/link")
	cp("box:/data/y", filepath.Join(host, "y.txt"))
	cp("box:/data", host)
	cp("box:/data/.", filepath.Join(host, "flat"))
	cp("box:/data/link", filepath.Join(host, "link"))
	cp("-L", "box:/data/link", filepath.Join(host, "followed"))
	if got := read("y.txt") + read("data/d/x") + read("flat/y") + read("followed"); got != "y\nx\ny\ny\n" {
		t.Errorf("copied out: %q", got)
	}
	sh("box", "chown 1234:5678 /data/y")
	cp("-a", "box:/data/y", filepath.Join(host, "owned"))
	cp("box:/data/y", filepath.Join(host, "mine"))
	for f, want := range map[string]string{"owned": "1234:5678", "mine": fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())} {
		if fi, err := os.Stat(filepath.Join(host, f)); err != nil {
			t.Error(err)
		} else if st := fi.Sys().(*syscall.Stat_t); fmt.Sprintf("%d:%d", st.Uid, st.Gid) != want {
			t.Errorf("%s copied out is owned by %d:%d, want %s", f, st.Uid, st.Gid, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(host, "link")); err != nil || l != "y" {
		t.Errorf("a symlink copied out without -L: %q, %v", l, err)
	}
	if r := d.berth("", "container", "cp", "box:/nosuch", host); r.code == 0 || !strings.Contains(r.stderr, "Could not find the file /nosuch in container box") {
		t.Errorf("cp of a missing path: %v", r)
	}

	// "-": a tar stream on stdout, and from stdin.
	r := d.berth("", "container", "cp", "box:/data", "-")
	if r.code != 0 {
		t.Fatalf("cp box:/data -: %v", r)
	}
	names := tarNames(t, r.stdout)
	if !strings.Contains(names, "data/ ") || !strings.Contains(names, "data/d/x ") {
		t.Errorf("cp box:/data - wrote entries %q", names)
	}
	in := makeTar(t, tarEntry{name: "fromtar/", dir: true}, tarEntry{name: "fromtar/f", body: "streamed\n"})
	if r := d.berth(in, "container", "cp", "-", "box:/tmp"); r.code != 0 {
		t.Errorf("cp - box:/tmp: %v", r)
	}
	if out := sh("box", "cat /tmp/fromtar/f"); out != "streamed\n" {
		t.Errorf("streamed in: %q", out)
	}
	if r := d.berth(in, "container", "cp", "-", "box:/tmp/in.txt"); r.code == 0 {
		t.Errorf("cp - onto a file: %v", r)
	}

	// A stopped container: its snapshot is mounted for the copy.
	d.run("stop", "-t", "0", "box")
	cp(filepath.Join(host, "in.txt"), "box:/stopped.txt")
	cp("box:/tmp/t", filepath.Join(host, "fromstopped"))
	if got := read("fromstopped/sub/b"); got != "b\n" {
		t.Errorf("copied out of a stopped container: %q", got)
	}
	d.run("start", "box")
	if out := sh("box", "cat /stopped.txt"); out != "hello\n" {
		t.Errorf("copied into a stopped container: %q", out)
	}
	d.run("rm", "-f", "box")
}

// TestCpEscapes: a symlink in the container resolves inside its root, and
// a tar entry that leaves the destination is refused.
func TestCpEscapes(t *testing.T) {
	d := containerDaemon(t, options{})
	var rnd [6]byte
	rand.Read(rnd[:])
	name := "berth-cp-escape-" + hex.EncodeToString(rnd[:])
	hostFile := filepath.Join("/tmp", name)
	t.Cleanup(func() { os.Remove(hostFile) })
	src := filepath.Join(d.dir, "payload")
	if err := os.WriteFile(src, []byte("payload\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	d.run("run", "-d", "--name", "esc", image, "sh", "-c", "while true; do sleep 0.1; done")
	d.run("exec", "esc", "sh", "-c", "mkdir -p /tmp && ln -s / /escape && ln -s ../../../../../../../../tmp /up && ln -s /tmp/"+name+" /dangling")
	for _, dst := range []string{"esc:/escape/tmp/" + name, "esc:/up/" + name, "esc:/dangling"} {
		if r := d.berth("", "container", "cp", src, dst); r.code != 0 {
			t.Errorf("cp to %s: %v", dst, r)
		}
		if _, err := os.Lstat(hostFile); err == nil {
			t.Fatalf("cp to %s wrote %s on the host", dst, hostFile)
		}
		if out := d.run("exec", "esc", "cat", "/tmp/"+name); out != "payload\n" {
			t.Errorf("cp to %s: the container's /tmp/%s has %q", dst, name, out)
		}
		d.run("exec", "esc", "rm", "/tmp/"+name)
	}
	// Reading through the link reads the container's files, not the host's.
	if err := os.WriteFile(hostFile, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := d.berth("", "container", "cp", "esc:/escape/tmp/"+name, "-"); r.code == 0 {
		t.Errorf("cp out through a symlink to / read the host's %s: %v", hostFile, r)
	}
	os.Remove(hostFile)

	for _, bad := range []string{
		makeTar(t, tarEntry{name: "../evil", body: "x"}),
		makeTar(t, tarEntry{name: "a/../../evil", body: "x"}),
		makeTar(t, tarEntry{name: "/evil", body: "x"}),
		makeTar(t, tarEntry{name: "l", link: "/"}, tarEntry{name: "l/evil", body: "x"}),
	} {
		r := d.berth(bad, "container", "cp", "-", "esc:/tmp")
		if r.code == 0 || !strings.Contains(r.stderr, "refusing") {
			t.Errorf("cp - of an escaping tar %q: %v", tarNames(t, bad), r)
		}
		if out := d.run("exec", "esc", "sh", "-c", "ls /evil /tmp/evil 2>/dev/null; true"); out != "" {
			t.Errorf("an escaping entry was written: %q", out)
		}
	}
	d.run("rm", "-f", "esc")
}

type tarEntry struct {
	name, body, link string
	dir              bool
}

func makeTar(t *testing.T, entries ...tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		switch {
		case e.dir:
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// tarNames lists a tar's entries, each followed by a space.
func tarNames(t *testing.T, s string) string {
	t.Helper()
	tr := tar.NewReader(strings.NewReader(s))
	var names strings.Builder
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names.String()
		}
		if err != nil {
			t.Fatalf("not a tar: %v", err)
		}
		names.WriteString(h.Name + " ")
	}
}

// TestCpDoesNotHoldUpStop: a cp into a running container, still reading
// its tar from the client, does not hold up a stop of the container; the
// file lands in the container's root filesystem all the same, and the
// container starts again once the cp is done.
func TestCpDoesNotHoldUpStop(t *testing.T) {
	d := containerDaemon(t, options{})
	d.run("run", "-d", "--name", "busy", image, "sleep", "1000")

	cmd := exec.Command(testenv.Binary(t, "berth"), "-H", d.host, "container", "cp", "-", "busy:/tmp")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var cpOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &cpOut, &cpOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			stdin.Close()
			cmd.Wait()
		}
	}()
	// One file larger than the chunks the client sends (256 KiB), half of
	// it now: berthd creates the file and waits for the rest.
	const size = 600 << 10
	content := bytes.Repeat([]byte("berth"), size/5)
	tw := tar.NewWriter(stdin)
	if err := tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content[:size/2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cp to begin writing /tmp/big", func() bool {
		return d.berth("", "exec", "busy", "test", "-e", "/tmp/big").code == 0
	})

	stopped := make(chan result, 1)
	go func() { stopped <- berth(t, nil, "", "-H", d.host, "stop", "-t", "1", "busy") }()
	select {
	case r := <-stopped:
		if r.code != 0 {
			t.Fatalf("stop while a cp is in progress: %v", r)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("stop waited for the cp in progress (no answer in 60s)")
	}
	if state := d.run("inspect", "-f", "{{.State.Status}}", "busy"); state != "exited\n" {
		t.Errorf("after stop: %q, want exited", state)
	}

	if _, err := tw.Write(content[size/2:]); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	released = true
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the cp that outlived the stop: %v\n%s", err, cpOut.String())
	}
	d.run("start", "busy")
	if got := d.run("exec", "busy", "wc", "-c", "/tmp/big"); !strings.HasPrefix(strings.TrimSpace(got), strconv.Itoa(size)) {
		t.Errorf("the copied file in the restarted container: %q, want %d bytes", got, size)
	}
}
