package hostlocal

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/berth-project/berth/cni/plugin"
	"github.com/berth-project/berth/integration/testenv/netenv"
)

// versions are the spec versions every test runs across.
var versions = plugin.Versions.SupportedVersions()

// ipsConf is a dual-stack configuration in version v over dataDir, with
// extra top-level fields (a JSON fragment ending in a comma, or "").
func ipsConf(v, dataDir, extra string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":%q,"name":"req","type":"bridge",%s"ipam":{"type":"host-local","dataDir":%q,`+
		`"ranges":[[{"subnet":"10.99.20.0/24","rangeStart":"10.99.20.10","rangeEnd":"10.99.20.99"}],[{"subnet":"fd99:20::/64"}]]}}`, v, extra, dataDir))
}

// addIn runs ADD in process and returns the result, checking it is in
// version v.
func addIn(t *testing.T, v string, data []byte, id, cniArgs string) (*types100.Result, error) {
	t.Helper()
	var out bytes.Buffer
	if err := add(&skel.CmdArgs{ContainerID: id, IfName: "eth0", Args: cniArgs, StdinData: data}, &out); err != nil {
		if out.Len() != 0 {
			t.Errorf("a failed ADD printed %s", &out)
		}
		return nil, err
	}
	r, err := create.CreateFromBytes(out.Bytes())
	if err != nil {
		t.Fatalf("ADD printed an unreadable result: %v\n%s", err, &out)
	}
	if r.Version() != v {
		t.Errorf("result version %s, want %s", r.Version(), v)
	}
	cur, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return cur, nil
}

func addrs(r *types100.Result) []string {
	var out []string
	for _, ipc := range r.IPs {
		out = append(out, ipc.Address.String())
	}
	return out
}

// TestRequestedAddresses asks for addresses in every way a runtime can,
// across every version: the ips capability (runtimeConfig.ips), args.cni.ips
// and CNI_ARGS IP=.
func TestRequestedAddresses(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			both := ipsConf(v, dir, `"runtimeConfig":{"ips":["10.99.20.50/24","fd99:20::50/64"]},`)
			r, err := addIn(t, v, both, "a", "")
			if err != nil {
				t.Fatalf("ADD with runtimeConfig.ips: %v", err)
			}
			if got := addrs(r); !slices.Equal(got, []string{"10.99.20.50/24", "fd99:20::50/64"}) {
				t.Errorf("runtimeConfig.ips: got %v", got)
			}
			if r.IPs[0].Gateway.String() != "10.99.20.1" {
				t.Errorf("gateway %s, want the range's 10.99.20.1", r.IPs[0].Gateway)
			}

			r, err = addIn(t, v, ipsConf(v, dir, `"args":{"cni":{"ips":["10.99.20.51"]}},`), "b", "")
			if err != nil {
				t.Fatalf("ADD with args.cni.ips: %v", err)
			}
			if got := addrs(r); len(got) != 2 || got[0] != "10.99.20.51/24" {
				t.Errorf("args.cni.ips: got %v, want 10.99.20.51/24 and any IPv6 address", got)
			}

			r, err = addIn(t, v, ipsConf(v, dir, ""), "c", "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.99.20.52")
			if err != nil {
				t.Fatalf("ADD with CNI_ARGS IP=: %v", err)
			}
			if got := addrs(r); got[0] != "10.99.20.52/24" {
				t.Errorf("CNI_ARGS IP=: got %v", got)
			}

			// b asking for another address than the one it holds.
			if _, err := addIn(t, v, ipsConf(v, dir, `"args":{"cni":{"ips":["10.99.20.53"]}},`), "b", ""); netenv.ErrCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "already holds 10.99.20.51") {
				t.Errorf("ADD of b asking for another address = %v, want code 7 naming the one it holds", err)
			}

			// The same attachment asking again gets the same addresses.
			if r, err = addIn(t, v, both, "a", ""); err != nil || !slices.Equal(addrs(r), []string{"10.99.20.50/24", "fd99:20::50/64"}) {
				t.Errorf("ADD of a again: %v, %v", r, err)
			}
			args := func(data []byte, id string) *skel.CmdArgs {
				return &skel.CmdArgs{ContainerID: id, IfName: "eth0", StdinData: data}
			}
			if err := Check(args(both, "a")); err != nil {
				t.Errorf("CHECK of a: %v", err)
			}
			if err := Check(args(ipsConf(v, dir, `"runtimeConfig":{"ips":["10.99.20.70"]},`), "a")); err == nil || !strings.Contains(err.Error(), "10.99.20.70") {
				t.Errorf("CHECK of a against another requested address = %v, want an error naming it", err)
			}

			// Taken by another attachment: error 102, and d's IPv4 address,
			// reserved before its IPv6 request failed, is released again.
			before := allocations(t, dir)
			_, err = addIn(t, v, ipsConf(v, dir, `"runtimeConfig":{"ips":["10.99.20.60","fd99:20::50"]},`), "d", "")
			if netenv.ErrCode(err) != plugin.ErrAddressTaken || !strings.Contains(err.Error(), "fd99:20::50") || !strings.Contains(err.Error(), "container a") {
				t.Errorf("ADD of an address a holds = %v, want code %d naming the address and its holder", err, plugin.ErrAddressTaken)
			}
			if after := allocations(t, dir); !slices.Equal(before, after) {
				t.Errorf("a failed ADD changed the allocations: %v, then %v", before, after)
			}

			// A released address can be asked for again.
			if err := Del(args(both, "a")); err != nil {
				t.Fatal(err)
			}
			if r, err = addIn(t, v, both, "e", ""); err != nil || addrs(r)[0] != "10.99.20.50/24" {
				t.Errorf("ADD of a released address: %v, %v", r, err)
			}
		})
	}
}

