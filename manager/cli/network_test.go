package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
)

const (
	bridgeID = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	webID    = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222"
)

// fakeNetworks answers as berthd's network service would, with two
// networks.
type fakeNetworks struct {
	create  *networksv1.CreateRequest
	list    *networksv1.ListRequest
	removed []string
	pruned  *networksv1.PruneRequest
}

func testNetworks() []*networksv1.Network {
	created := timestamppb.New(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC))
	return []*networksv1.Network{
		{Name: "web", Id: webID, Created: created, Scope: "local", Driver: "bridge",
			Ipam:       &networksv1.IPAM{Driver: "default", Config: []*networksv1.IPAMConfig{{Subnet: "10.210.0.0/24", Gateway: "10.210.0.1"}}},
			Containers: map[string]*networksv1.Endpoint{"c1": {Name: "one", Ipv4Address: "10.210.0.2/24", MacAddress: "02:42:0a:d2:00:02"}},
			Options:    map[string]string{"com.docker.network.bridge.name": "br-bbbbbbbbbbbb"},
			Labels:     map[string]string{"tier": "front"}},
		{Name: "bridge", Id: bridgeID, Created: created, Scope: "local", Driver: "bridge"},
	}
}

func (f *fakeNetworks) Create(_ context.Context, req *networksv1.CreateRequest) (*networksv1.CreateResponse, error) {
	f.create = req
	return &networksv1.CreateResponse{Id: webID}, nil
}

func (f *fakeNetworks) List(_ context.Context, req *networksv1.ListRequest) (*networksv1.ListResponse, error) {
	f.list = req
	return &networksv1.ListResponse{Networks: testNetworks()}, nil
}

func (f *fakeNetworks) Get(_ context.Context, req *networksv1.GetRequest) (*networksv1.GetResponse, error) {
	for _, n := range testNetworks() {
		if n.GetName() == req.GetName() {
			return &networksv1.GetResponse{Network: n}, nil
		}
	}
	return nil, errgrpc.ToGRPC(fmt.Errorf("network %s not found: %w", req.GetName(), errdefs.ErrNotFound))
}

func (f *fakeNetworks) Remove(_ context.Context, req *networksv1.RemoveRequest) (*emptypb.Empty, error) {
	if req.GetName() == "bridge" {
		return nil, errgrpc.ToGRPC(fmt.Errorf("bridge is a pre-defined network and cannot be removed: %w", errdefs.ErrPermissionDenied))
	}
	if req.GetName() == "nope" {
		return nil, errgrpc.ToGRPC(fmt.Errorf("network nope not found: %w", errdefs.ErrNotFound))
	}
	f.removed = append(f.removed, req.GetName())
	return &emptypb.Empty{}, nil
}

func (f *fakeNetworks) Prune(_ context.Context, req *networksv1.PruneRequest) (*networksv1.PruneResponse, error) {
	f.pruned = req
	return &networksv1.PruneResponse{Deleted: []string{"old1", "old2"}}, nil
}

func serveNetworks(t *testing.T, f *fakeNetworks) (*CLI, *bytes.Buffer) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "berthd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	networksv1.RegisterNetworksService(srv, f)
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	var out bytes.Buffer
	cli := &CLI{Out: &out, Err: &out, Host: "unix://" + sock}
	t.Cleanup(func() { cli.Close() })
	return cli, &out
}

func TestNetworkCreate(t *testing.T) {
	f := &fakeNetworks{}
	cli, out := serveNetworks(t, f)
	err := cli.NetworkCreate(t.Context(), "web", NetworkCreateOptions{Driver: "bridge", Subnet: "10.1.0.0/24", Gateway: "10.1.0.1", Labels: []string{"a=b", "flag"}})
	if err != nil || out.String() != webID+"\n" {
		t.Fatalf("create: %v %q", err, out.String())
	}
	if r := f.create; r.GetName() != "web" || r.GetDriver() != "bridge" || r.GetSubnet() != "10.1.0.0/24" || r.GetGateway() != "10.1.0.1" ||
		r.GetLabels()["a"] != "b" || r.GetLabels()["flag"] != "" || len(r.GetLabels()) != 2 {
		t.Errorf("request %v", r)
	}
	if err := cli.NetworkCreate(t.Context(), "web", NetworkCreateOptions{Labels: []string{"=x"}}); ExitCode(err) != ExitUsage {
		t.Errorf("empty label name: %v (exit %d)", err, ExitCode(err))
	}
}

