package network

import (
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParsePublish(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []PortMapping // HostPort 0 here: any free port (checked non-zero)
		bad  string        // the error names this
	}{
		{spec: "8080:80", want: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{spec: "127.0.0.1:8080:80", want: []PortMapping{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{spec: "127.0.0.1::80", want: []PortMapping{{HostIP: "127.0.0.1", ContainerPort: 80, Protocol: "tcp"}}},
		{spec: "80", want: []PortMapping{{ContainerPort: 80, Protocol: "tcp"}}},
		{spec: "53/udp", want: []PortMapping{{ContainerPort: 53, Protocol: "udp"}}},
		{spec: "8080:80/udp", want: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "udp"}}},
		{spec: "8080:80/TCP", want: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{spec: "0:80", want: []PortMapping{{ContainerPort: 80, Protocol: "tcp"}}},
		{spec: "[::1]:8080:80", want: []PortMapping{{HostIP: "::1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{spec: "8000-8001:80-81", want: []PortMapping{
			{HostPort: 8000, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 8001, ContainerPort: 81, Protocol: "tcp"},
		}},
		{spec: "127.0.0.1::80-81/udp", want: []PortMapping{
			{HostIP: "127.0.0.1", ContainerPort: 80, Protocol: "udp"},
			{HostIP: "127.0.0.1", ContainerPort: 81, Protocol: "udp"},
		}},
		{spec: "", bad: `container port ""`},
		{spec: "0", bad: `container port "0"`},
		{spec: "http", bad: `container port "http"`},
		{spec: "70000", bad: `container port "70000"`},
		{spec: "8080:80/icmp", bad: `protocol "icmp"`},
		{spec: "x:8080:80", bad: `host address "x"`},
		{spec: "1.2.3.4:8080:80:9", bad: `"1.2.3.4:8080:80:9"`},
		{spec: "abc:80", bad: `host port "abc"`},
		{spec: "8001-8000:80", bad: `host port "8001-8000"`},
		{spec: "8000-8002:80-81", bad: "different lengths"},
		{spec: "[::1:8080:80", bad: "host address"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParsePublish([]string{tc.spec})
			if tc.bad != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("ParsePublish(%q) = %v, %v; want an invalid-argument error naming %s", tc.spec, got, err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublish(%q): %v", tc.spec, err)
			}
			for i := range got {
				if i < len(tc.want) && tc.want[i].HostPort == 0 {
					if got[i].HostPort == 0 {
						t.Errorf("mapping %d: no free host port picked", i)
					}
					got[i].HostPort = 0
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParsePublish(%q) = %+v, want %+v", tc.spec, got, tc.want)
			}
		})
	}
}

func TestParsePublishRangeToOnePort(t *testing.T) {
	// A host port in use is skipped: docker picks a free one of the range.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := uint16(l.Addr().(*net.TCPAddr).Port)
	if busy == 65535 {
		t.Skip("the kernel picked the last port")
	}
	spec := fmt.Sprintf("127.0.0.1:%d-%d:80", busy, busy+1)
	got, err := ParsePublish([]string{spec})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].HostPort != busy+1 || got[0].ContainerPort != 80 {
		t.Fatalf("ParsePublish(%q) = %+v, want host port %d", spec, got, busy+1)
	}
}
