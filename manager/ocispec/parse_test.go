package ocispec

import (
	"reflect"
	"testing"
)

func TestParseVolume(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mount
		name string
		err  string
	}{
		{in: "/host:/ctr", want: Mount{Type: "bind", Source: "/host", Destination: "/ctr"}},
		{in: "/host/:/ctr/sub/", want: Mount{Type: "bind", Source: "/host", Destination: "/ctr/sub"}},
		{in: "/host:/ctr:ro", want: Mount{Type: "bind", Source: "/host", Destination: "/ctr", ReadOnly: true}},
		{in: "/host:/ctr:rw,Z", want: Mount{Type: "bind", Source: "/host", Destination: "/ctr"}},
		{in: "/host:/ctr:ro,rshared", want: Mount{Type: "bind", Source: "/host", Destination: "/ctr", ReadOnly: true, Options: []string{"rshared"}}},
		{in: "/ctr", want: Mount{Type: "volume", Destination: "/ctr"}},
		{in: "data:/ctr", want: Mount{Type: "volume", Destination: "/ctr"}, name: "data"},
		{in: "my_vol.1:/ctr:ro,nocopy", want: Mount{Type: "volume", Destination: "/ctr", ReadOnly: true, NoCopy: true}, name: "my_vol.1"},
		{in: "", err: "empty part"},
		{in: "ctr", err: `container path "ctr" must be absolute`},
		{in: "/host:ctr", err: `container path "ctr" must be absolute`},
		{in: "/host:", err: "empty part"},
		{in: ":/ctr", err: "empty part"},
		{in: "/host:/ctr:", err: "empty part"},
		{in: "/host:/ctr:ro:x", err: "too many"},
		{in: "/host:/ctr:rx", err: `unknown mode "rx"`},
		{in: "/host:/ctr:ro,rw", err: "repeats"},
		{in: "/ctr:ro", err: "without a source cannot have a mode"},
		{in: "/host:/", err: "can't be '/'"},
		{in: "./rel:/ctr", err: "use an absolute path"},
		{in: "a:/ctr", err: "invalid characters"},
		{in: "/host:/ctr:nocopy", err: "only for volumes"},
		{in: "data:/ctr:rshared", err: "only for bind mounts"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			m, name, err := ParseVolume(tc.in)
			if tc.err != "" {
				wantInvalid(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, tc.want) || name != tc.name {
				t.Errorf("got %+v %q, want %+v %q", m, name, tc.want, tc.name)
			}
		})
	}
}

func TestParseTmpfs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mount
		err  string
	}{
		{in: "/run", want: Mount{Type: "tmpfs", Destination: "/run"}},
		{in: "/run:rw,noexec,nosuid,size=65536k", want: Mount{Type: "tmpfs", Destination: "/run", Options: []string{"noexec", "nosuid", "size=65536k"}}},
		{in: "/cache/:ro,mode=1777,uid=1000", want: Mount{Type: "tmpfs", Destination: "/cache", ReadOnly: true, Options: []string{"mode=1777", "uid=1000"}}},
		{in: "run", err: "must be absolute"},
		{in: "/", err: "not '/'"},
		{in: "", err: "must be absolute"},
		{in: "/run:bogus", err: `unknown option "bogus"`},
		{in: "/run:size=", err: `unknown option "size="`},
		{in: "/run:color=red", err: `unknown option "color=red"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			m, err := ParseTmpfs(tc.in)
			if tc.err != "" {
				wantInvalid(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, tc.want) {
				t.Errorf("got %+v, want %+v", m, tc.want)
			}
		})
	}
}

func TestParseMount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mount
		name string
		err  string
	}{
		{in: "type=bind,source=/a,target=/b,readonly", want: Mount{Type: "bind", Source: "/a", Destination: "/b", ReadOnly: true}},
		{in: "type=bind,src=/a,dst=/b,ro=false,bind-propagation=rslave,bind-recursive=disabled", want: Mount{Type: "bind", Source: "/a", Destination: "/b", Options: []string{"bind", "rslave"}}},
		{in: "source=data,target=/b", want: Mount{Type: "volume", Destination: "/b"}, name: "data"},
		{in: "type=volume,destination=/b,volume-nocopy", want: Mount{Type: "volume", Destination: "/b", NoCopy: true}},
		{in: "type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770", want: Mount{Type: "tmpfs", Destination: "/t", Options: []string{"size=67108864", "mode=1770"}}},
		{in: `"type=bind","source=/a,b",target=/c`, want: Mount{Type: "bind", Source: "/a,b", Destination: "/c"}},
		{in: "type=bind,source=/a", err: "target is required"},
		{in: "type=bind,source=rel,target=/b", err: "absolute source"},
		{in: "type=bind,target=/b", err: "absolute source"},
		{in: "type=bind,source=/a,target=b", err: "absolute path"},
		{in: "type=nfs,target=/b", err: `unknown type "nfs"`},
		{in: "type=bind,source=/a,target=/b,tmpfs-size=1m", err: "type=bind"},
		{in: "type=tmpfs,source=/a,target=/b", err: "no source"},
		{in: "type=tmpfs,target=/b,tmpfs-size=big", err: "tmpfs-size"},
		{in: "type=tmpfs,target=/b,tmpfs-mode=999", err: "tmpfs-mode"},
		{in: "type=bind,source=/a,target=/b,bind-propagation=weird", err: "bind-propagation"},
		{in: "type=bind,source=/a,target=/b,readonly=maybe", err: "true or false"},
		{in: "type=bind,source=/a,target=/b,color=red", err: `unknown key "color"`},
		{in: "type=bind,source=/a,target=/b,shared", err: "not key=value"},
		{in: "source=./rel,target=/b", err: "not a valid volume name"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			m, name, err := ParseMount(tc.in)
			if tc.err != "" {
				wantInvalid(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, tc.want) || name != tc.name {
				t.Errorf("got %+v %q, want %+v %q", m, name, tc.want, tc.name)
			}
		})
	}
}

func TestMergeOptions(t *testing.T) {
	got := mergeOptions([]string{"noexec", "nosuid", "nodev", "rprivate", "exec", "size=1m", "rshared", "size=2m", "nosuid"})
	want := []string{"nodev", "exec", "rshared", "size=2m", "nosuid"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mergeOptions = %q, want %q", got, want)
	}
}
