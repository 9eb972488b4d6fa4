package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/native"
	"github.com/berth-project/berth/snapshotter/overlay"
	"github.com/berth-project/berth/snapshotter/store"
)

const crashRootEnv = "BERTH_TEST_CRASH_ROOT"

type opener func(context.Context, string) (*store.Store, error)

var backends = map[string]opener{"overlay": overlay.New, "native": native.New}

// TestCrashSafety kills a process that churns through snapshots with
// SIGKILL at random moments, then checks that the store it left opens
// clean: every recorded snapshot has its directory, every parent exists,
// and no debris remains.
func TestCrashSafety(t *testing.T) {
	testenv.RequireRoot(t)
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			for round := range 12 {
				cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.root")
				cmd.Env = append(os.Environ(), crashRootEnv+"="+root, "BERTH_TEST_CRASH_BACKEND="+name, "BERTH_TEST_CRASH_ROUND="+strconv.Itoa(round))
				out, err := os.CreateTemp(t.TempDir(), "child-")
				if err != nil {
					t.Fatal(err)
				}
				cmd.Stdout, cmd.Stderr = out, out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// The child needs a moment to open the store; then any
				// moment is as good as another.
				time.Sleep(time.Duration(150+rand.IntN(250)) * time.Millisecond)
				cmd.Process.Signal(syscall.SIGKILL)
				err = cmd.Wait()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
					b, _ := os.ReadFile(out.Name())
					t.Fatalf("round %d: the child ended before it was killed (%v):\n%s", round, err, b)
				}
				checkConsistent(t, open, root)
			}
		})
	}
}

func checkConsistent(t *testing.T, open opener, root string) {
	t.Helper()
	ctx := context.Background()
	s, err := open(ctx, root)
	if err != nil {
		t.Fatalf("open after a crash: %v", err)
	}
	defer s.Close()
	names := map[string]snapshotter.Info{}
	if err := s.Walk(ctx, func(_ context.Context, i snapshotter.Info) error {
		names[i.Name] = i
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, info := range names {
		if info.Parent != "" {
			if _, ok := names[info.Parent]; !ok {
				t.Errorf("%s names a parent %s that is gone", info.Name, info.Parent)
			}
		}
		ms, err := s.Mounts(ctx, info.Name)
		if err != nil {
			t.Errorf("mounts of %s: %v", info.Name, err)
			continue
		}
		for _, m := range ms {
			if _, err := os.Stat(m.Source); m.Type == "bind" && err != nil {
				t.Errorf("%s: %v", info.Name, err)
			}
		}
	}
	dirs, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	if len(dirs) != len(names) {
		t.Errorf("%d snapshot directories for %d snapshots after open", len(dirs), len(names))
	}
	if staging, _ := os.ReadDir(filepath.Join(root, "staging")); len(staging) != 0 {
		t.Errorf("staging holds %d entries after open", len(staging))
	}
}

// TestCrashChild is the process TestCrashSafety kills: it prepares,
// fills, commits and removes snapshots as fast as it can, forever.
func TestCrashChild(t *testing.T) {
	root := os.Getenv(crashRootEnv)
	if root == "" {
		t.Skip("run by TestCrashSafety")
	}
	ctx := context.Background()
	s, err := backends[os.Getenv("BERTH_TEST_CRASH_BACKEND")](ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	round := os.Getenv("BERTH_TEST_CRASH_ROUND")
	parent := ""
	for i := 0; ; i++ {
		key := fmt.Sprintf("r%s-%d", round, i)
		if _, err := s.Prepare(ctx, key+"-a", parent); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, key, key+"-a"); err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			if err := s.Remove(ctx, key); err != nil {
				t.Fatal(err)
			}
			continue
		}
		parent = key
		if i%7 == 6 {
			if _, err := s.View(ctx, key+"-v", key); err != nil {
				t.Fatal(err)
			}
		}
	}
}
