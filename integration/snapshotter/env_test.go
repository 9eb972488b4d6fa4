//go:build linux

package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/internal/ctrd"
	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/proxy"
)

const (
	// name is the snapshotter's name in containerd's config, and ctr's
	// --snapshotter.
	name = "berth"
	// The shims the containers run with: containerd's own, which runs runc
	// from PATH, and berth's, which runs berth-runtime.
	runcShim  = "io.containerd.runc.v2"
	berthShim = "io.containerd.berth.v2"
)

// env is one test's containerd, with a berth-snapshotter of its own as the
// proxy plugin "berth", and a namespace with the default test image
// imported (into containerd's own snapshotter: tests import again into
// berth).
type env struct {
	*ctrd.Client
	t    *testing.T
	snap *process
	// store is the snapshotter seen directly through its socket: names
	// in it are containerd's backend keys, "<namespace>/<n>/<key>".
	store snapshotter.Snapshotter
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("containerd"), testenv.Program("ctr"))
	bin := testenv.Binary(t, "berth-snapshotter")
	shimBin := testenv.Binary(t, "containerd-shim-berth-v2")
	testenv.Binary(t, "berth-runtime") // the berth shim finds it beside itself on PATH

	snap := startSnapshotter(t, bin)
	d, err := ctrd.Start(ctrd.Config{
		// containerd finds containerd-shim-berth-v2, and that shim
		// berth-runtime, in bin/.
		Path:         []string{filepath.Dir(shimBin)},
		ProxyPlugins: map[string]ctrd.ProxyPlugin{name: {Type: "snapshot", Address: snap.sock}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the snapshotter's cleanup, so this runs first:
	// containerd goes before the store it uses.
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("containerd cleanup: %v", err)
		}
	})
	conn, err := grpc.NewClient("unix://"+snap.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e := &env{t: t, snap: snap, store: proxy.NewGRPC(conn)}
	e.Client = ctrd.NewClient(t, d, "berth-snap-")
	t.Cleanup(func() {
		// The berth shim keeps runtime state under its default root,
		// one directory per namespace, empty when the containers went.
		os.Remove(filepath.Join("/run/containerd/berth", e.NS))
		if t.Failed() {
			t.Logf("berth-snapshotter log:\n%s", snap.logTail())
		}
	})
	return e
}

// process is a berth-snapshotter the test started.
type process struct {
	dir  string // root, socket, log
	root string
	sock string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startSnapshotter starts bin on a socket in a new temporary directory and
// waits until it serves. Its cleanup stops it with SIGTERM by its PID
// (SIGKILL after 20s), fails the test if it did not exit cleanly, unmounts
// anything left under its directory and removes it.
func startSnapshotter(t *testing.T, bin string) *process {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-snap-") // short: the socket path must fit sun_path
	if err != nil {
		t.Fatal(err)
	}
	p := &process{
		dir:  dir,
		root: filepath.Join(dir, "root"),
		sock: filepath.Join(dir, "run", "grpc.sock"),
		log:  filepath.Join(dir, "snapshotter.log"),
		done: make(chan struct{}),
	}
	t.Cleanup(func() {
		p.stop(t)
		if err := ctrd.UnmountUnder(dir); err != nil {
			t.Error(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	logFile, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	p.cmd = exec.Command(bin, "--root", p.root, "--address", p.sock, "--log-level", "debug")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Should the test binary die without cleaning up, the snapshotter goes too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		close(p.done)
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", p.sock); err == nil {
			c.Close()
			break
		}
		select {
		case <-p.done:
			t.Fatalf("berth-snapshotter exited: %v\n%s", p.cmd.ProcessState, p.logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth-snapshotter did not serve %s within 20s\n%s", p.sock, p.logTail())
		}
	}
	if fi, err := os.Stat(p.sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket %s: %v, %v; want mode 0660", p.sock, fi.Mode(), err)
	}
	return p
}

func (p *process) stop(t *testing.T) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		t.Errorf("berth-snapshotter had exited before the test ended: %v", p.cmd.ProcessState)
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if !p.cmd.ProcessState.Success() {
			t.Errorf("berth-snapshotter did not stop cleanly on SIGTERM: %v\n%s", p.cmd.ProcessState, p.logTail())
		}
		if _, err := os.Lstat(p.sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("berth-snapshotter left its socket: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("berth-snapshotter did not stop within 20s of SIGTERM; killing it")
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.SplitAfter(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-80):], "")
}

// importImage writes the test image, with extra layers on top, under ref
// as an OCI archive and imports it into the berth snapshotter. It returns
// the image's chain IDs, the keys of its committed snapshots, deepest
// first.
func (e *env) importImage(ref string, extraLayers int) []string {
	e.t.Helper()
	opts := testimage.Options{Name: ref, ExtraLayers: extraLayers}
	img, err := testimage.Build(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	archive := filepath.Join(e.t.TempDir(), "image.oci.tar")
	f, err := os.Create(archive)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := testimage.WriteOCIArchive(f, opts); err != nil {
		e.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.Run("image", "import", "--snapshotter", name, archive)
	var chain []string
	for i, l := range img.Layers {
		id := l.DiffID
		if i > 0 {
			id = digest.FromString(chain[i-1] + " " + l.DiffID.String())
		}
		chain = append(chain, id.String())
	}
	return chain
}

// snapshots lists the berth snapshotter as ctr shows it: key → "parent kind".
func (e *env) snapshots() map[string]string {
	e.t.Helper()
	out := e.Run("snapshot", "--snapshotter", name, "ls")
	got := map[string]string{}
	for i, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if i == 0 {
			if strings.Join(f, " ") != "KEY PARENT KIND" {
				e.t.Fatalf("ctr snapshot ls header %q", l)
			}
			continue
		}
		switch len(f) {
		case 2: // no parent
			got[f[0]] = " " + f[1]
		case 3:
			got[f[0]] = f[1] + " " + f[2]
		default:
			e.t.Fatalf("ctr snapshot ls line %q", l)
		}
	}
	return got
}

// backend returns the snapshots of this namespace in the berth store
// itself, by containerd's key (the backend key without "<ns>/<n>/").
func (e *env) backend() map[string]snapshotter.Info {
	e.t.Helper()
	got := map[string]snapshotter.Info{}
	err := e.store.Walk(context.Background(), func(_ context.Context, info snapshotter.Info) error {
		parts := strings.SplitN(info.Name, "/", 3)
		if len(parts) != 3 {
			return fmt.Errorf("backend key %q is not <namespace>/<n>/<key>", info.Name)
		}
		got[parts[2]] = info
		return nil
	}, fmt.Sprintf("name~=^%s/", e.NS))
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// runArgs is "ctr run --rm" of cmd in a container id of ref on the berth
// snapshotter, with shim.
func (e *env) runArgs(shim, ref, id string, cmd ...string) []string {
	args := []string{"run", "--rm", "--snapshotter", name, "--fifo-dir", e.D.FIFODir(), "--runtime", shim}
	if shim == runcShim {
		// runc's state under the daemon's directory, removed with it.
		args = append(args, "--runc-root", filepath.Join(e.D.Dir, "runc"))
	}
	args = append(args, ref, id)
	return append(args, cmd...)
}
