package daemon

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	f, err := lockDir(dir, "--root")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "berthd.lock"))
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want this pid", b)
	}
	// A second lock (another open file description, as another process
	// would have) fails, naming the holder and the way out.
	_, err = lockDir(dir, "--root")
	var le *LockedError
	if !errors.As(err, &le) || !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("second lock: %v, want a LockedError", err)
	}
	want := "--root " + dir + " is in use by another berthd (pid " + strconv.Itoa(os.Getpid()) + "): stop it, or give this berthd another --root"
	if err.Error() != want {
		t.Errorf("message:\n got %q\nwant %q", err, want)
	}
	f.Close()
	f, err = lockDir(dir, "--root")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	f.Close()
}

func TestSDNotify(t *testing.T) {
	if err := sdNotify("READY=1"); err != nil && os.Getenv("NOTIFY_SOCKET") == "" {
		t.Fatalf("without NOTIFY_SOCKET: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	if err := sdNotify("READY=1"); err != nil {
		t.Fatal(err)
	}
	l.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _, err := l.ReadFromUnix(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}

func TestListenReplacesStaleSocketOnly(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "berthd.sock")
	l, err := listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	if _, err := listen(sock, ""); err == nil || !strings.Contains(err.Error(), "served by another process") {
		t.Errorf("listen on a live socket: %v", err)
	}
	// A socket file nobody serves (a daemon killed with SIGKILL) is replaced.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = listen(sock, "")
	if err != nil {
		t.Fatalf("listen on a stale socket: %v", err)
	}
	l.Close()
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after close: %v", err)
	}
	if _, err := listen(sock, "no-such-group-berth"); err == nil {
		t.Error("an unknown group was accepted")
	}
}
