// Package testsuite is the conformance suite every snapshotter passes: the
// overlay and native backends in process, and each of them again through
// the gRPC and ttrpc proxy. It checks behaviour a client can see: trees
// through real mounts, kinds, labels, parent chains, error kinds, filters,
// usage, and that the store survives a reopen.
package testsuite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/mount"
)

// NewStore opens a store on root. Run calls it again on the same root
// after closing the first store, to check that snapshots persist; Close
// must release root for that.
type NewStore func(t *testing.T, root string) snapshotter.Snapshotter

// Options say what a backend can do.
type Options struct {
	// CanRebase: Commit with WithParent moves a snapshot onto a parent.
	CanRebase bool
}

// Run runs the suite. Each subtest gets a store of its own.
func Run(t *testing.T, newStore NewStore, opts Options) {
	testenv.RequireRoot(t)
	tests := []struct {
		name string
		fn   func(*testing.T, context.Context, snapshotter.Snapshotter)
	}{
		{"LayersAndChanges", testLayers},
		{"Info", testInfo},
		{"UpdateLabels", testUpdate},
		{"Errors", testErrors},
		{"RemoveRules", testRemove},
		{"ViewIsReadOnly", testViewReadOnly},
		{"Walk", testWalk},
		{"Usage", testUsage},
		{"DeepChain", testDeepChain},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, t.TempDir())
			t.Cleanup(func() { s.Close() })
			tc.fn(t, context.Background(), s)
		})
	}
	t.Run("Rebase", func(t *testing.T) {
		s := newStore(t, t.TempDir())
		t.Cleanup(func() { s.Close() })
		testRebase(t, context.Background(), s, opts.CanRebase)
	})
	t.Run("Reopen", func(t *testing.T) {
		root := t.TempDir()
		s := newStore(t, root)
		ctx := context.Background()
		commitLayer(t, ctx, s, "base", "", map[string]string{"a": "1"})
		if _, err := s.Prepare(ctx, "work", "base", snapshotter.WithLabels(map[string]string{"k": "v"})); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = newStore(t, root)
		t.Cleanup(func() { s.Close() })
		info, err := s.Stat(ctx, "work")
		if err != nil {
			t.Fatal(err)
		}
		if info.Kind != snapshotter.KindActive || info.Parent != "base" || info.Labels["k"] != "v" {
			t.Errorf("after reopen: %+v", info)
		}
		checkTree(t, ctx, s, "work", map[string]string{"a": "1"})
	})
}

// mountT mounts a snapshot's mounts on a temp dir, unmounted when t ends.
func mountT(t *testing.T, ctx context.Context, ms []snapshotter.Mount) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-suite-")
	if err != nil {
		t.Fatal(err)
	}
	if err := mount.All(ctx, ms, dir); err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mount.UnmountAll(dir); err != nil {
			t.Error(err)
		}
		os.Remove(dir)
	})
	return dir
}

// mountKey mounts key's mounts and returns the mount point and a function
// that unmounts it (also called when t ends).
func mountKey(t *testing.T, ctx context.Context, s snapshotter.Snapshotter, key string) (string, func()) {
	t.Helper()
	ms, err := s.Mounts(ctx, key)
	if err != nil {
		t.Fatalf("mounts of %s: %v", key, err)
	}
	dir := mountT(t, ctx, ms)
	return dir, func() {
		if err := mount.UnmountAll(dir); err != nil {
			t.Error(err)
		}
	}
}

