package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	testID    = "c1"
	testNS    = "default"
	testAddr  = "unix:///run/containerd/s/0123456789abcdef0123456789abcdef"
	ttrpcSock = "/run/containerd/containerd.sock.ttrpc"
	grpcSock  = "/run/containerd/containerd.sock"
)

// runcOptions is the runtime options Any as containerd sends it: the type
// URL is the message's full name, without a prefix.
func runcOptions(t *testing.T) *anypb.Any {
	t.Helper()
	v, err := proto.Marshal(&options.Options{BinaryName: "/usr/sbin/runc", ShimCgroup: "/shims/c1"})
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: v}
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// containerd 1.6 reads the reply as the address itself (trimmed), and
// dials it with the unix:// prefix taken off.
func parse16(reply []byte) (address string) {
	return strings.TrimSpace(string(reply))
}

// containerd 1.7 decodes JSON and refuses a version above 2; anything that
// is not JSON with a version of 2 or more is a plain address.
func parse17(reply []byte) (version int, address string, err error) {
	reply = bytes.TrimSpace(reply)
	var p jsonReply
	if json.Unmarshal(reply, &p) != nil || p.Version < 2 {
		return 2, string(reply), nil
	}
	if p.Version > 2 {
		return 0, "", fmt.Errorf("unsupported shim version (%d)", p.Version)
	}
	return p.Version, p.Address, nil
}

// containerd 2.0 to 2.2 decode the same JSON and take versions up to 3.
func parse20(reply []byte) (version int, address, protocol string, err error) {
	reply = bytes.TrimSpace(reply)
	var p bootapi.BootstrapResult // its JSON names are version, address, protocol
	if json.Unmarshal(reply, &p) != nil || p.Version < 2 {
		return 2, string(reply), "ttrpc", nil
	}
	if p.Version > 3 {
		return 0, "", "", fmt.Errorf("unsupported shim version (%d)", p.Version)
	}
	return int(p.Version), p.Address, p.Protocol, nil
}

func TestReplyContainerd16(t *testing.T) {
	// No MAX_SHIM_VERSION; the options on stdin as an Any.
	opts := runcOptions(t)
	p, err := ReadParams(bytes.NewReader(marshal(t, opts)), env(map[string]string{EnvTTRPCAddress: ttrpcSock}), testID, testNS)
	if err != nil {
		t.Fatal(err)
	}
	if p.Form != FormAddress || p.Version != TaskV2 {
		t.Errorf("form %v version %d, want address, task v2", p.Form, p.Version)
	}
	if !proto.Equal(p.Options, opts) {
		t.Errorf("options %v, want %v", p.Options, opts)
	}
	if cg, err := p.ShimCgroup(); err != nil || cg != "/shims/c1" {
		t.Errorf("ShimCgroup() = %q, %v; want /shims/c1", cg, err)
	}
	if p.TTRPCAddress != ttrpcSock {
		t.Errorf("ttrpc address %q, want %q", p.TTRPCAddress, ttrpcSock)
	}
	reply, err := p.Reply(testAddr)
	if err != nil {
		t.Fatal(err)
	}
	if got := parse16(reply); got != testAddr {
		t.Errorf("containerd 1.6 reads address %q, want %q", got, testAddr)
	}
}

