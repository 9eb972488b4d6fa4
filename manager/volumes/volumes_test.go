package volumes_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/manager/containers"
	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/volumes"
	volumesv1 "github.com/berth-project/berth/proto/services/volumes/v1"
)

// The library is the container library's Volumes.
var _ containers.Volumes = (*volumes.Service)(nil)

type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) Publish(_ context.Context, e events.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e.Type+" "+e.Action+" "+e.Actor.ID)
}

// open opens a library on a fresh root and database; reopen opens
// another over the same ones, as berthd does when it starts again.
func open(t *testing.T) (svc *volumes.Service, root string, reopen func() *volumes.Service, ev *recorder) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "volumes")
	db, err := bolt.Open(filepath.Join(dir, "metadata.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ev = &recorder{}
	reopen = func() *volumes.Service {
		s, err := volumes.Open(t.Context(), volumes.Config{Root: root, DB: db, Events: ev})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return reopen(), root, reopen, ev
}

func names(vs []*volumesv1.Volume) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.GetName())
	}
	return out
}

func TestCreateGetRemove(t *testing.T) {
	ctx := t.Context()
	s, root, _, ev := open(t)
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o701 {
		t.Errorf("root: %v %v", fi, err)
	}

	v, err := s.Create(ctx, "data", "", map[string]string{"a": "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(root, "data", "_data")
	if v.GetName() != "data" || v.GetDriver() != "local" || v.GetScope() != "local" || v.GetMountpoint() != want ||
		v.GetLabels()["a"] != "b" || v.GetCreatedAt() == nil {
		t.Errorf("created %v", v)
	}
	if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
		t.Fatalf("data dir: %v", err)
	}
	// Creating it again returns it as it is.
	again, err := s.Create(ctx, "data", "local", map[string]string{"other": "x"}, nil)
	if err != nil || again.GetLabels()["a"] != "b" || again.GetLabels()["other"] != "" || !again.GetCreatedAt().AsTime().Equal(v.GetCreatedAt().AsTime()) {
		t.Errorf("create again: %v %v", again, err)
	}

	if err := os.WriteFile(filepath.Join(want, "f"), make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(want, "f"), filepath.Join(want, "hardlink")); err != nil {
		t.Fatal(err)
	}
	g, err := s.Get(ctx, "data", true)
	if err != nil || g.GetUsageData().GetSize() != 1000 || g.GetUsageData().GetRefCount() != 0 {
		t.Errorf("get with size: %v %v", g, err)
	}
	if g, _ := s.Get(ctx, "data", false); g.GetUsageData() != nil {
		t.Errorf("get without size has usage data: %v", g)
	}
	if n, err := s.Size(ctx, "data"); n != 1000 || err != nil {
		t.Errorf("size %d %v", n, err)
	}

	_, err = s.Get(ctx, "nope", false)
	if !errdefs.IsNotFound(err) || !strings.HasPrefix(err.Error(), "get nope: no such volume") {
		t.Errorf("get missing: %v", err)
	}
	if err := s.Remove(ctx, "nope", false); !errdefs.IsNotFound(err) {
		t.Errorf("remove missing: %v", err)
	}
	if err := s.Remove(ctx, "nope", true); err != nil {
		t.Errorf("remove -f missing: %v", err)
	}
	if err := s.Remove(ctx, "data", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "data")); !os.IsNotExist(err) {
		t.Errorf("data left: %v", err)
	}
	if _, err := s.Get(ctx, "data", false); !errdefs.IsNotFound(err) {
		t.Errorf("get removed: %v", err)
	}
	if want := []string{"volume create data", "volume destroy data"}; !slices.Equal(ev.got, want) {
		t.Errorf("events %q, want %q", ev.got, want)
	}
}

