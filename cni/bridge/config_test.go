package bridge

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParseConfDefaults(t *testing.T) {
	c, err := loadConf([]byte(`{"cniVersion":"1.0.0","name":"n","type":"bridge","isDefaultGateway":true,"ipam":{"type":"host-local"}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Bridge != DefaultBridge || !c.IsGateway || c.mac != nil {
		t.Errorf("bridge %q isGateway %v mac %v, want %q, true (implied by isDefaultGateway), none", c.Bridge, c.IsGateway, c.mac, DefaultBridge)
	}
}

func TestParseConfLayer2IgnoresGateway(t *testing.T) {
	c, err := loadConf([]byte(`{"cniVersion":"1.0.0","name":"n","type":"bridge","isDefaultGateway":true,"ipMasq":true,"ipam":{}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.IsGateway || c.IsDefaultGateway || c.IPMasq {
		t.Errorf("without ipam: isGateway %v isDefaultGateway %v ipMasq %v, want all ignored (as the reference does)", c.IsGateway, c.IsDefaultGateway, c.IPMasq)
	}
}

func TestParseConfMAC(t *testing.T) {
	for _, tc := range []struct {
		conf, cniArgs, want string
	}{
		{`"mac":"0a:58:00:00:00:01"`, "", "0a:58:00:00:00:01"},
		{`"mac":"0a:58:00:00:00:01"`, "K8S_POD_NAME=x;MAC=0a:58:00:00:00:02", "0a:58:00:00:00:02"},
		{`"args":{"cni":{"mac":"0a:58:00:00:00:03"}}`, "MAC=0a:58:00:00:00:02", "0a:58:00:00:00:03"},
		{`"args":{"cni":{"mac":"0a:58:00:00:00:03"}},"runtimeConfig":{"mac":"0a:58:00:00:00:04"}`, "", "0a:58:00:00:00:04"},
	} {
		c, err := loadConf([]byte(`{"cniVersion":"1.0.0","name":"n","type":"bridge",`+tc.conf+`}`), tc.cniArgs)
		if err != nil {
			t.Errorf("%s / %q: %v", tc.conf, tc.cniArgs, err)
			continue
		}
		if c.mac.String() != tc.want {
			t.Errorf("%s / %q: mac %s, want %s", tc.conf, tc.cniArgs, c.mac, tc.want)
		}
	}
}

func TestParseConfErrors(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"n","type":"bridge"`
	for _, tc := range []struct {
		name, conf string
		code       uint
		msg        string
	}{
		{"malformed JSON", `{` + base, types.ErrDecodingFailure, "not valid JSON"},
		{"wrong type", `{` + base + `,"mtu":"big"}`, types.ErrDecodingFailure, "mtu"},
		{"wrong type bool", `{` + base + `,"isGateway":"yes"}`, types.ErrDecodingFailure, "isGateway"},
		{"unknown version", `{"cniVersion":"9.9.9","name":"n","type":"bridge"}`, types.ErrIncompatibleCNIVersion, "9.9.9"},
		{"bridge name too long", `{` + base + `,"bridge":"a-very-long-bridge-name"}`, types.ErrInvalidNetworkConfig, "bridge name"},
		{"bridge name with slash", `{` + base + `,"bridge":"br/0"}`, types.ErrInvalidNetworkConfig, "bridge name"},
		{"mtu out of range", `{` + base + `,"mtu":-1}`, types.ErrInvalidNetworkConfig, "mtu"},
		{"hairpin and promisc", `{` + base + `,"hairpinMode":true,"promiscMode":true}`, types.ErrInvalidNetworkConfig, "hairpinMode"},
		{"disabled interface with ipam", `{` + base + `,"disableContainerInterface":true,"ipam":{"type":"host-local"}}`, types.ErrInvalidNetworkConfig, "disableContainerInterface"},
		{"vlan", `{` + base + `,"vlan":10}`, types.ErrUnsupportedField, "not supported"},
		{"vlanTrunk", `{` + base + `,"vlanTrunk":[{"id":10}]}`, types.ErrUnsupportedField, "not supported"},
		{"macspoofchk", `{` + base + `,"macspoofchk":true}`, types.ErrUnsupportedField, "not supported"},
		{"unknown masquerade backend", `{` + base + `,"ipMasqBackend":"pf"}`, types.ErrInvalidNetworkConfig, "ipMasqBackend"},
		{"bad mac", `{` + base + `,"mac":"zz"}`, types.ErrInvalidNetworkConfig, "MAC"},
		{"multicast mac", `{` + base + `,"runtimeConfig":{"mac":"01:00:5e:00:00:01"}}`, types.ErrInvalidNetworkConfig, "multicast"},
		{"bad prevResult", `{` + base + `,"prevResult":{"ips":"none"}}`, types.ErrDecodingFailure, "prevResult"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConf([]byte(tc.conf), "")
			if code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("loadConf(%s) = %v, want code %d mentioning %q", tc.conf, err, tc.code, tc.msg)
			}
		})
	}
}

func TestMasqChainNames(t *testing.T) {
	a := masqChain("mynet", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "eth0")
	if len(a) > 28 {
		t.Errorf("chain %s is %d characters; iptables allows 28", a, len(a))
	}
	if !strings.HasPrefix(a, networkChainPrefix("mynet")) || strings.HasPrefix(a, networkChainPrefix("othernet")) {
		t.Errorf("chain %s does not start with its network's prefix", a)
	}
	if a == masqChain("mynet", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "eth1") {
		t.Error("two attachments share a chain")
	}
}

func TestSplitRule(t *testing.T) {
	got := splitRule(`-A POSTROUTING -s 10.99.1.2/32 -m comment --comment "berth bridge: name=\"x\" id=y" -j BERTH-1`)
	want := []string{"-A", "POSTROUTING", "-s", "10.99.1.2/32", "-m", "comment", "--comment", `berth bridge: name="x" id=y`, "-j", "BERTH-1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitRule = %q, want %q", got, want)
	}
}
