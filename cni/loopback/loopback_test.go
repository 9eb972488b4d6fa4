package loopback

import (
	"encoding/json"
	"fmt"
	"net"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/integration/testenv"
)

func loUp(t *testing.T, n ns.NetNS) bool {
	t.Helper()
	var up bool
	if err := n.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		up = lo.Attrs().Flags&net.FlagUp != 0
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return up
}

func TestAddCheckDel(t *testing.T) {
	testenv.RequireRoot(t)
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			n := testenv.NetNS(t)
			conf := []byte(fmt.Sprintf(`{"cniVersion":%q,"name":"lo-test","type":"loopback"}`, v))
			args := &skel.CmdArgs{ContainerID: "c1", Netns: n.Path(), IfName: "lo", StdinData: conf}
			if loUp(t, n) {
				t.Fatal("lo is up in a fresh namespace")
			}
			_, out, err := testutils.CmdAddWithArgs(args, func() error { return Add(args) })
			if err != nil {
				t.Fatal(err)
			}
			var res struct {
				CNIVersion string `json:"cniVersion"`
				IPs        []struct {
					Address string `json:"address"`
				} `json:"ips"`
			}
			if err := json.Unmarshal(out, &res); err != nil || res.CNIVersion != v || len(res.IPs) != 2 || res.IPs[0].Address != "127.0.0.1/8" {
				t.Fatalf("result %s: %+v, %v", out, res, err)
			}
			if !loUp(t, n) {
				t.Fatal("lo is down after ADD")
			}
			if v != "0.3.0" && v != "0.3.1" {
				if err := Check(args); err != nil {
					t.Fatalf("CHECK: %v", err)
				}
			}
			if err := testutils.CmdDelWithArgs(args, func() error { return Del(args) }); err != nil {
				t.Fatal(err)
			}
			if loUp(t, n) {
				t.Fatal("lo is up after DEL")
			}
		})
	}
}

func TestDelWithoutNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	conf := []byte(`{"cniVersion":"1.1.0","name":"lo-test","type":"loopback"}`)
	args := &skel.CmdArgs{ContainerID: "c1", Netns: "/var/run/netns/berth-does-not-exist", IfName: "lo", StdinData: conf}
	if err := Del(args); err != nil {
		t.Fatalf("DEL of a namespace that is gone: %v", err)
	}
	if err := Add(args); err == nil {
		t.Fatal("ADD into a missing namespace succeeded")
	}
}