// change writes files (path → content; "" removes the path) into the
// mounted snapshot key.
func change(t *testing.T, ctx context.Context, s snapshotter.Snapshotter, key string, files map[string]string) {
	t.Helper()
	dir, unmount := mountKey(t, ctx, s, key)
	defer unmount()
	// Removals first, so that a layer can replace a directory.
	for p, content := range files {
		if content == "" {
			if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for p, content := range files {
		full := filepath.Join(dir, p)
		if content == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// commitLayer prepares key-active on parent, applies files, commits key.
func commitLayer(t *testing.T, ctx context.Context, s snapshotter.Snapshotter, key, parent string, files map[string]string) {
	t.Helper()
	active := key + "-active"
	if _, err := s.Prepare(ctx, active, parent); err != nil {
		t.Fatalf("prepare %s on %q: %v", active, parent, err)
	}
	change(t, ctx, s, active, files)
	if err := s.Commit(ctx, key, active); err != nil {
		t.Fatalf("commit %s: %v", key, err)
	}
}

// checkTree asserts that snapshot key holds exactly the regular files want.
func checkTree(t *testing.T, ctx context.Context, s snapshotter.Snapshotter, key string, want map[string]string) {
	t.Helper()
	dir, unmount := mountKey(t, ctx, s, key)
	defer unmount()
	got := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tree of %s:\n got %v\nwant %v", key, got, want)
	}
}

func wantKind(t *testing.T, err error, kind error, what string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: got error %v, want %v", what, err, kind)
	}
}

func testLayers(t *testing.T, ctx context.Context, s snapshotter.Snapshotter) {
	commitLayer(t, ctx, s, "l1", "", map[string]string{"a": "1", "dir/b": "2", "dir/c": "3"})
	commitLayer(t, ctx, s, "l2", "l1", map[string]string{"a": "one", "dir/b": "", "new": "4"})
	commitLayer(t, ctx, s, "l3", "l2", map[string]string{"dir": "", "dir/d": "5"})
	checkTree(t, ctx, s, "l1", map[string]string{"a": "1", "dir/b": "2", "dir/c": "3"})
	checkTree(t, ctx, s, "l2", map[string]string{"a": "one", "dir/c": "3", "new": "4"})
	checkTree(t, ctx, s, "l3", map[string]string{"a": "one", "dir/d": "5", "new": "4"})

	// Views and actives on a chain see the same tree; the active one
	// can change without touching its parents.
	if _, err := s.View(ctx, "v3", "l3"); err != nil {
		t.Fatal(err)
	}
	checkTree(t, ctx, s, "v3", map[string]string{"a": "one", "dir/d": "5", "new": "4"})
	if _, err := s.View(ctx, "v1", "l1"); err != nil {
		t.Fatal(err)
	}
	checkTree(t, ctx, s, "v1", map[string]string{"a": "1", "dir/b": "2", "dir/c": "3"})
	if _, err := s.Prepare(ctx, "rw", "l3"); err != nil {
		t.Fatal(err)
	}
	change(t, ctx, s, "rw", map[string]string{"a": "", "x": "6"})
	checkTree(t, ctx, s, "rw", map[string]string{"dir/d": "5", "new": "4", "x": "6"})
	checkTree(t, ctx, s, "l3", map[string]string{"a": "one", "dir/d": "5", "new": "4"})
	// A committed snapshot's mounts show it read-only.
	dir, unmount := mountKey(t, ctx, s, "l2")
	if err := os.WriteFile(filepath.Join(dir, "z"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into committed l2: %v, want EROFS", err)
	}
	unmount()
}

func testInfo(t *testing.T, ctx context.Context, s snapshotter.Snapshotter) {
	labels := map[string]string{"containerd.io/gc.root": "x", "berth": "y"}
	if _, err := s.Prepare(ctx, "a", "", snapshotter.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshotter.KindActive || info.Name != "a" || info.Parent != "" || fmt.Sprint(info.Labels) != fmt.Sprint(labels) {
		t.Errorf("stat a: %+v", info)
	}
	if info.Created.IsZero() || info.Updated.Before(info.Created) {
		t.Errorf("stat a: times %v %v", info.Created, info.Updated)
	}
	if err := s.Commit(ctx, "c", "a", snapshotter.WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("stat of a committed active key: %v, want not found", err)
	}
	info, err = s.Stat(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshotter.KindCommitted || info.Name != "c" || info.Labels["k"] != "v" {
		t.Errorf("stat c: %+v", info)
	}
	if _, err := s.View(ctx, "v", "c"); err != nil {
		t.Fatal(err)
	}
	info, err = s.Stat(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshotter.KindView || info.Parent != "c" {
		t.Errorf("stat v: %+v", info)
	}
}

func testUpdate(t *testing.T, ctx context.Context, s snapshotter.Snapshotter) {
	if _, err := s.Prepare(ctx, "a", "", snapshotter.WithLabels(map[string]string{"x": "1", "y": "2"})); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Stat(ctx, "a")
	info, err := s.Update(ctx, snapshotter.Info{Name: "a", Labels: map[string]string{"x": "10", "z": "3"}}, "labels.x")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(info.Labels) != fmt.Sprint(map[string]string{"x": "10", "y": "2"}) {
		t.Errorf("update labels.x: %v", info.Labels)
	}
	if info.Updated.Before(before.Updated) {
		t.Errorf("updated time went back: %v < %v", info.Updated, before.Updated)
	}
	info, err = s.Update(ctx, snapshotter.Info{Name: "a", Labels: map[string]string{}}, "labels.y")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(info.Labels) != fmt.Sprint(map[string]string{"x": "10"}) {
		t.Errorf("removing labels.y: %v", info.Labels)
	}
	info, err = s.Update(ctx, snapshotter.Info{Name: "a", Labels: map[string]string{"only": "this"}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(info.Labels) != fmt.Sprint(map[string]string{"only": "this"}) {
		t.Errorf("replacing labels: %v", info.Labels)
	}
	got, err := s.Stat(ctx, "a")
	if err != nil || fmt.Sprint(got.Labels) != fmt.Sprint(info.Labels) {
		t.Errorf("stat after update: %v %v", got.Labels, err)
	}
	_, err = s.Update(ctx, snapshotter.Info{Name: "a", Parent: "other"}, "parent")
	wantKind(t, err, errdefs.ErrInvalidArgument, "update of the parent")
	_, err = s.Update(ctx, snapshotter.Info{Name: "missing"})
	wantKind(t, err, errdefs.ErrNotFound, "update of a missing key")
	_, err = s.Update(ctx, snapshotter.Info{Name: "a", Labels: map[string]string{"big": strings.Repeat("v", 5000)}})
	wantKind(t, err, errdefs.ErrInvalidArgument, "a label over 4096 bytes")
}

func testErrors(t *testing.T, ctx context.Context, s snapshotter.Snapshotter) {
	commitLayer(t, ctx, s, "base", "", map[string]string{"f": "1"})
	if _, err := s.Prepare(ctx, "active", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.View(ctx, "view", "base"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Prepare(ctx, "active", "")
	wantKind(t, err, errdefs.ErrAlreadyExists, "prepare of a taken key")
	_, err = s.View(ctx, "base", "")
	wantKind(t, err, errdefs.ErrAlreadyExists, "view under a committed name")
	_, err = s.Prepare(ctx, "x", "missing")
	wantKind(t, err, errdefs.ErrNotFound, "prepare on a missing parent")
	_, err = s.Prepare(ctx, "x", "active")
	wantKind(t, err, errdefs.ErrInvalidArgument, "prepare on an active parent")
	_, err = s.View(ctx, "x", "view")
	wantKind(t, err, errdefs.ErrInvalidArgument, "view of a view")
	_, err = s.Prepare(ctx, "", "")
	wantKind(t, err, errdefs.ErrInvalidArgument, "an empty key")
	wantKind(t, s.Commit(ctx, "c", "view"), errdefs.ErrFailedPrecondition, "commit of a view")
	wantKind(t, s.Commit(ctx, "c", "base"), errdefs.ErrFailedPrecondition, "commit of a committed snapshot")
	wantKind(t, s.Commit(ctx, "base", "active"), errdefs.ErrAlreadyExists, "commit to a taken name")
	wantKind(t, s.Commit(ctx, "c", "missing"), errdefs.ErrNotFound, "commit of a missing key")
	_, err = s.Stat(ctx, "missing")
	wantKind(t, err, errdefs.ErrNotFound, "stat of a missing key")
	_, err = s.Mounts(ctx, "missing")
	wantKind(t, err, errdefs.ErrNotFound, "mounts of a missing key")
	_, err = s.Usage(ctx, "missing")
	wantKind(t, err, errdefs.ErrNotFound, "usage of a missing key")
	wantKind(t, s.Remove(ctx, "missing"), errdefs.ErrNotFound, "remove of a missing key")
	// The failures changed nothing.
	var keys []string
	if err := s.Walk(ctx, func(_ context.Context, i snapshotter.Info) error {
		keys = append(keys, i.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if fmt.Sprint(keys) != "[active base view]" {
		t.Errorf("snapshots after failed calls: %v", keys)
	}
	checkTree(t, ctx, s, "active", map[string]string{"f": "1"})
}

func testRemove(t *testing.T, ctx context.Context, s snapshotter.Snapshotter) {
	commitLayer(t, ctx, s, "base", "", map[string]string{"f": "1"})
	commitLayer(t, ctx, s, "top", "base", map[string]string{"g": "2"})
	if _, err := s.View(ctx, "view", "top"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.Remove(ctx, "base"), errdefs.ErrFailedPrecondition, "remove of a parent")
	wantKind(t, s.Remove(ctx, "top"), errdefs.ErrFailedPrecondition, "remove of a viewed snapshot")
	for _, k := range []string{"view", "top", "base"} {
		if err := s.Remove(ctx, k); err != nil {
			t.Fatalf("remove %s: %v", k, err)
		}
		if _, err := s.Stat(ctx, k); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("stat after remove of %s: %v", k, err)
		}
	}
	if err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	// The names are free again.
	commitLayer(t, ctx, s, "base", "", map[string]string{"h": "3"})
	checkTree(t, ctx, s, "base", map[string]string{"h": "3"})
}

func testViewReadOnly(t *testing.T, ctx context.Context, s snapshotter.Snapshotter) {
	commitLayer(t, ctx, s, "l1", "", map[string]string{"f": "1"})
	commitLayer(t, ctx, s, "l2", "l1", map[string]string{"g": "2"})
	for _, parent := range []string{"l1", "l2"} {
		key := "view-of-" + parent
		ms, err := s.View(ctx, key, parent)
		if err != nil {
			t.Fatal(err)
		}
		dir := mountT(t, ctx, ms)
		if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("write into %s: %v, want EROFS", key, err)
		}
	}
	checkTree(t, ctx, s, "l2", map[string]string{"f": "1", "g": "2"})
}

func testWalk(t *testing.T, ctx context.Context, s snapshotter.Snapshotter) {
	commitLayer(t, ctx, s, "base", "", nil)
	if _, err := s.Prepare(ctx, "a1", "base", snapshotter.WithLabels(map[string]string{"containerd.io/gc.root": "yes", "tier": "web"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "a2", "", snapshotter.WithLabels(map[string]string{"tier": "db"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.View(ctx, "v1", "base"); err != nil {
		t.Fatal(err)
	}
	walk := func(filters ...string) string {
		t.Helper()
		var names []string
		if err := s.Walk(ctx, func(_ context.Context, i snapshotter.Info) error {
			names = append(names, i.Name)
			return nil
		}, filters...); err != nil {
			t.Fatalf("walk %q: %v", filters, err)
		}
		slices.Sort(names)
		return strings.Join(names, " ")
	}
	for _, tc := range []struct {
		filters []string
		want    string
	}{
		{nil, "a1 a2 base v1"},
		{[]string{"kind==committed"}, "base"},
		{[]string{"kind==active"}, "a1 a2"},
		{[]string{"parent==base"}, "a1 v1"},
		{[]string{`labels."containerd.io/gc.root"`}, "a1"},
		{[]string{"labels.tier==db"}, "a2"},
		{[]string{"labels.tier!=db"}, "a1 base v1"},
		{[]string{"kind==active,labels.tier==web"}, "a1"},
		{[]string{"kind==view", "labels.tier==db"}, "a2 v1"},
		{[]string{"name~=^a"}, "a1 a2"},
	} {
		if got := walk(tc.filters...); got != tc.want {
			t.Errorf("walk %q: got %q, want %q", tc.filters, got, tc.want)
		}
	}
	err := s.Walk(ctx, func(context.Context, snapshotter.Info) error { return nil }, "kind==")
	wantKind(t, err, errdefs.ErrInvalidArgument, "a malformed filter")
	stop := errors.New("stop")
	n := 0
	err = s.Walk(ctx, func(context.Context, snapshotter.Info) error { n++; return stop })
	if n != 1 || err == nil {
		t.Errorf("walk stopped by its function: %d calls, %v", n, err)
	}
}

func testUsage(t *testing.T, ctx context.Context, s snapshotter.Snapshotter) {
	if _, err := s.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	change(t, ctx, s, "a", map[string]string{"big": strings.Repeat("x", 1<<20), "d/small": "y"})
	u, err := s.Usage(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if u.Size < 1<<20 || u.Inodes < 3 {
		t.Errorf("usage of a with 1 MiB written: %+v", u)
	}
	if err := s.Commit(ctx, "c", "a"); err != nil {
		t.Fatal(err)
	}
	uc, err := s.Usage(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if uc != u {
		t.Errorf("usage after commit %+v, before %+v", uc, u)
	}
	if _, err := s.Prepare(ctx, "b", "c"); err != nil {
		t.Fatal(err)
	}
	change(t, ctx, s, "b", map[string]string{"small2": "z"})
	ub, err := s.Usage(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	// An overlay child holds only its changes; a copy holds its parent's
	// files too. Either way it has the new file.
	if ub.Inodes < 2 {
		t.Errorf("usage of b: %+v", ub)
	}
}

// testDeepChain stacks more layers than fit as absolute paths in one page
// of mount options.
func testDeepChain(t *testing.T, ctx context.Context, s snapshotter.Snapshotter) {
	const depth = 130
	want := map[string]string{}
	parent := ""
	for i := range depth {
		key := fmt.Sprintf("layer-%03d", i)
		f := map[string]string{fmt.Sprintf("f%03d", i): key}
		active := key + "-active"
		if _, err := s.Prepare(ctx, active, parent); err != nil {
			t.Fatal(err)
		}
		// Write only every tenth layer through a mount: the others are
		// empty layers, which is what makes a chain deep cheaply.
		if i%10 == 0 || i == depth-1 {
			change(t, ctx, s, active, f)
			want[fmt.Sprintf("f%03d", i)] = key
		}
		if err := s.Commit(ctx, key, active); err != nil {
			t.Fatal(err)
		}
		parent = key
	}
	if _, err := s.View(ctx, "top", parent); err != nil {
		t.Fatal(err)
	}
	checkTree(t, ctx, s, "top", want)
	if _, err := s.Prepare(ctx, "rw", parent); err != nil {
		t.Fatal(err)
	}
	checkTree(t, ctx, s, "rw", want)
}

func testConcurrent(t *testing.T, ctx context.Context, s snapshotter.Snapshotter) {
	commitLayer(t, ctx, s, "base", "", map[string]string{"f": "1"})
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half race for one key; the rest each have their own.
			key := "shared"
			if i%2 == 1 {
				key = fmt.Sprintf("own-%d", i)
			}
			_, errs[i] = s.Prepare(ctx, key, "base")
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case i%2 == 1 && err != nil:
			t.Errorf("prepare own-%d: %v", i, err)
		case i%2 == 0 && err == nil:
			won++
		case i%2 == 0 && !errors.Is(err, errdefs.ErrAlreadyExists):
			t.Errorf("losing prepare of shared: %v, want already exists", err)
		}
	}
	if won != 1 {
		t.Errorf("%d prepares of one key succeeded, want 1", won)
	}
	n := 0
	if err := s.Walk(ctx, func(context.Context, snapshotter.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1+1+len(errs)/2 {
		t.Errorf("%d snapshots after the race, want %d", n, 2+len(errs)/2)
	}
}

func testRebase(t *testing.T, ctx context.Context, s snapshotter.Snapshotter, can bool) {
	commitLayer(t, ctx, s, "base", "", map[string]string{"a": "1", "b": "2"})
	// Unpacked without knowing its parent, as in a parallel unpack.
	if _, err := s.Prepare(ctx, "loose", ""); err != nil {
		t.Fatal(err)
	}
	change(t, ctx, s, "loose", map[string]string{"c": "3"})
	err := s.Commit(ctx, "top", "loose", snapshotter.WithParent("base"))
	if !can {
		wantKind(t, err, errdefs.ErrNotImplemented, "rebase on a backend that cannot")
		if _, serr := s.Stat(ctx, "loose"); serr != nil {
			t.Errorf("the failed rebase lost the active snapshot: %v", serr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, "top")
	if err != nil || info.Parent != "base" {
		t.Fatalf("stat of the rebased snapshot: %+v %v", info, err)
	}
	checkTree(t, ctx, s, "top", map[string]string{"a": "1", "b": "2", "c": "3"})
	wantKind(t, s.Remove(ctx, "base"), errdefs.ErrFailedPrecondition, "remove of the new parent")
	if _, err := s.Prepare(ctx, "loose2", ""); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.Commit(ctx, "top2", "loose2", snapshotter.WithParent("missing")), errdefs.ErrNotFound, "rebase onto a missing parent")
}