func TestCreateErrors(t *testing.T) {
	ctx := t.Context()
	s, _, _, _ := open(t)
	for _, tc := range []struct {
		name, driver string
		opts         map[string]string
		is           func(error) bool
		msg          string
	}{
		{"a", "", nil, errdefs.IsInvalidArgument, `create a: "a" includes invalid characters for a local volume name`},
		{"-x", "", nil, errdefs.IsInvalidArgument, "invalid characters"},
		{"a/b", "", nil, errdefs.IsInvalidArgument, "invalid characters"},
		{"..", "", nil, errdefs.IsInvalidArgument, "invalid characters"},
		{"ok", "nfs", nil, errdefs.IsNotFound, `error looking up volume plugin nfs: plugin "nfs" not found`},
		{"ok", "", map[string]string{"bogus": "1"}, errdefs.IsInvalidArgument, `invalid option: "bogus"`},
		{"ok", "", map[string]string{"type": "tmpfs", "device": "tmpfs"}, errdefs.IsNotImplemented, "not supported yet"},
	} {
		_, err := s.Create(ctx, tc.name, tc.driver, nil, tc.opts)
		if !tc.is(err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("create %q %q %v: %v, want %q", tc.name, tc.driver, tc.opts, err, tc.msg)
		}
	}
	if vs, _ := s.List(ctx, nil, false); len(vs) != 0 {
		t.Errorf("failed creates left %v", names(vs))
	}
}

func TestUseRelease(t *testing.T) {
	ctx := t.Context()
	s, root, reopen, _ := open(t)

	// A named volume that does not exist is made by its first use.
	name, dir, created, err := s.Use(ctx, "web-data", "c1")
	if err != nil || name != "web-data" || dir != filepath.Join(root, "web-data", "_data") || !created {
		t.Fatalf("use new: %q %q %v %v", name, dir, created, err)
	}
	if v, _ := s.Get(ctx, "web-data", false); len(v.GetLabels()) != 0 {
		t.Errorf("a named volume made by use has labels %v", v.GetLabels())
	}
	// Its second use finds it; uses are counted once per container.
	for _, id := range []string{"c2", "c2"} {
		if _, _, created, err := s.Use(ctx, "web-data", id); err != nil || created {
			t.Fatalf("use existing: %v %v", created, err)
		}
	}
	// An empty name is a new anonymous volume.
	anon, adir, created, err := s.Use(ctx, "", "c1")
	if err != nil || len(anon) != 64 || !created || adir != filepath.Join(root, anon, "_data") {
		t.Fatalf("use anonymous: %q %q %v %v", anon, adir, created, err)
	}
	if v, _ := s.Get(ctx, anon, false); v.GetLabels()[volumes.LabelAnonymous] != "" || len(v.GetLabels()) != 1 {
		t.Errorf("anonymous labels %v", v.GetLabels())
	}
	if _, _, _, err := s.Use(ctx, "bad/name", "c1"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("use a bad name: %v", err)
	}

	// In use: not removed, even with force; and the uses survive a
	// restart.
	s = reopen()
	err = s.Remove(ctx, "web-data", true)
	if !errdefs.IsFailedPrecondition(err) || err.Error() != "remove web-data: volume is in use - [c1, c2]: failed precondition" {
		t.Errorf("remove in use: %v", err)
	}
	if v, _ := s.Get(ctx, "web-data", true); v.GetUsageData().GetRefCount() != 2 || !slices.Equal(v.GetContainers(), []string{"c1", "c2"}) {
		t.Errorf("after restart: %v", v)
	}

	// Release without remove keeps the volume; with remove, it goes once
	// the last user leaves.
	if err := s.Release(ctx, "web-data", "c1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "web-data", false); err != nil {
		t.Errorf("removed while c2 uses it: %v", err)
	}
	if err := s.Release(ctx, "web-data", "c2", false); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, "web-data", false); err != nil || len(v.GetContainers()) != 0 {
		t.Errorf("released without remove: %v %v", v, err)
	}
	if err := s.Release(ctx, anon, "c1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, anon, false); !errdefs.IsNotFound(err) {
		t.Errorf("anonymous volume released with remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, anon)); !os.IsNotExist(err) {
		t.Errorf("anonymous volume's directory left: %v", err)
	}
	// Releasing what is gone is no error.
	if err := s.Release(ctx, anon, "c1", true); err != nil {
		t.Errorf("release a removed volume: %v", err)
	}
}

