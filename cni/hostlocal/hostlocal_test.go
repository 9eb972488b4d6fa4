package hostlocal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/berth-project/berth/cni/plugin"
)

func conf(t *testing.T, ipam string) []byte {
	t.Helper()
	return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"net-%s","type":"bridge","ipam":%s}`,
		strings.ReplaceAll(t.Name(), "/", "-"), strings.ReplaceAll(ipam, "DATADIR", t.TempDir())))
}

func mustParse(t *testing.T, data []byte) *Config {
	t.Helper()
	c, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseDefaults(t *testing.T) {
	c := mustParse(t, conf(t, `{"type":"host-local","dataDir":"DATADIR","ranges":[[{"subnet":"10.99.1.0/24"}],[{"subnet":"fd99::/120"}]]}`))
	r := c.IPAM.Ranges[0][0]
	if r.RangeStart.String() != "10.99.1.1" || r.RangeEnd.String() != "10.99.1.254" || r.Gateway.String() != "10.99.1.1" {
		t.Errorf("v4 range %s", r)
	}
	r6 := c.IPAM.Ranges[1][0]
	if r6.RangeStart.String() != "fd99::1" || r6.RangeEnd.String() != "fd99::ff" {
		t.Errorf("v6 range %s", r6)
	}
	legacy := mustParse(t, conf(t, `{"type":"host-local","dataDir":"DATADIR","subnet":"10.99.2.0/24","rangeStart":"10.99.2.10","rangeEnd":"10.99.2.20"}`))
	if got := legacy.IPAM.Ranges[0][0]; got.RangeStart.String() != "10.99.2.10" || got.RangeEnd.String() != "10.99.2.20" {
		t.Errorf("legacy subnet form: %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		data string
		code uint
		msg  string
	}{
		"malformed":      {`{"name":`, types.ErrDecodingFailure, "not valid JSON"},
		"wrong type":     {`{"name":"n","ipam":{"type":"host-local","ranges":"10.0.0.0/8"}}`, types.ErrDecodingFailure, "ipam.ranges"},
		"no ipam":        {`{"name":"n"}`, types.ErrInvalidNetworkConfig, "no \"ipam\""},
		"no name":        {`{"ipam":{"type":"host-local","subnet":"10.99.0.0/24"}}`, types.ErrInvalidNetworkConfig, "no \"name\""},
		"no ranges":      {`{"name":"n","ipam":{"type":"host-local"}}`, types.ErrInvalidNetworkConfig, "no ranges"},
		"start outside":  {`{"name":"n","ipam":{"type":"host-local","subnet":"10.99.0.0/24","rangeStart":"10.98.0.5"}}`, types.ErrInvalidNetworkConfig, "not a usable address"},
		"start > end":    {`{"name":"n","ipam":{"type":"host-local","subnet":"10.99.0.0/24","rangeStart":"10.99.0.9","rangeEnd":"10.99.0.5"}}`, types.ErrInvalidNetworkConfig, "after rangeEnd"},
		"overlap":        {`{"name":"n","ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/24"}],[{"subnet":"10.99.0.128/25"}]]}}`, types.ErrInvalidNetworkConfig, "overlaps"},
		"mixed families": {`{"name":"n","ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/24"},{"subnet":"fd99::/120"}]]}}`, types.ErrInvalidNetworkConfig, "mixes IPv4 and IPv6"},
		"tiny subnet":    {`{"name":"n","ipam":{"type":"host-local","subnet":"10.99.0.0/31"}}`, types.ErrInvalidNetworkConfig, "too small"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data))
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Code != tc.code || !strings.Contains(cniErr.Msg, tc.msg) {
				t.Fatalf("Parse: %v; want code %d mentioning %q", err, tc.code, tc.msg)
			}
		})
	}
}

func allocFor(t *testing.T, c *Config, id string) net.IP {
	t.Helper()
	r, err := Allocate(c, id, "eth0")
	if err != nil {
		t.Fatalf("allocate for %s: %v", id, err)
	}
	return r.IPs[0].Address.IP
}

func del(t *testing.T, data []byte, id string) {
	t.Helper()
	if err := Del(&skel.CmdArgs{ContainerID: id, IfName: "eth0", StdinData: data}); err != nil {
		t.Fatal(err)
	}
}

func TestAllocateRoundRobinAndExhaustion(t *testing.T) {
	data := conf(t, `{"type":"host-local","dataDir":"DATADIR","ranges":[[{"subnet":"10.99.3.0/29"}]],"routes":[{"dst":"0.0.0.0/0"}]}`)
	c := mustParse(t, data)
	// .1 is the gateway: never handed out.
	for i, want := range []string{"10.99.3.2", "10.99.3.3", "10.99.3.4"} {
		if got := allocFor(t, c, fmt.Sprintf("c%d", i)); got.String() != want {
			t.Fatalf("allocation %d: %s, want %s", i, got, want)
		}
	}
	r, err := Allocate(c, "c0", "eth0")
	if err != nil || r.IPs[0].Address.IP.String() != "10.99.3.2" {
		t.Fatalf("an attachment asking again gets its address back: %v, %v", r, err)
	}
	if r.IPs[0].Gateway.String() != "10.99.3.1" || len(r.Routes) != 1 || r.IPs[0].Address.Mask.String() != net.CIDRMask(29, 32).String() {
		t.Errorf("result %+v", r)
	}
	del(t, data, "c1")
	// Round robin: the freed .3 is not reused before the rest of the range.
	if got := allocFor(t, c, "c3"); got.String() != "10.99.3.5" {
		t.Fatalf("after a release: %s, want 10.99.3.5", got)
	}
	allocFor(t, c, "c4") // .6
	if got := allocFor(t, c, "c5"); got.String() != "10.99.3.3" {
		t.Fatalf("wrapping around: %s, want the freed 10.99.3.3", got)
	}
	_, err = Allocate(c, "c6", "eth0")
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != plugin.ErrRangeExhausted {
		t.Fatalf("exhausted range: %v, want code %d", err, plugin.ErrRangeExhausted)
	}
	del(t, data, "c4")
	if got := allocFor(t, c, "c6"); got.String() != "10.99.3.6" {
		t.Fatalf("after a release in a full range: %s, want 10.99.3.6", got)
	}
	del(t, data, "never-added") // DEL of an unknown attachment succeeds
}

func TestDualStack(t *testing.T) {
	c := mustParse(t, conf(t, `{"type":"host-local","dataDir":"DATADIR","ranges":[[{"subnet":"10.99.4.0/24"}],[{"subnet":"fd99:4::/64"}]]}`))
	r, err := Allocate(c, "c", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.IPs) != 2 || r.IPs[0].Address.IP.To4() == nil || r.IPs[1].Address.IP.To4() != nil {
		t.Fatalf("want one IPv4 and one IPv6 address: %+v", r.IPs)
	}
}

func TestParallelAdds(t *testing.T) {
	c := mustParse(t, conf(t, `{"type":"host-local","dataDir":"DATADIR","subnet":"10.99.5.0/24"}`))
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := Allocate(c, fmt.Sprintf("p%d", i), "eth0")
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ip := r.IPs[0].Address.IP.String()
			if other, dup := seen[ip]; dup {
				errs <- fmt.Errorf("%s given to both %s and p%d", ip, other, i)
			}
			seen[ip] = fmt.Sprintf("p%d", i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != 50 {
		t.Fatalf("%d distinct addresses, want 50", len(seen))
	}
}

func TestGCReleasesAllButValid(t *testing.T) {
	data := conf(t, `{"type":"host-local","dataDir":"DATADIR","subnet":"10.99.6.0/24"}`)
	c := mustParse(t, data)
	for _, id := range []string{"keep", "leaked1", "leaked2"} {
		allocFor(t, c, id)
	}
	var gc map[string]any
	if err := json.Unmarshal(data, &gc); err != nil {
		t.Fatal(err)
	}
	gc["cni.dev/valid-attachments"] = []map[string]string{{"containerID": "keep", "ifname": "eth0"}}
	gcData, _ := json.Marshal(gc)
	if err := GC(&skel.CmdArgs{StdinData: gcData}); err != nil {
		t.Fatal(err)
	}
	s, err := openStore(c.dir())
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := s.entries()
	s.close()
	if len(entries) != 1 {
		t.Fatalf("after GC: %v, want only keep's address", entries)
	}
	for _, o := range entries {
		if o.id != "keep" {
			t.Fatalf("after GC %v remains", o)
		}
	}
	if err := Check(&skel.CmdArgs{ContainerID: "keep", IfName: "eth0", StdinData: data}); err != nil {
		t.Errorf("CHECK of a kept attachment: %v", err)
	}
	if err := Check(&skel.CmdArgs{ContainerID: "leaked1", IfName: "eth0", StdinData: data}); err == nil {
		t.Error("CHECK of a collected attachment succeeded")
	}
}

func TestStoreLayoutIsTheReferences(t *testing.T) {
	data := conf(t, `{"type":"host-local","dataDir":"DATADIR","subnet":"10.99.7.0/24"}`)
	c := mustParse(t, data)
	ip := allocFor(t, c, "abc")
	content, err := os.ReadFile(filepath.Join(c.dir(), ip.String()))
	if err != nil || string(content) != "abc\r\neth0" {
		t.Fatalf("allocation file: %q, %v", content, err)
	}
	if last, err := os.ReadFile(filepath.Join(c.dir(), "last_reserved_ip.0")); err != nil || string(last) != ip.String() {
		t.Fatalf("last_reserved_ip.0: %q, %v", last, err)
	}
}

func TestStatus(t *testing.T) {
	if err := Status(&skel.CmdArgs{StdinData: conf(t, `{"type":"host-local","dataDir":"DATADIR","subnet":"10.99.8.0/24"}`)}); err != nil {
		t.Fatalf("STATUS with a usable store: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Status(&skel.CmdArgs{StdinData: []byte(`{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","dataDir":"` + file + `","subnet":"10.99.8.0/24"}}`)})
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS with an unusable store: %v, want code 50", err)
	}
}

func TestFailedAddKeepsAddressesHeldBefore(t *testing.T) {
	dir := t.TempDir()
	one := mustParse(t, []byte(`{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","dataDir":"`+dir+`","ranges":[[{"subnet":"10.99.9.0/24"}]]}}`))
	two := mustParse(t, []byte(`{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","dataDir":"`+dir+`","ranges":[[{"subnet":"10.99.9.0/24"}],[{"subnet":"10.99.10.0/30"}]]}}`))
	held := allocFor(t, one, "c")
	allocFor(t, two, "other") // takes the only address of the second set
	if _, err := Allocate(two, "c", "eth0"); err == nil {
		t.Fatal("ADD with an exhausted second range set succeeded")
	}
	if err := Check(&skel.CmdArgs{ContainerID: "c", IfName: "eth0", StdinData: []byte(`{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","dataDir":"` + dir + `","ranges":[[{"subnet":"10.99.9.0/24"}]]}}`)}); err != nil {
		t.Fatalf("the failed ADD released %s, which c held before: %v", held, err)
	}
}
