package hostlocal

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/berth-project/berth/cni/plugin"
)

// DefaultDataDir is where allocations are kept unless the config says.
const DefaultDataDir = "/var/lib/cni/networks"

// Range is one contiguous block of addresses in a subnet.
type Range struct {
	Subnet     types.IPNet `json:"subnet"`
	RangeStart net.IP      `json:"rangeStart,omitempty"`
	RangeEnd   net.IP      `json:"rangeEnd,omitempty"`
	Gateway    net.IP      `json:"gateway,omitempty"`
}

// RangeSet is a list of ranges of one family; one address is allocated
// from each range set.
type RangeSet []Range

// IPAM is host-local's part of the network configuration.
type IPAM struct {
	Type    string         `json:"type"`
	Ranges  []RangeSet     `json:"ranges"`
	Routes  []*types.Route `json:"routes,omitempty"`
	DataDir string         `json:"dataDir,omitempty"`
	// The single-range form older configurations use.
	Subnet     types.IPNet `json:"subnet"`
	RangeStart net.IP      `json:"rangeStart,omitempty"`
	RangeEnd   net.IP      `json:"rangeEnd,omitempty"`
	Gateway    net.IP      `json:"gateway,omitempty"`
}

// Config is the network configuration host-local reads.
type Config struct {
	types.PluginConf
	IPAM *IPAM `json:"ipam"`

	// Addresses the runtime asks for: the "ips" capability
	// (runtimeConfig.ips) and args.cni.ips, as addresses or in CIDR
	// notation (the prefix is ignored: the range's subnet counts).
	RuntimeConfig struct {
		IPs []string `json:"ips,omitempty"`
	} `json:"runtimeConfig"`
	Args struct {
		CNI struct {
			IPs []string `json:"ips,omitempty"`
		} `json:"cni"`
	} `json:"args"`

	// requested is the address asked for in each range set (nil: any),
	// set by Request.
	requested []net.IP
}

// Parse decodes and checks a configuration: every range is normalised
// (start, end and gateway filled in) and ranges must not overlap.
func Parse(data []byte) (*Config, error) {
	var c Config
	if err := plugin.Decode(data, &c); err != nil {
		return nil, err
	}
	if c.IPAM == nil {
		return nil, plugin.InvalidConfig("host-local: the configuration has no \"ipam\" section")
	}
	if c.Name == "" {
		return nil, plugin.InvalidConfig("host-local: the network has no \"name\" (allocations are kept per network name)")
	}
	ipam := c.IPAM
	if ipam.Subnet.IP != nil {
		ipam.Ranges = append([]RangeSet{{{Subnet: ipam.Subnet, RangeStart: ipam.RangeStart, RangeEnd: ipam.RangeEnd, Gateway: ipam.Gateway}}}, ipam.Ranges...)
	}
	if len(ipam.Ranges) == 0 {
		return nil, plugin.InvalidConfig("host-local: no ranges: set \"ranges\" (a list of range sets) or \"subnet\"")
	}
	if ipam.DataDir == "" {
		ipam.DataDir = DefaultDataDir
	}
	var all []*Range
	for i := range ipam.Ranges {
		if len(ipam.Ranges[i]) == 0 {
			return nil, plugin.InvalidConfig("host-local: range set %d is empty", i)
		}
		for j := range ipam.Ranges[i] {
			r := &ipam.Ranges[i][j]
			if err := r.normalise(); err != nil {
				return nil, plugin.InvalidConfig("host-local: range set %d, range %d: %v", i, j, err)
			}
			if (r.Subnet.IP.To4() == nil) != (ipam.Ranges[i][0].Subnet.IP.To4() == nil) {
				return nil, plugin.InvalidConfig("host-local: range set %d mixes IPv4 and IPv6", i)
			}
			for _, o := range all {
				if r.overlaps(o) {
					return nil, plugin.InvalidConfig("host-local: range %s-%s overlaps range %s-%s", r.RangeStart, r.RangeEnd, o.RangeStart, o.RangeEnd)
				}
			}
			all = append(all, r)
		}
	}
	return &c, nil
}