func TestNetworkLs(t *testing.T) {
	f := &fakeNetworks{}
	cli, out := serveNetworks(t, f)
	if err := cli.NetworkLs(t.Context(), NetworkLsOptions{Filters: []string{"driver=bridge"}}); err != nil {
		t.Fatal(err)
	}
	want := "NETWORK ID     NAME      DRIVER    SCOPE\n" +
		"aaaaaaaaaaaa   bridge    bridge    local\n" +
		"bbbbbbbbbbbb   web       bridge    local\n"
	if out.String() != want {
		t.Errorf("ls:\n%s\nwant:\n%s", out, want)
	}
	if len(f.list.GetFilters()) != 1 || f.list.GetFilters()[0] != "driver=bridge" {
		t.Errorf("filters %q", f.list.GetFilters())
	}
	for _, c := range []struct {
		opts NetworkLsOptions
		want string
	}{
		{NetworkLsOptions{Quiet: true}, "aaaaaaaaaaaa\nbbbbbbbbbbbb\n"},
		{NetworkLsOptions{Quiet: true, NoTrunc: true}, bridgeID + "\n" + webID + "\n"},
		{NetworkLsOptions{Format: `{{.Name}} {{.Label "tier"}} {{.Labels}} {{.IPv6}} {{.Internal}}`}, "bridge   false false\nweb front tier=front false false\n"},
		{NetworkLsOptions{Format: "table {{.Name}}\t{{.Driver}}"}, "NAME      DRIVER\nbridge    bridge\nweb       bridge\n"},
	} {
		out.Reset()
		if err := cli.NetworkLs(t.Context(), c.opts); err != nil || out.String() != c.want {
			t.Errorf("ls %+v: %v\n%q\nwant\n%q", c.opts, err, out.String(), c.want)
		}
	}
	out.Reset()
	if err := cli.NetworkLs(t.Context(), NetworkLsOptions{Format: "json"}); err != nil || !strings.HasPrefix(out.String(), `{"ID":"aaaaaaaaaaaa","Name":"bridge"`) || strings.Count(out.String(), "\n") != 2 {
		t.Errorf("ls --format json: %v %q", err, out.String())
	}
}

func TestNetworkInspect(t *testing.T) {
	cli, out := serveNetworks(t, &fakeNetworks{})
	err := cli.NetworkInspect(t.Context(), []string{"web", "nope", "bridge"}, NetworkInspectOptions{})
	if err == nil || ExitCode(err) != ExitFailure || err.Error() != "Error response from daemon: network nope not found" {
		t.Errorf("inspect with a missing network: %v", err)
	}
	var got []map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got) != 2 {
		t.Fatalf("inspect output %v: %s", err, out)
	}
	web := got[0]
	for _, k := range []string{"Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"} {
		if _, ok := web[k]; !ok {
			t.Errorf("no %s in %v", k, web)
		}
	}
	if web["Id"] != webID || web["Created"] != "2024-05-06T07:08:09Z" {
		t.Errorf("web %v", web)
	}
	ipam := web["IPAM"].(map[string]any)
	if cfg := ipam["Config"].([]any); len(cfg) != 1 || cfg[0].(map[string]any)["Subnet"] != "10.210.0.0/24" || cfg[0].(map[string]any)["Gateway"] != "10.210.0.1" {
		t.Errorf("IPAM %v", ipam)
	}
	if c := web["Containers"].(map[string]any)["c1"].(map[string]any); c["Name"] != "one" || c["IPv4Address"] != "10.210.0.2/24" || c["MacAddress"] != "02:42:0a:d2:00:02" {
		t.Errorf("containers %v", web["Containers"])
	}
	if b := got[1]; b["Containers"] == nil || b["Labels"] == nil || b["Options"] == nil || b["IPAM"].(map[string]any)["Config"] == nil {
		t.Errorf("empty maps and lists must be {} and []: %v", b)
	}
	out.Reset()
	if err := cli.NetworkInspect(t.Context(), []string{"web"}, NetworkInspectOptions{Format: `{{.Name}} {{index .Options "com.docker.network.bridge.name"}} {{range .IPAM.Config}}{{.Subnet}}{{end}}`}); err != nil ||
		out.String() != "web br-bbbbbbbbbbbb 10.210.0.0/24\n" {
		t.Errorf("inspect -f: %v %q", err, out.String())
	}
}

func TestNetworkRmAndPrune(t *testing.T) {
	f := &fakeNetworks{}
	cli, out := serveNetworks(t, f)
	err := cli.NetworkRm(t.Context(), []string{"web", "bridge", "nope", "db"}, NetworkRmOptions{})
	if ExitCode(err) != ExitFailure || err.Error() != "Error response from daemon: bridge is a pre-defined network and cannot be removed\nError response from daemon: network nope not found" {
		t.Errorf("rm: %v", err)
	}
	if out.String() != "web\ndb\n" || strings.Join(f.removed, ",") != "web,db" {
		t.Errorf("rm output %q, removed %q", out.String(), f.removed)
	}
	out.Reset()
	if err := cli.NetworkRm(t.Context(), []string{"nope"}, NetworkRmOptions{Force: true}); err != nil || out.Len() != 0 {
		t.Errorf("rm -f of a missing network: %v %q", err, out.String())
	}

	// Without -f prune asks first; no answer is no.
	cli.In = strings.NewReader("n\n")
	if err := cli.NetworkPrune(t.Context(), NetworkPruneOptions{}); err != nil || f.pruned != nil ||
		out.String() != "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] " {
		t.Errorf("prune declined: %v %q", err, out.String())
	}
	out.Reset()
	if err := cli.NetworkPrune(t.Context(), NetworkPruneOptions{Force: true, Filters: []string{"until=1h"}}); err != nil ||
		out.String() != "Deleted Networks:\nold1\nold2\n\n" || f.pruned.GetFilters()[0] != "until=1h" {
		t.Errorf("prune: %v %q", err, out.String())
	}
}
