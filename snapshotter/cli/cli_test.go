package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/internal/unixsock"
	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/proxy"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		out    string
	}{
		{[]string{"-h"}, 0, "--ttrpc-address"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"--log-level", "loud"}, 2, `--log-level "loud"`},
		{[]string{"extra"}, 2, "unexpected arguments"},
	} {
		var stderr bytes.Buffer
		if got := Main(context.Background(), append([]string{Name}, tc.args...), &stderr); got != tc.status {
			t.Errorf("%q: status %d, want %d (%s)", tc.args, got, tc.status, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.out) {
			t.Errorf("%q: stderr %q, want %q in it", tc.args, stderr.String(), tc.out)
		}
	}
}

func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "berth-cli-") // socket paths must fit 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Run serves both sockets (0660), answers through them, and on cancel
// removes the sockets and releases the root.
func TestRun(t *testing.T) {
	testenv.RequireRoot(t)
	dir := shortDir(t)
	cfg := Config{
		Root:         filepath.Join(dir, "root"),
		Address:      filepath.Join(dir, "run", "grpc.sock"),
		TTRPCAddress: filepath.Join(dir, "run", "ttrpc.sock"),
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, logger) }()
	waitSocket(t, cfg.TTRPCAddress, done)
	waitSocket(t, cfg.Address, done)
	for _, sock := range []string{cfg.Address, cfg.TTRPCAddress} {
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o660 {
			t.Errorf("%s: mode %v, want 0660", sock, fi.Mode().Perm())
		}
	}
	// A second instance on the same sockets is refused.
	if err := Run(ctx, Config{Root: filepath.Join(dir, "root2"), Address: cfg.Address}, logger); err == nil || !strings.Contains(err.Error(), "served by another process") {
		t.Errorf("second instance: %v", err)
	}

	conn, err := grpc.NewClient("unix://"+cfg.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	g := proxy.NewGRPC(conn)
	if _, err := g.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", cfg.TTRPCAddress)
	if err != nil {
		t.Fatal(err)
	}
	tc := ttrpc.NewClient(c)
	defer tc.Close()
	info, err := proxy.NewTTRPC(tc).Stat(ctx, "a")
	if err != nil || info.Kind != snapshotter.KindActive {
		t.Fatalf("stat over ttrpc: %+v %v", info, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
	for _, sock := range []string{cfg.Address, cfg.TTRPCAddress} {
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", sock, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.Root, "backend")); string(b) != "overlay\n" {
		t.Errorf("backend marker %q", b)
	}
	for _, want := range []string{"msg=serving", "backend=overlay", "msg=prepare key=a", "msg=stopping"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// The root is free again, and keeps its backend.
	s, backend, err := openStore(context.Background(), cfg.Root, "", logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if backend != "overlay" {
		t.Errorf("reopened as %s", backend)
	}
	if _, err := s.Stat(context.Background(), "a"); err != nil {
		t.Errorf("after restart: %v", err)
	}
}

func waitSocket(t *testing.T, path string, done chan error) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("run ended: %v", err)
		default:
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s not served", path)
}

// A root keeps the backend it was made with.
func TestBackendMarker(t *testing.T) {
	testenv.RequireRoot(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "root")
	s, backend, err := openStore(ctx, root, "native", logger)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if backend != "native" {
		t.Fatalf("backend %s", backend)
	}
	if _, _, err := openStore(ctx, root, "overlay", logger); err == nil || !strings.Contains(err.Error(), "holds native snapshots") {
		t.Errorf("overlay over a native root: %v", err)
	}
	s, backend, err = openStore(ctx, root, "", logger)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if backend != "native" {
		t.Errorf("default over a native root opened %s", backend)
	}
	if _, _, err := openStore(ctx, t.TempDir(), "zfs", logger); err == nil || !strings.Contains(err.Error(), "unknown backend") {
		t.Errorf("backend zfs: %v", err)
	}
}

// A stale socket is replaced; a file that is not a socket is not.
func TestListenStale(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = unixsock.Listen(sock)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l.Close()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := unixsock.Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a file: %v", err)
	}
}

// Where overlayfs cannot have its upper directory (on an overlay mount),
// the default falls back to native with a warning; --backend overlay fails.
func TestFallbackToNative(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	merged := filepath.Join(dir, "m")
	data := "lowerdir=" + filepath.Join(dir, "l") + ",upperdir=" + filepath.Join(dir, "u") + ",workdir=" + filepath.Join(dir, "w")
	if err := unix.Mount("overlay", merged, "overlay", 0, data); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()
	if _, _, err := openStore(ctx, filepath.Join(merged, "strict"), "overlay", logger); err == nil {
		t.Fatal("--backend overlay on an overlay mount succeeded")
	}
	s, backend, err := openStore(ctx, filepath.Join(merged, "root"), "", logger)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if backend != "native" || !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "native backend") {
		t.Errorf("backend %s, log:\n%s", backend, logs.String())
	}
}
