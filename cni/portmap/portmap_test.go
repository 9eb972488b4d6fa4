package portmap

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// TestPublish publishes a port of one container and reaches it from the
// host through the host's address and 127.0.0.1, from a second container
// and from the container itself through the host's address (hairpin),
// across every version; then DEL removes exactly the rules.
func TestPublish(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t)
			c1, prev, _ := e.attach(t, v, "web")
			c2, _, _ := e.attach(t, v, "client")
			httpd(t, c1, 8080, "hello from web")
			pms := []PortMapping{
				{HostPort: 18080, ContainerPort: 8080, Protocol: "tcp"},
				{HostPort: 15353, ContainerPort: 53, Protocol: "udp"},
				{HostPort: 18081, ContainerPort: 8080, Protocol: "tcp", HostIP: e.hostAddr.String()},
			}
			conf := e.conf(t, v, prev, pms, nil)
			out := e.mustAdd(t, conf, c1.Path(), "web")
			assertSameResult(t, out, prev)
			if got := len(e.rules(t)); got != 11 {
				t.Errorf("%d rules after ADD, want 11 (2 DNAT, 1 hairpin, loopback for 2 of 3 mappings):\n%s", got, e.ruleset(t))
			}
			if err := e.check(t, conf, c1.Path(), "web"); err != nil {
				t.Errorf("CHECK: %v", err)
			}

			for _, tc := range []struct {
				what string
				from func() (string, error)
			}{
				{"host address", func() (string, error) { return fetch(e.host, fmt.Sprintf("%s:18080", e.hostAddr)) }},
				{"127.0.0.1", func() (string, error) { return fetch(e.host, "127.0.0.1:18080") }},
				{"hostIP mapping", func() (string, error) { return fetch(e.host, fmt.Sprintf("%s:18081", e.hostAddr)) }},
				{"second container (hairpin)", func() (string, error) { return fetch(c2, fmt.Sprintf("%s:18080", e.hostAddr)) }},
				{"the container itself (hairpin)", func() (string, error) { return fetch(c1, fmt.Sprintf("%s:18080", e.hostAddr)) }},
			} {
				body, err := tc.from()
				if err != nil || body != "hello from web" {
					t.Errorf("through %s: %q, %v\n%s", tc.what, body, err, e.ruleset(t))
				}
			}
			if _, err := fetch(e.host, "127.0.0.1:18081"); err == nil {
				t.Errorf("a mapping bound to %s answers on 127.0.0.1", e.hostAddr)
			}

			if err := e.del(t, conf, c1.Path(), "web"); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if r := e.rules(t); len(r) != 0 {
				t.Errorf("rules left after DEL: %v", r)
			}
			if err := e.del(t, conf, c1.Path(), "web"); err != nil {
				t.Errorf("DEL again: %v", err)
			}
			if _, err := fetch(e.host, fmt.Sprintf("%s:18080", e.hostAddr)); err == nil {
				t.Error("the port still answers after DEL")
			}
			if err := e.check(t, conf, c1.Path(), "web"); err == nil {
				t.Error("CHECK after DEL succeeded")
			}
		})
	}
}

func assertSameResult(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("ADD printed %q: %v", got, err)
	}
	json.Unmarshal(want, &w)
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("ADD result is not prevResult:\n got %s\nwant %s", got, want)
	}
}

// TestDelWithoutPrevResultOrNetns: DEL finds the rules by the attachment
// alone.
func TestDelWithoutPrevResultOrNetns(t *testing.T) {
	e := newEnv(t)
	c, prev, _ := e.attach(t, "1.0.0", "gone")
	pms := []PortMapping{{HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}}
	e.mustAdd(t, e.conf(t, "1.0.0", prev, pms, nil), c.Path(), "gone")
	if err := e.del(t, e.conf(t, "1.0.0", nil, nil, nil), "/var/run/netns/berth-no-such-ns", "gone"); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if r := e.rules(t); len(r) != 0 {
		t.Errorf("rules left: %v", r)
	}
}

// TestGC removes the rules of attachments that are not valid, only those
// of this network.
func TestGC(t *testing.T) {
	e := newEnv(t)
	pms := []PortMapping{{HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}}
	ca, prevA, _ := e.attach(t, "1.1.0", "keep")
	cb, prevB, _ := e.attach(t, "1.1.0", "stale")
	e.mustAdd(t, e.conf(t, "1.1.0", prevA, pms, nil), ca.Path(), "keep")
	pms[0].HostPort = 18081
	e.mustAdd(t, e.conf(t, "1.1.0", prevB, pms, nil), cb.Path(), "stale")
	// Another network's rules for an attachment of the same name stay.
	other := e.conf(t, "1.1.0", prevB, pms, map[string]any{"name": e.network + "-other"})
	e.mustAdd(t, other, cb.Path(), "stale")
	before := len(e.rules(t))

	gcConf := e.conf(t, "1.1.0", nil, nil, map[string]any{
		"cni.dev/valid-attachments": []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}},
	})
	if err := e.in(func() error { return gc(context.Background(), e.args(gcConf, "", "")) }); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if got := len(e.rules(t)); got != before/3*2 {
		t.Errorf("%d rules after GC, want %d:\n%s", got, before/3*2, e.ruleset(t))
	}
	if err := e.check(t, e.conf(t, "1.1.0", prevA, []PortMapping{{HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}}, nil), ca.Path(), "keep"); err != nil {
		t.Errorf("CHECK of the valid attachment after GC: %v", err)
	}
	if err := e.check(t, e.conf(t, "1.1.0", prevB, pms, nil), cb.Path(), "stale"); err == nil {
		t.Error("CHECK of the stale attachment after GC succeeded")
	}
	if err := e.check(t, other, cb.Path(), "stale"); err != nil {
		t.Errorf("CHECK of the other network's attachment: %v", err)
	}
}

