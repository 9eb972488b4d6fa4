package task

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestRuntimeOptions(t *testing.T) {
	runc, err := anypb.New(&options.Options{BinaryName: "runc", Root: "/r", SystemdCgroup: true})
	if err != nil {
		t.Fatal(err)
	}
	o, err := runtimeOptions(runc)
	if err != nil || o.BinaryName != "runc" || o.Root != "/r" || !o.SystemdCgroup {
		t.Fatalf("runc options: %+v, %v", o, err)
	}

	file := filepath.Join(t.TempDir(), "runtime.toml")
	if err := os.WriteFile(file, []byte("# berth\n[options]\nBinaryName = \"/usr/bin/crun\"\nno_pivot_root = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	generic, err := anypb.New(&runtimeoptions.Options{ConfigPath: file})
	if err != nil {
		t.Fatal(err)
	}
	o, err = runtimeOptions(generic)
	if err != nil || o.BinaryName != "/usr/bin/crun" || !o.NoPivotRoot {
		t.Fatalf("config file options: %+v, %v", o, err)
	}

	if o, err := runtimeOptions(nil); err != nil || o.BinaryName != "" {
		t.Fatalf("no options: %+v, %v", o, err)
	}
	for name, a := range map[string]*anypb.Any{
		"wrong type":     mustAny(t, timestamppb.Now()),
		"unknown key":    mustAny(t, &runtimeoptions.Options{ConfigBody: []byte("Colour = \"red\"\n")}),
		"bad value":      mustAny(t, &runtimeoptions.Options{ConfigBody: []byte("SystemdCgroup = maybe\n")}),
		"missing config": mustAny(t, &runtimeoptions.Options{ConfigPath: "/nonexistent/runtime.toml"}),
	} {
		if _, err := runtimeOptions(a); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