// Request resolves the addresses the runtime asks for, from CNI_ARGS
// (cniArgs: "IP=10.1.2.3"), args.cni.ips and runtimeConfig.ips, to the
// range sets that hold them: at most one per range set, none outside every
// range, none a range's gateway (error 7 otherwise).
func (c *Config) Request(cniArgs string) error {
	type ask struct{ ip, from string }
	var asks []ask
	for _, kv := range strings.Split(cniArgs, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == "IP" && v != "" {
			asks = append(asks, ask{v, "CNI_ARGS IP"})
		}
	}
	for _, ip := range c.Args.CNI.IPs {
		asks = append(asks, ask{ip, "args.cni.ips"})
	}
	for _, ip := range c.RuntimeConfig.IPs {
		asks = append(asks, ask{ip, "runtimeConfig.ips"})
	}
	c.requested = make([]net.IP, len(c.IPAM.Ranges))
	for _, a := range asks {
		ip := net.ParseIP(a.ip)
		if ipa, _, err := net.ParseCIDR(a.ip); err == nil {
			ip = ipa
		}
		if ip == nil {
			return plugin.InvalidConfig("host-local: %s %q is not an IP address", a.from, a.ip)
		}
		ip = normaliseIP(ip)
		set := -1
		for i, rs := range c.IPAM.Ranges {
			if r := rs.find(ip); r != nil {
				if ip.Equal(r.Gateway) {
					return plugin.InvalidConfig("host-local: %s %s is the gateway of range %s-%s", a.from, ip, r.RangeStart, r.RangeEnd)
				}
				set = i
			}
		}
		switch {
		case set < 0:
			var all []string
			for _, rs := range c.IPAM.Ranges {
				all = append(all, rs.describe())
			}
			return plugin.InvalidConfig("host-local: %s %s is outside every range (%s)", a.from, ip, strings.Join(all, "; "))
		case c.requested[set] != nil && !c.requested[set].Equal(ip):
			return plugin.InvalidConfig("host-local: %s and %s are both in range set %d (%s): one address is allocated per range set",
				c.requested[set], ip, set, c.IPAM.Ranges[set].describe())
		}
		c.requested[set] = ip
	}
	return nil
}

// dir is where this network's allocations live.
func (c *Config) dir() string { return filepath.Join(c.IPAM.DataDir, c.Name) }

func (r *Range) normalise() error {
	if r.Subnet.IP == nil {
		return fmt.Errorf("no subnet")
	}
	ipnet := net.IPNet(r.Subnet)
	ones, bits := ipnet.Mask.Size()
	if bits-ones < 2 {
		return fmt.Errorf("subnet %s is too small: it must hold at least 2 addresses besides its network and broadcast", &ipnet)
	}
	ipnet.IP = ipnet.IP.Mask(ipnet.Mask)
	if v4 := ipnet.IP.To4(); v4 != nil {
		ipnet.IP = v4
	}
	r.Subnet = types.IPNet(ipnet)
	first := next(ipnet.IP) // the network address itself is never given out
	last := lastAddr(&ipnet)
	if ipnet.IP.To4() != nil {
		last = prev(last) // nor the IPv4 broadcast address
	}
	if r.RangeStart == nil {
		r.RangeStart = first
	}
	if r.RangeEnd == nil {
		r.RangeEnd = last
	}
	r.RangeStart, r.RangeEnd = normaliseIP(r.RangeStart), normaliseIP(r.RangeEnd)
	for _, ip := range []net.IP{r.RangeStart, r.RangeEnd} {
		if !ipnet.Contains(ip) || cmp(ip, first) < 0 || cmp(ip, last) > 0 {
			return fmt.Errorf("%s is not a usable address of subnet %s", ip, &ipnet)
		}
	}
	if cmp(r.RangeStart, r.RangeEnd) > 0 {
		return fmt.Errorf("rangeStart %s is after rangeEnd %s", r.RangeStart, r.RangeEnd)
	}
	if r.Gateway == nil {
		r.Gateway = first
	}
	r.Gateway = normaliseIP(r.Gateway)
	if !ipnet.Contains(r.Gateway) {
		return fmt.Errorf("gateway %s is not in subnet %s", r.Gateway, &ipnet)
	}
	return nil
}

func (r *Range) overlaps(o *Range) bool {
	if (r.RangeStart.To4() == nil) != (o.RangeStart.To4() == nil) {
		return false
	}
	return cmp(r.RangeStart, o.RangeEnd) <= 0 && cmp(o.RangeStart, r.RangeEnd) <= 0
}

func (r *Range) contains(ip net.IP) bool {
	ip = normaliseIP(ip)
	return cmp(ip, r.RangeStart) >= 0 && cmp(ip, r.RangeEnd) <= 0 && (r.RangeStart.To4() == nil) == (ip.To4() == nil)
}

// String shows the normalised range as JSON, for tests and logs.
func (r Range) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}