// TestLeak runs ADD/DEL cycles and expects empty chains afterwards.
func TestLeak(t *testing.T) {
	e := newEnv(t)
	c, prev, _ := e.attach(t, "1.0.0", "cycle")
	pms := []PortMapping{{HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 18443, ContainerPort: 443, Protocol: "sctp"}}
	conf := e.conf(t, "1.0.0", prev, pms, nil)
	for i := 0; i < 20; i++ {
		if _, err := e.add(t, conf, c.Path(), "cycle"); err != nil {
			t.Fatalf("ADD %d: %v", i, err)
		}
		if i%2 == 0 { // a repeated ADD replaces, not duplicates
			if _, err := e.add(t, conf, c.Path(), "cycle"); err != nil {
				t.Fatalf("ADD %d again: %v", i, err)
			}
			if got := len(e.rules(t)); got != 8 {
				t.Fatalf("%d rules after a repeated ADD, want 8", got)
			}
		}
		if err := e.del(t, conf, c.Path(), "cycle"); err != nil {
			t.Fatalf("DEL %d: %v", i, err)
		}
	}
	if r := e.rules(t); len(r) != 0 {
		t.Errorf("rules left: %v", r)
	}
	if rs := e.ruleset(t); strings.Contains(rs, "berth-portmap ") && strings.Contains(rs, "comment") {
		t.Errorf("rules left in the ruleset:\n%s", rs)
	}
}

// TestNoMappings passes prevResult through and installs nothing.
func TestNoMappings(t *testing.T) {
	e := newEnv(t)
	c, prev, _ := e.attach(t, "1.1.0", "none")
	out := e.mustAdd(t, e.conf(t, "1.1.0", prev, nil, nil), c.Path(), "none")
	assertSameResult(t, out, prev)
	if r := e.rules(t); len(r) != 0 {
		t.Errorf("rules without mappings: %v", r)
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	conf := e.conf(t, "1.1.0", nil, nil, nil)
	if err := e.in(func() error { return status(context.Background(), e.args(conf, "", "")) }); err != nil {
		t.Errorf("STATUS: %v", err)
	}
}

// TestBadInput: errors with the spec's codes, and nothing installed.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	c, prev, _ := e.attach(t, "1.0.0", "bad")
	good := map[string]any{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}
	withMappings := func(pms ...map[string]any) []byte {
		return e.conf(t, "1.0.0", prev, nil, map[string]any{"runtimeConfig": map[string]any{"portMappings": pms}})
	}
	for _, tc := range []struct {
		name string
		conf []byte
		code uint
	}{
		{"malformed JSON", []byte(`{"cniVersion": "1.0.0", "name": `), types.ErrDecodingFailure},
		{"not an object", []byte(`[1, 2]`), types.ErrDecodingFailure},
		{"hostPort a string", withMappings(map[string]any{"hostPort": "80", "containerPort": 80, "protocol": "tcp"}), types.ErrDecodingFailure},
		{"snat a string", e.conf(t, "1.0.0", prev, nil, map[string]any{"snat": "yes"}), types.ErrDecodingFailure},
		{"hostPort 0", withMappings(good, map[string]any{"hostPort": 0, "containerPort": 80, "protocol": "tcp"}), types.ErrInvalidNetworkConfig},
		{"hostPort 65536", withMappings(good, map[string]any{"hostPort": 65536, "containerPort": 80, "protocol": "tcp"}), types.ErrInvalidNetworkConfig},
		{"containerPort -1", withMappings(good, map[string]any{"hostPort": 8081, "containerPort": -1, "protocol": "udp"}), types.ErrInvalidNetworkConfig},
		{"protocol icmp", withMappings(good, map[string]any{"hostPort": 8081, "containerPort": 80, "protocol": "icmp"}), types.ErrInvalidNetworkConfig},
		{"no protocol", withMappings(good, map[string]any{"hostPort": 8081, "containerPort": 80}), types.ErrInvalidNetworkConfig},
		{"bad hostIP", withMappings(good, map[string]any{"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "10.98.1"}), types.ErrInvalidNetworkConfig},
		{"no prevResult", e.conf(t, "1.0.0", nil, []PortMapping{{HostPort: 1, ContainerPort: 1, Protocol: "tcp"}}, nil), types.ErrInvalidNetworkConfig},
		{"conditionsV4", e.conf(t, "1.0.0", prev, nil, map[string]any{"conditionsV4": []string{"-s", "10.98.0.0/16"}}), types.ErrUnsupportedField},
		{"unknown version", e.conf(t, "9.9.9", prev, nil, nil), types.ErrIncompatibleCNIVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.add(t, tc.conf, c.Path(), "bad")
			if code(err) != tc.code {
				t.Errorf("ADD: %v (code %d), want code %d", err, code(err), tc.code)
			}
			if len(out) != 0 {
				t.Errorf("ADD printed %s", out)
			}
			if r := e.rules(t); len(r) != 0 {
				t.Errorf("rules after a failed ADD: %v", r)
				e.del(t, tc.conf, c.Path(), "bad")
			}
		})
	}
}
