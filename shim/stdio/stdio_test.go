package stdio

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The process's stdin FIFO is opened while containerd handles the request
// that creates the process, and containerd may open its end only after the
// request returned: stdin must still reach the process then.
func TestStdinOpenedAfterRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stdin")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, endRequest := context.WithCancel(context.Background())
	s, err := New(ctx, Config{Stdin: path}, Logger{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stdin := s.Pipes().Stdin
	endRequest()

	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "hello"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, err := io.ReadAll(stdin)
	if err != nil || string(got) != "hello" {
		t.Fatalf("the process read %q, %v; want %q", got, err, "hello")
	}
}