func TestReplyContainerd17To22(t *testing.T) {
	// 1.7 and 2.0 to 2.2 both send MAX_SHIM_VERSION=2 and the options on
	// stdin; the reply must suit both.
	opts := runcOptions(t)
	p, err := ReadParams(bytes.NewReader(marshal(t, opts)), env(map[string]string{EnvMaxShimVersion: "2", EnvGRPCAddress: grpcSock}), testID, testNS)
	if err != nil {
		t.Fatal(err)
	}
	if p.Form != FormJSON || p.Version != TaskV2 {
		t.Errorf("form %v version %d, want json, task v2", p.Form, p.Version)
	}
	if !proto.Equal(p.Options, opts) || p.GRPCAddress != grpcSock {
		t.Errorf("options %v, grpc address %q: want %v, %q", p.Options, p.GRPCAddress, opts, grpcSock)
	}
	reply, err := p.Reply(testAddr)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"version":2,"address":"` + testAddr + `","protocol":"ttrpc"}`; string(reply) != want {
		t.Errorf("reply %s, want %s", reply, want)
	}
	if v, addr, err := parse17(reply); err != nil || v != 2 || addr != testAddr {
		t.Errorf("containerd 1.7 reads version %d address %q (%v), want 2 %q", v, addr, err, testAddr)
	}
	if v, addr, proto, err := parse20(reply); err != nil || v != 2 || addr != testAddr || proto != "ttrpc" {
		t.Errorf("containerd 2.0 reads version %d address %q protocol %q (%v), want 2 %q ttrpc", v, addr, proto, err, testAddr)
	}
}

func TestReplyVersionFollowsMaxShimVersion(t *testing.T) {
	for _, tc := range []struct {
		max     string
		form    Form
		version int
	}{
		{"", FormAddress, 2},
		{"1", FormAddress, 2},
		{"x", FormAddress, 2},
		{"2", FormJSON, 2},
		{"3", FormJSON, 3}, // a manager that says it reads v3
		{"4", FormJSON, 3}, // no more than the shim serves
	} {
		p, err := ReadParams(strings.NewReader(""), env(map[string]string{EnvMaxShimVersion: tc.max}), testID, testNS)
		if err != nil {
			t.Fatal(err)
		}
		if p.Form != tc.form || p.Version != tc.version || p.Options != nil {
			t.Errorf("MAX_SHIM_VERSION=%q: form %v version %d options %v, want %v %d none", tc.max, p.Form, p.Version, p.Options, tc.form, tc.version)
		}
		if tc.version == 3 {
			reply, _ := p.Reply(testAddr)
			if v, addr, _, err := parse20(reply); err != nil || v != 3 || addr != testAddr {
				t.Errorf("MAX_SHIM_VERSION=%s: containerd 2.0 reads version %d address %q (%v), want 3 %q", tc.max, v, addr, err, testAddr)
			}
		}
	}
}

func TestReplyContainerd23(t *testing.T) {
	opts := runcOptions(t)
	other, err := anypb.New(timestamppb.Now()) // an extension that is not runtime options
	if err != nil {
		t.Fatal(err)
	}
	dir := "/run/ctrd-s"
	params := &bootapi.BootstrapParams{
		InstanceID:             testID,
		Namespace:              testNS,
		LogLevel:               bootapi.LogLevel_LOG_LEVEL_DEBUG,
		ContainerdVersion:      "2.3.0",
		ContainerdTtrpcAddress: ttrpcSock,
		ContainerdGrpcAddress:  grpcSock,
		ContainerdBinary:       "/usr/bin/containerd",
		SocketDir:              &dir,
		Extensions:             []*bootapi.Extension{{Value: other}, {Value: opts}},
	}
	// 2.3 still sets MAX_SHIM_VERSION=2 for the shims of before.
	p, err := ReadParams(bytes.NewReader(marshal(t, params)), env(map[string]string{EnvMaxShimVersion: "2"}), testID, testNS)
	if err != nil {
		t.Fatal(err)
	}
	if p.Form != FormProto || p.Version != TaskV3 {
		t.Errorf("form %v version %d, want protobuf, task v3", p.Form, p.Version)
	}
	if !proto.Equal(p.Options, opts) {
		t.Errorf("options %v, want the runc options extension %v", p.Options, opts)
	}
	if cg, err := p.ShimCgroup(); err != nil || cg != "/shims/c1" {
		t.Errorf("ShimCgroup() = %q, %v; want /shims/c1", cg, err)
	}
	if !p.Debug || p.SocketDir != dir || p.TTRPCAddress != ttrpcSock || p.GRPCAddress != grpcSock {
		t.Errorf("params %+v: want debug, socket dir %s and containerd's addresses", p, dir)
	}
	reply, err := p.Reply(testAddr)
	if err != nil {
		t.Fatal(err)
	}
	var result bootapi.BootstrapResult
	if err := proto.Unmarshal(reply, &result); err != nil {
		t.Fatalf("containerd 2.3 cannot decode the reply %q: %v", reply, err)
	}
	if result.Version != 3 || result.Address != testAddr || result.Protocol != "ttrpc" {
		t.Errorf("containerd 2.3 reads %v, want version 3, address %s, ttrpc", &result, testAddr)
	}
}

func TestBootstrapParamsOfAnotherTask(t *testing.T) {
	// Runtime options decode as BootstrapParams too; only the identity
	// tells them apart. Params of another id or namespace are not taken.
	for _, in := range []proto.Message{
		runcOptions(t),
		&bootapi.BootstrapParams{InstanceID: "other", Namespace: testNS},
		&bootapi.BootstrapParams{InstanceID: testID, Namespace: "other"},
	} {
		p, err := ReadParams(bytes.NewReader(marshal(t, in)), env(nil), testID, testNS)
		if err != nil {
			t.Fatal(err)
		}
		if p.Form != FormAddress {
			t.Errorf("stdin %v: form %v, want address", in, p.Form)
		}
	}
}

func TestBadStdin(t *testing.T) {
	_, err := ReadParams(strings.NewReader("\xff\xff\xff"), env(nil), testID, testNS)
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("stdin that is no protobuf: error %v, want invalid argument", err)
	}
}

func TestJoinCgroup(t *testing.T) {
	root := t.TempDir()
	var roots []string
	for _, h := range []string{"cpu,cpuacct", "memory", "pids"} {
		roots = append(roots, filepath.Join(root, h))
	}
	// The cgroup exists in two of the three hierarchies.
	for _, r := range roots[:2] {
		if err := os.MkdirAll(filepath.Join(r, "shims", "c1"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(roots[2], 0o755); err != nil {
		t.Fatal(err)
	}
	if err := joinCgroup(roots, "/shims/c1", 4242); err != nil {
		t.Fatal(err)
	}
	for _, r := range roots[:2] {
		if b, err := os.ReadFile(filepath.Join(r, "shims", "c1", "cgroup.procs")); err != nil || string(b) != "4242" {
			t.Errorf("%s/shims/c1/cgroup.procs = %q, %v; want 4242", r, b, err)
		}
	}
	if err := joinCgroup(roots, "/nonexistent", 4242); err == nil {
		t.Error("joining a cgroup that no hierarchy has: no error")
	}
}
