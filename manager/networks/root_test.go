package networks_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/integration/testenv/netenv"
	"github.com/berth-project/berth/manager/networks"
	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
)

// TestBridgeNetworkRoot runs a user-defined network for real, in a
// throwaway namespace playing the host: the subnet picked skips the
// host's address, a container joins (the bridge appears), the network in
// use cannot go, and once the container left, Remove deletes the bridge
// and the network's state.
func TestBridgeNetworkRoot(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.Program("ip"), testenv.Program("nft"))
	ctx := context.Background()
	host := netenv.NewHost(t, &net.IPNet{IP: net.IPv4(10, 210, 0, 1), Mask: net.CIDRMask(24, 32)})
	e := newEnv(t, filepath.Dir(testenv.Binary(t, "bridge")))
	s := e.open(t)

	var r *networksv1.Network
	if err := host.In(func() (err error) {
		r, err = s.Create(ctx, &networksv1.CreateRequest{Name: "app"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := r.GetIpam().GetConfig()[0].GetSubnet(); got != "10.210.1.0/24" {
		t.Errorf("subnet %s, want 10.210.1.0/24 (10.210.0.0/24 is the host's)", got)
	}
	bridge := r.GetOptions()[networks.BridgeNameOption]

	m, err := s.Network(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	teardown := func() error { return host.In(func() error { return m.Teardown(ctx, "c1", nil) }) }
	t.Cleanup(func() { teardown() }) // before the state directory goes, whatever happened
	if err := host.In(func() error {
		a, err := m.Setup(ctx, "c1", nil)
		if err == nil && (a.Bridge != bridge || a.Gateway.String() != "10.210.1.1") {
			t.Errorf("attachment %+v", a)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Attached(ctx, "app", "c1"); err != nil {
		t.Fatal(err)
	}
	linkExists := func() bool {
		var found bool
		host.In(func() error {
			_, err := netlink.LinkByName(bridge)
			found = err == nil
			return nil
		})
		return found
	}
	if !linkExists() {
		t.Fatalf("bridge %s missing after a container joined", bridge)
	}
	if err := host.In(func() error { return s.Remove(ctx, "app") }); err == nil {
		t.Fatal("removed a network in use")
	}
	if err := teardown(); err != nil {
		t.Fatal(err)
	}
	if err := s.Detached(ctx, "app", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := host.In(func() error { return s.Remove(ctx, "app") }); err != nil {
		t.Fatal(err)
	}
	if linkExists() {
		t.Errorf("bridge %s left after Remove", bridge)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.StateDir, r.GetId())); !os.IsNotExist(err) {
		t.Errorf("state left: %v", err)
	}
}
