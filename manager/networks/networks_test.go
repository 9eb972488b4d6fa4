package networks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/manager/containers"
	"github.com/berth-project/berth/manager/networks"
	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
)

var _ containers.Networks = (*networks.Store)(nil)

// fakePlugins is a directory with files named as the CNI plugins, enough
// for network.New; nothing here runs them.
func fakePlugins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type env struct {
	cfg networks.Config
	db  *bolt.DB
}

func newEnv(t *testing.T, pluginDir string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{cfg: networks.Config{
		PluginDirs:      []string{pluginDir},
		StateDir:        filepath.Join(dir, "networks"),
		DefaultStateDir: filepath.Join(dir, "network"),
		Bridge:          "bt0",
		Subnet:          "10.99.0.0/16",
	}}
	e.openDB(t, filepath.Join(dir, "meta.db"))
	return e
}

func (e *env) openDB(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db, e.cfg.DB = db, db
}

func (e *env) open(t *testing.T) *networks.Store {
	t.Helper()
	s, err := networks.Open(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reopen closes the database and opens the store again, as a restarted
// berthd does.
func (e *env) reopen(t *testing.T) *networks.Store {
	t.Helper()
	path := e.db.Path()
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	e.openDB(t, path)
	return e.open(t)
}

func names(rs []*networksv1.Network) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.GetName())
	}
	return out
}

func wantErr(t *testing.T, what string, err error, kind error, msg string) {
	t.Helper()
	if !errors.Is(err, kind) || !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: %v, want %v with %q", what, err, kind, msg)
	}
}

func TestBuiltins(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fakePlugins(t))
	s := e.open(t)
	all, err := s.List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(all); !slices.Equal(got, []string{"bridge", "host", "none"}) {
		t.Fatalf("networks %q", got)
	}
	for _, r := range all {
		if len(r.GetId()) != 64 || r.GetScope() != "local" || r.GetCreated() == nil {
			t.Errorf("record %v", r)
		}
	}
	if d := []string{all[0].GetDriver(), all[1].GetDriver(), all[2].GetDriver()}; !slices.Equal(d, []string{"bridge", "host", "null"}) {
		t.Errorf("drivers %q", d)
	}
	br := all[0]
	if c := br.GetIpam().GetConfig(); len(c) != 1 || c[0].GetSubnet() != "10.99.0.0/16" || c[0].GetGateway() != "10.99.0.1" ||
		br.GetOptions()[networks.BridgeNameOption] != "bt0" {
		t.Errorf("bridge %v", br)
	}
	for _, n := range []string{"bridge", "host", "none", "default", br.GetId()[:5]} {
		wantErr(t, "remove "+n, s.Remove(ctx, n), errdefs.ErrPermissionDenied, "is a pre-defined network and cannot be removed")
	}
	if err := s.Remove(ctx, "bridge"); err == nil || err.Error() != "bridge is a pre-defined network and cannot be removed: permission denied" {
		t.Errorf("remove bridge: %v", err)
	}
	for _, n := range []string{"bridge", "default", br.GetId()} {
		if m, err := s.Network(ctx, n); err != nil || m == nil {
			t.Errorf("Network(%s): %v", n, err)
		}
	}
	_, err = s.Network(ctx, "host")
	wantErr(t, "Network(host)", err, errdefs.ErrInvalidArgument, "not a bridge network")
	_, err = s.Network(ctx, "nope")
	wantErr(t, "Network(nope)", err, errdefs.ErrNotFound, "network nope not found")
	_, err = s.Create(ctx, &networksv1.CreateRequest{Name: "none"})
	wantErr(t, "create none", err, errdefs.ErrPermissionDenied, "operation is not permitted on predefined none network")
	_, err = s.Create(ctx, &networksv1.CreateRequest{Name: "x", Driver: "host"})
	wantErr(t, "create --driver host", err, errdefs.ErrPermissionDenied, `only one instance of "host" network is allowed`)
	_, err = s.Create(ctx, &networksv1.CreateRequest{Name: "x", Driver: "overlay"})
	wantErr(t, "create --driver overlay", err, errdefs.ErrNotFound, `plugin "overlay" not found`)

	// The built-ins keep their IDs; the default network follows the flags.
	e.cfg.Subnet, e.cfg.Bridge = "10.98.0.0/24", "bt1"
	s = e.reopen(t)
	again, err := s.Get(ctx, "bridge")
	if err != nil {
		t.Fatal(err)
	}
	if again.GetId() != br.GetId() || again.GetIpam().GetConfig()[0].GetSubnet() != "10.98.0.0/24" || again.GetOptions()[networks.BridgeNameOption] != "bt1" {
		t.Errorf("bridge after reopen %v, before %v", again, br)
	}
}