func allocations(t *testing.T, dataDir string) []string {
	t.Helper()
	a := netenv.Allocations(t, filepath.Join(dataDir, "req"))
	slices.Sort(a)
	return a
}

// TestRequestErrors: addresses a runtime may not ask for fail ADD with a
// clear error, before anything is allocated.
func TestRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, extra, cniArgs string
		code                 uint
		msg                  string
	}{
		{"outside every range", `"runtimeConfig":{"ips":["10.99.21.5"]},`, "", types.ErrInvalidNetworkConfig, "outside every range"},
		{"outside rangeStart-rangeEnd", `"runtimeConfig":{"ips":["10.99.20.200"]},`, "", types.ErrInvalidNetworkConfig, "10.99.20.10-10.99.20.99"},
		{"the gateway", `"runtimeConfig":{"ips":["fd99:20::1"]},`, "", types.ErrInvalidNetworkConfig, "gateway"},
		{"two in one range set", `"runtimeConfig":{"ips":["10.99.20.40","10.99.20.41"]},`, "", types.ErrInvalidNetworkConfig, "one address is allocated per range set"},
		{"not an address", `"args":{"cni":{"ips":["10.99.20"]}},`, "", types.ErrInvalidNetworkConfig, "args.cni.ips \"10.99.20\" is not an IP address"},
		{"CNI_ARGS not an address", "", "IP=nope", types.ErrInvalidNetworkConfig, "CNI_ARGS IP"},
		{"ips not a list", `"runtimeConfig":{"ips":"10.99.20.40"},`, "", types.ErrDecodingFailure, "runtimeConfig.ips"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := addIn(t, "1.1.0", ipsConf("1.1.0", dir, tc.extra), "x", tc.cniArgs)
			if netenv.ErrCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ADD = %v, want code %d mentioning %q", err, tc.code, tc.msg)
			}
			if a := allocations(t, dir); len(a) != 0 {
				t.Errorf("a failed ADD allocated %v", a)
			}
		})
	}
}
