package snapshots

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestExitAttributes(t *testing.T) {
	err := exec.Command("sh", "-c", "exit 3").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("sh: %v", err)
	}
	if got := exitAttributes(ee.ProcessState); got["exitCode"] != "3" || got["signal"] != "" {
		t.Errorf("exit 3: %v", got)
	}
	err = exec.Command("sh", "-c", "kill -KILL $$").Run()
	if !errors.As(err, &ee) {
		t.Fatalf("sh: %v", err)
	}
	if got := exitAttributes(ee.ProcessState); got["signal"] != "killed" || got["exitCode"] != "" {
		t.Errorf("killed: %v", got)
	}
}

func TestFindBinaryAndVersion(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, BinaryName)
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho berth-snapshotter v9.8\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := findBinary(fake); err != nil || got != fake {
		t.Errorf("findBinary(given) = %q, %v", got, err)
	}
	t.Setenv("PATH", dir)
	// Beside the test binary there is none, so PATH decides.
	if got, err := findBinary(""); err != nil || got != fake {
		t.Errorf("findBinary on PATH = %q, %v", got, err)
	}
	if v := binaryVersion(context.Background(), fake); v != "v9.8" {
		t.Errorf("version %q", v)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := findBinary(""); err == nil {
		t.Error("found a snapshotter where there is none")
	}
}