func TestListFilters(t *testing.T) {
	ctx := t.Context()
	s, _, _, _ := open(t)
	for _, n := range []string{"alpha", "beta", "gamma"} {
		if _, err := s.Create(ctx, n, "", map[string]string{"env": n, "team": "x"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := s.Use(ctx, "beta", "c1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		filters []string
		want    []string
	}{
		{nil, []string{"alpha", "beta", "gamma"}},
		{[]string{"dangling=true"}, []string{"alpha", "gamma"}},
		{[]string{"dangling=0"}, []string{"beta"}},
		{[]string{"name=a"}, []string{"alpha", "beta", "gamma"}},
		{[]string{"name=^al"}, []string{"alpha"}},
		{[]string{"name=beta", "name=gamma"}, []string{"beta", "gamma"}},
		{[]string{"label=env=beta"}, []string{"beta"}},
		{[]string{"label=team", "label=env=gamma"}, []string{"gamma"}},
		{[]string{"label=nope"}, nil},
		{[]string{"driver=local", "dangling=false"}, []string{"beta"}},
		{[]string{"driver=nfs"}, nil},
	} {
		vs, err := s.List(ctx, tc.filters, false)
		if err != nil || !slices.Equal(names(vs), tc.want) {
			t.Errorf("list %q: %q %v, want %q", tc.filters, names(vs), err, tc.want)
		}
	}
	for _, f := range []string{"dangling=maybe", "bogus=1", "nokey"} {
		if _, err := s.List(ctx, []string{f}, false); !errdefs.IsInvalidArgument(err) {
			t.Errorf("list %q: %v, want invalid argument", f, err)
		}
	}
	vs, err := s.List(ctx, []string{"name=beta"}, true)
	if err != nil || len(vs) != 1 || vs[0].GetUsageData().GetRefCount() != 1 || vs[0].GetUsageData().GetSize() != 0 {
		t.Errorf("list with size: %v %v", vs, err)
	}
}

func TestPrune(t *testing.T) {
	ctx := t.Context()
	s, _, _, _ := open(t)
	mk := func(name string, labels map[string]string, size int) string {
		t.Helper()
		v, err := s.Create(ctx, name, "", labels, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(v.GetMountpoint(), "f"), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		return v.GetName()
	}
	named := mk("named", map[string]string{"keep": "no"}, 10)
	kept := mk("kept", map[string]string{"keep": "yes"}, 20)
	anon := mk("", nil, 100)
	used, _, _, err := s.Use(ctx, "", "c1")
	if err != nil {
		t.Fatal(err)
	}

	// Without all: only the unused anonymous one.
	deleted, space, err := s.Prune(ctx, false, nil)
	if err != nil || !slices.Equal(deleted, []string{anon}) || space != 100 {
		t.Errorf("prune: %q %d %v", deleted, space, err)
	}
	// label! spares the labelled ones; all=true as a filter is all.
	deleted, space, err = s.Prune(ctx, false, []string{"all=true", "label!=keep=yes"})
	if err != nil || !slices.Equal(deleted, []string{named}) || space != 10 {
		t.Errorf("prune all=true label!=keep=yes: %q %d %v", deleted, space, err)
	}
	deleted, _, err = s.Prune(ctx, true, []string{"label=keep=no"})
	if err != nil || len(deleted) != 0 {
		t.Errorf("prune label=keep=no: %q %v", deleted, err)
	}
	deleted, _, err = s.Prune(ctx, true, nil)
	if err != nil || !slices.Equal(deleted, []string{kept}) {
		t.Errorf("prune all: %q %v", deleted, err)
	}
	if vs, _ := s.List(ctx, nil, false); !slices.Equal(names(vs), []string{used}) {
		t.Errorf("left %q, want the one in use", names(vs))
	}
	for _, f := range []string{"all=maybe", "dangling=true"} {
		if _, _, err := s.Prune(ctx, false, []string{f}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("prune %q: %v, want invalid argument", f, err)
		}
	}
}
