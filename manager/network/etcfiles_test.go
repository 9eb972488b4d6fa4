package network

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestWriteEtcFiles(t *testing.T) {
	dir := t.TempDir()
	a := &Attachment{IP: net.ParseIP("10.210.3.2").To4(), PrefixLen: 24}
	hosts, resolv, hostname, err := WriteEtcFiles(dir, "web1", a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hosts != filepath.Join(dir, "hosts") || resolv != filepath.Join(dir, "resolv.conf") || hostname != filepath.Join(dir, "hostname") {
		t.Fatalf("paths %s %s %s", hosts, resolv, hostname)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	h := read(hosts)
	for _, line := range []string{"127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n", "10.210.3.2\tweb1\n"} {
		if !strings.Contains(h, line) {
			t.Errorf("hosts lacks %q:\n%s", line, h)
		}
	}
	if got := read(hostname); got != "web1\n" {
		t.Errorf("hostname = %q", got)
	}
	r := read(resolv)
	if strings.Contains(r, "nameserver") || !strings.Contains(r, "--dns") {
		t.Errorf("resolv.conf without --dns should name no server and mention --dns:\n%s", r)
	}
	for _, l := range strings.Split(strings.TrimSpace(r), "\n") {
		if !strings.HasPrefix(l, "#") {
			t.Errorf("resolv.conf without --dns has a line that is not a comment: %q", l)
		}
	}

	// With servers, and without an attachment (no network).
	_, resolv, _, err = WriteEtcFiles(dir, "web2", nil, []string{"10.210.3.53", "fd00::53"})
	if err != nil {
		t.Fatal(err)
	}
	if r := read(resolv); !strings.Contains(r, "nameserver 10.210.3.53\nnameserver fd00::53\n") {
		t.Errorf("resolv.conf:\n%s", r)
	}
	if h := read(hosts); strings.Contains(h, "web") || strings.Contains(h, "10.210") {
		t.Errorf("hosts without an attachment names the container:\n%s", h)
	}

	for _, tc := range []struct {
		host string
		dns  []string
	}{{"", nil}, {"a b", nil}, {"ok", []string{"resolver.example"}}} {
		if _, _, _, err := WriteEtcFiles(dir, tc.host, a, tc.dns); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("WriteEtcFiles(%q, %v) = %v, want an invalid-argument error", tc.host, tc.dns, err)
		}
	}
}
