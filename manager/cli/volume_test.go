package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/manager/server"
	"github.com/berth-project/berth/manager/volumes"
	volumesv1 "github.com/berth-project/berth/proto/services/volumes/v1"
)

// serveVolumes serves the volume service over a real library in a
// temporary directory, with berthd's error conversion, and returns the
// library and the address.
func serveVolumes(t *testing.T) (*volumes.Service, string, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "metadata.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	root := filepath.Join(dir, "volumes")
	lib, err := volumes.Open(context.Background(), volumes.Config{Root: root, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "berthd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	calls := server.NewCalls()
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(calls.Unary))
	if err != nil {
		t.Fatal(err)
	}
	volumesv1.RegisterVolumesService(srv, server.NewVolumes(lib))
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	return lib, "unix://" + sock, root
}

func TestVolumeCommands(t *testing.T) {
	ctx := t.Context()
	lib, addr, root := serveVolumes(t)
	var out, errOut bytes.Buffer
	cli := &CLI{In: strings.NewReader(""), Out: &out, Err: &errOut, Host: addr}
	defer cli.Close()
	run := func(what string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		s := out.String()
		out.Reset()
		return s
	}

	if got := run("create", cli.VolumeCreate(ctx, "vol10", VolumeCreateOptions{Labels: []string{"env=prod", "flag"}})); got != "vol10\n" {
		t.Errorf("create printed %q", got)
	}
	run("create --name", cli.VolumeCreate(ctx, "", VolumeCreateOptions{Name: "vol2", Driver: "local"}))
	anon := strings.TrimSpace(run("create anonymous", cli.VolumeCreate(ctx, "", VolumeCreateOptions{})))
	if len(anon) != 64 {
		t.Errorf("anonymous name %q", anon)
	}
	if err := cli.VolumeCreate(ctx, "a", VolumeCreateOptions{Name: "b"}); err == nil || !strings.Contains(err.Error(), "conflicting options") {
		t.Errorf("create with both names: %v", err)
	}
	err := cli.VolumeCreate(ctx, "x", VolumeCreateOptions{Driver: "nfs"})
	if ExitCode(err) != 1 || !strings.HasPrefix(err.Error(), `Error response from daemon: create x: error looking up volume plugin nfs`) {
		t.Errorf("create with another driver: %v", err)
	}

	// ls: natural order, docker's table.
	want := "DRIVER    VOLUME NAME\nlocal     " + anon + "\nlocal     vol2\nlocal     vol10\n"
	if got := run("ls", cli.VolumeLs(ctx, VolumeLsOptions{})); got != want {
		t.Errorf("ls:\n%s\nwant:\n%s", got, want)
	}
	if got := run("ls -q -f", cli.VolumeLs(ctx, VolumeLsOptions{Quiet: true, Filters: []string{"label=env=prod"}})); got != "vol10\n" {
		t.Errorf("ls -q -f label=env=prod: %q", got)
	}
	if got := run("ls --format", cli.VolumeLs(ctx, VolumeLsOptions{Format: `{{.Name}} {{.Labels}} {{.Label "env"}} {{.Scope}} {{.Links}}`, Filters: []string{"name=vol1"}})); got != "vol10 env=prod,flag= prod local N/A\n" {
		t.Errorf("ls --format: %q", got)
	}
	var row map[string]string
	if err := json.Unmarshal([]byte(run("ls --format json", cli.VolumeLs(ctx, VolumeLsOptions{Format: "json", Filters: []string{"name=vol2"}}))), &row); err != nil ||
		row["Name"] != "vol2" || row["Driver"] != "local" || row["Mountpoint"] != filepath.Join(root, "vol2", "_data") || row["Size"] != "N/A" {
		t.Errorf("ls --format json: %v %v", row, err)
	}
	if err := cli.VolumeLs(ctx, VolumeLsOptions{Filters: []string{"bogus=1"}}); err == nil || err.Error() != "Error response from daemon: invalid filter 'bogus'" {
		t.Errorf("ls bad filter: %v", err)
	}

	// inspect: docker's JSON array; a missing one fails after the others.
	err = cli.VolumeInspect(ctx, []string{"vol10", "nope"}, VolumeInspectOptions{})
	if err == nil || err.Error() != "Error response from daemon: get nope: no such volume" || ExitCode(err) != 1 {
		t.Errorf("inspect with a missing one: %v", err)
	}
	var got []map[string]any
	text := out.String()
	out.Reset()
	if err := json.Unmarshal([]byte(text), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect output %q: %v", text, err)
	}
	var keys []string
	for k := range got[0] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !slices.Equal(keys, []string{"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}) {
		t.Errorf("inspect keys %q", keys)
	}
	if got[0]["Name"] != "vol10" || got[0]["Mountpoint"] != filepath.Join(root, "vol10", "_data") || got[0]["Scope"] != "local" ||
		got[0]["Labels"].(map[string]any)["env"] != "prod" || !strings.Contains(text, `"Options": {}`) {
		t.Errorf("inspect: %s", text)
	}
	if _, err := time.Parse(time.RFC3339, got[0]["CreatedAt"].(string)); err != nil {
		t.Errorf("CreatedAt: %v", err)
	}
	if got := run("inspect -f", cli.VolumeInspect(ctx, []string{"vol2"}, VolumeInspectOptions{Format: "{{.Name}} {{.Driver}}"})); got != "vol2 local\n" {
		t.Errorf("inspect -f: %q", got)
	}

	// rm: a volume in use stays, even with -f; -f ignores missing ones.
	if _, _, _, err := lib.Use(ctx, "vol2", "c0ffee"); err != nil {
		t.Fatal(err)
	}
	err = cli.VolumeRm(ctx, []string{"vol2", "nope"}, VolumeRmOptions{})
	if err == nil || !strings.Contains(err.Error(), "Error response from daemon: remove vol2: volume is in use - [c0ffee]") ||
		!strings.Contains(err.Error(), "Error response from daemon: get nope: no such volume") || ExitCode(err) != 1 {
		t.Errorf("rm: %v", err)
	}
	out.Reset()
	if got := run("rm -f", cli.VolumeRm(ctx, []string{"vol10", "nope"}, VolumeRmOptions{Force: true})); got != "vol10\nnope\n" {
		t.Errorf("rm -f printed %q", got)
	}

	// prune: asks first; without -a only anonymous volumes go.
	cli.In = strings.NewReader("n\n")
	if got := run("prune, declined", cli.VolumePrune(ctx, VolumePruneOptions{})); got != "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] " {
		t.Errorf("prune declined: %q", got)
	}
	cli.In = strings.NewReader("y\n")
	wantPrune := "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] " +
		"Deleted Volumes:\n" + anon + "\n\nTotal reclaimed space: 0B\n"
	if got := run("prune", cli.VolumePrune(ctx, VolumePruneOptions{})); got != wantPrune {
		t.Errorf("prune:\n%q\nwant:\n%q", got, wantPrune)
	}
	if got := run("prune -a -f", cli.VolumePrune(ctx, VolumePruneOptions{All: true, Force: true})); got != "Total reclaimed space: 0B\n" {
		t.Errorf("prune -a with the last one in use: %q", got)
	}
}

func TestNaturalLess(t *testing.T) {
	in := []string{"vol10", "b", "vol2", "a1", "vol02", "a", "vol1x", "Z"}
	sort.SliceStable(in, func(i, j int) bool { return naturalLess(in[i], in[j]) })
	if want := []string{"Z", "a", "a1", "b", "vol1x", "vol2", "vol02", "vol10"}; !slices.Equal(in, want) {
		t.Errorf("sorted %q, want %q", in, want)
	}
}