func TestCreateListRemove(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fakePlugins(t))
	s := e.open(t)
	r, err := s.Create(ctx, &networksv1.CreateRequest{Name: "web", Subnet: "10.97.3.0/24", Gateway: "10.97.3.1", Labels: map[string]string{"tier": "front"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetId()) != 64 || r.GetDriver() != "bridge" || r.GetScope() != "local" || r.GetOptions()[networks.BridgeNameOption] != "br-"+r.GetId()[:12] ||
		r.GetIpam().GetConfig()[0].GetGateway() != "10.97.3.1" || r.GetLabels()["tier"] != "front" {
		t.Errorf("created %v", r)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.StateDir, r.GetId())); err != nil {
		t.Errorf("state directory: %v", err)
	}
	db, err := s.Create(ctx, &networksv1.CreateRequest{Name: "db", Subnet: "10.97.4.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"web", r.GetId(), r.GetId()[:10]} {
		if got, err := s.Get(ctx, ref); err != nil || got.GetId() != r.GetId() {
			t.Errorf("Get(%s): %v %v", ref, got, err)
		}
	}
	for _, c := range []struct {
		req  *networksv1.CreateRequest
		kind error
		msg  string
	}{
		{&networksv1.CreateRequest{Name: "web"}, errdefs.ErrAlreadyExists, "network with name web already exists"},
		{&networksv1.CreateRequest{Name: "w2", Subnet: "10.97.0.0/16"}, errdefs.ErrConflict, "Pool overlaps with other one on this address space"},
		{&networksv1.CreateRequest{Name: "w2", Subnet: "10.99.7.0/24"}, errdefs.ErrConflict, "network bridge"},
		{&networksv1.CreateRequest{Name: "w2", Subnet: "10.96.0.1/24"}, errdefs.ErrInvalidArgument, "invalid subnet 10.96.0.1/24: it should be 10.96.0.0/24"},
		{&networksv1.CreateRequest{Name: "w2", Subnet: "nonsense"}, errdefs.ErrInvalidArgument, "invalid subnet nonsense"},
		{&networksv1.CreateRequest{Name: "w2", Subnet: "fd00::/64"}, errdefs.ErrInvalidArgument, "IPv4"},
		{&networksv1.CreateRequest{Name: "w2", Gateway: "10.96.0.1"}, errdefs.ErrInvalidArgument, "must have a corresponding subnet"},
		{&networksv1.CreateRequest{Name: "w2", Subnet: "10.96.0.0/24", Gateway: "10.95.0.1"}, errdefs.ErrInvalidArgument, "no matching subnet for gateway 10.95.0.1"},
		{&networksv1.CreateRequest{Name: "w2", Subnet: "10.96.0.0/24", Gateway: "10.96.0.9"}, errdefs.ErrInvalidArgument, "first address (10.96.0.1)"},
		{&networksv1.CreateRequest{}, errdefs.ErrInvalidArgument, "network name is empty"},
	} {
		_, err := s.Create(ctx, c.req)
		wantErr(t, "create "+c.req.String(), err, c.kind, c.msg)
	}

	for _, c := range []struct {
		filters []string
		want    []string
	}{
		{nil, []string{"bridge", "db", "host", "none", "web"}},
		{[]string{"type=custom"}, []string{"db", "web"}},
		{[]string{"type=builtin"}, []string{"bridge", "host", "none"}},
		{[]string{"driver=bridge"}, []string{"bridge", "db", "web"}},
		{[]string{"driver=null", "driver=host"}, []string{"host", "none"}},
		{[]string{"name=e"}, []string{"bridge", "none", "web"}},
		{[]string{"label=tier"}, []string{"web"}},
		{[]string{"label=tier=back"}, nil},
		{[]string{"id=" + db.GetId()[:6]}, []string{"db"}},
		{[]string{"type=custom", "name=d"}, []string{"db"}},
	} {
		got, err := s.List(ctx, c.filters)
		if err != nil || !slices.Equal(names(got), c.want) {
			t.Errorf("List(%q) = %q, %v; want %q", c.filters, names(got), err, c.want)
		}
	}
	_, err = s.List(ctx, []string{"type=other"})
	wantErr(t, "list type=other", err, errdefs.ErrInvalidArgument, "invalid filter: 'type'='other'")
	_, err = s.List(ctx, []string{"bogus=1"})
	wantErr(t, "list bogus", err, errdefs.ErrInvalidArgument, "invalid filter 'bogus'")

	// Records and managers survive a restart.
	s = e.reopen(t)
	got, err := s.Get(ctx, "web")
	if err != nil || got.GetId() != r.GetId() || got.GetIpam().GetConfig()[0].GetSubnet() != "10.97.3.0/24" {
		t.Fatalf("after reopen: %v %v", got, err)
	}
	if m, err := s.Network(ctx, "web"); err != nil || m == nil {
		t.Errorf("Network(web) after reopen: %v", err)
	}

	if err := s.Remove(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, "web")
	wantErr(t, "get removed", err, errdefs.ErrNotFound, "network web not found")
	wantErr(t, "remove again", s.Remove(ctx, "web"), errdefs.ErrNotFound, "network web not found")
	if _, err := os.Stat(filepath.Join(e.cfg.StateDir, r.GetId())); !os.IsNotExist(err) {
		t.Errorf("state directory left: %v", err)
	}
	_, err = s.Network(ctx, r.GetId())
	wantErr(t, "Network(removed)", err, errdefs.ErrNotFound, "not found")
	// Its subnet is free again.
	if _, err := s.Create(ctx, &networksv1.CreateRequest{Name: "web", Subnet: "10.97.3.0/24"}); err != nil {
		t.Errorf("create on a freed subnet: %v", err)
	}
}

func TestSubnetPicking(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fakePlugins(t))
	e.cfg.Pool, e.cfg.PoolSize = "10.254.250.0/23", 24
	s := e.open(t)
	a, err := s.Create(ctx, &networksv1.CreateRequest{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.GetIpam().GetConfig()[0]; got.GetSubnet() != "10.254.250.0/24" || got.GetGateway() != "10.254.250.1" {
		t.Errorf("a: %v", got)
	}
	// A subnet given by hand takes part of the second /24.
	if _, err := s.Create(ctx, &networksv1.CreateRequest{Name: "b", Subnet: "10.254.251.128/25"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(ctx, &networksv1.CreateRequest{Name: "c"})
	wantErr(t, "pool exhausted", err, errdefs.ErrUnavailable, "could not find an available, non-overlapping IPv4 address pool")
	if err := s.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	c, err := s.Create(ctx, &networksv1.CreateRequest{Name: "c"})
	if err != nil || c.GetIpam().GetConfig()[0].GetSubnet() != "10.254.250.0/24" {
		t.Errorf("c after a went: %v %v", c, err)
	}
}

func TestInUse(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fakePlugins(t))
	s := e.open(t)
	r, err := s.Create(ctx, &networksv1.CreateRequest{Name: "app", Subnet: "10.97.5.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, &networksv1.CreateRequest{Name: "idle", Subnet: "10.97.6.0/24", Labels: map[string]string{"keep": "yes"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, &networksv1.CreateRequest{Name: "idle2", Subnet: "10.97.7.0/24"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Attached(ctx, "app", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEndpoint(ctx, r.GetId()[:8], "c2", &networksv1.Endpoint{Name: "two", Ipv4Address: "10.97.5.3/24", MacAddress: "02:00:00:00:00:01"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Attached(ctx, "app", "c2"); err != nil { // keeps c2's details
		t.Fatal(err)
	}
	if err := s.Attached(ctx, "bridge", "c3"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "attach to a missing network", s.Attached(ctx, "gone", "c1"), errdefs.ErrNotFound, "network gone not found")

	s = e.reopen(t)
	got, err := s.Get(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GetContainers()) != 2 || got.GetContainers()["c2"].GetIpv4Address() != "10.97.5.3/24" || got.GetContainers()["c1"] == nil {
		t.Errorf("containers %v", got.GetContainers())
	}
	err = s.Remove(ctx, "app")
	want := "error while removing network: network app id " + r.GetId() + " has active endpoints"
	if !errdefs.IsFailedPrecondition(err) || err.Error() != want+": failed precondition" {
		t.Errorf("remove in use: %v, want %q", err, want)
	}
	deleted, err := s.Prune(ctx, []string{"label!=keep"})
	if err != nil || !slices.Equal(deleted, []string{"idle2"}) {
		t.Errorf("prune label!=keep: %q %v", deleted, err)
	}
	if _, err := s.Prune(ctx, []string{"dangling=true"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("prune with a bad filter: %v", err)
	}
	if deleted, err := s.Prune(ctx, []string{"until=1h"}); err != nil || len(deleted) != 0 {
		t.Errorf("prune until=1h (all are newer): %q %v", deleted, err)
	}
	for _, id := range []string{"c1", "c2", "c2"} {
		if err := s.Detached(ctx, "app", id); err != nil {
			t.Errorf("Detached(%s): %v", id, err)
		}
	}
	if err := s.Detached(ctx, "gone", "c1"); err != nil {
		t.Errorf("Detached from a missing network: %v", err)
	}
	deleted, err = s.Prune(ctx, nil)
	if err != nil || !slices.Equal(deleted, []string{"app", "idle"}) {
		t.Errorf("prune: %q %v", deleted, err)
	}
	all, _ := s.List(ctx, nil)
	if got := names(all); !slices.Equal(got, []string{"bridge", "host", "none"}) {
		t.Errorf("after prune: %q", got)
	}
}

func TestNoBridge(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fakePlugins(t))
	e.cfg.NoBridge = true
	s := e.open(t)
	all, err := s.List(ctx, nil)
	if err != nil || !slices.Equal(names(all), []string{"host", "none"}) {
		t.Errorf("networks %q %v", names(all), err)
	}
	_, err = s.Create(ctx, &networksv1.CreateRequest{Name: "x"})
	wantErr(t, "create", err, errdefs.ErrFailedPrecondition, "--no-network")
}

func TestOpenChecks(t *testing.T) {
	ctx := context.Background()
	if _, err := networks.Open(ctx, networks.Config{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no DB: %v", err)
	}
	e := newEnv(t, fakePlugins(t))
	e.cfg.Pool, e.cfg.PoolSize = "10.0.0.0/24", 16
	if _, err := networks.Open(ctx, e.cfg); !errdefs.IsInvalidArgument(err) {
		t.Errorf("pool smaller than its subnets: %v", err)
	}
	e.cfg.Pool, e.cfg.PoolSize, e.cfg.PluginDirs = "", 0, []string{t.TempDir()}
	if _, err := networks.Open(ctx, e.cfg); !errdefs.IsNotFound(err) {
		t.Errorf("no plugins: %v", err)
	}
}

func TestGCForgetsGoneContainers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fakePlugins(t))
	s := e.open(t)
	if _, err := s.Create(ctx, &networksv1.CreateRequest{Name: "app", Subnet: "10.97.8.0/24"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"live1", "gone1"} {
		if err := s.Attached(ctx, "app", id); err != nil {
			t.Fatal(err)
		}
	}
	// The stand-in plugins fail GC; the records are cleaned all the same.
	if err := s.GC(ctx, []string{"live1"}); err == nil {
		t.Error("GC with failing plugins: no error")
	}
	r, err := s.Get(ctx, "app")
	if err != nil || len(r.GetContainers()) != 1 || r.GetContainers()["live1"] == nil {
		t.Errorf("containers after GC: %v %v", r.GetContainers(), err)
	}
}
