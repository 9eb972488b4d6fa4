package portmap

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The rules live in two tables of our own, "ip berth-portmap" and
// "ip6 berth-portmap", each with three NAT base chains:
//
//	prerouting  (hook prerouting, priority dstnat): DNAT of traffic from elsewhere
//	output      (hook output, priority dstnat):     DNAT of traffic from the host itself
//	postrouting (hook postrouting, priority srcnat): masquerade for hairpin and loopback
//
// Every rule carries a comment
//
//	berth-portmap <8 hex of sha256(network)> <16 hex of sha256(containerID, ifname)> <12 hex of the rule>
//
// so that DEL and GC find exactly an attachment's rules, and CHECK finds
// each expected rule by its last field. The tables and chains stay when
// their last rule goes: removing them would race a concurrent ADD.

const tableName = "berth-portmap"

var families = []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}

type chainSpec struct {
	name     string
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
}

var (
	prerouting  = chainSpec{"prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest}
	output      = chainSpec{"output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest}
	postrouting = chainSpec{"postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource}
	chainSpecs  = []chainSpec{prerouting, output, postrouting}
)

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func networkTag(network string) string { return "berth-portmap " + digest(network)[:8] + " " }

func attachmentTag(network, containerID, ifname string) string {
	return networkTag(network) + digest(containerID + "\x00" + ifname)[:16] + " "
}

// rule is one rule to install, before it is bound to a table.
type rule struct {
	chain chainSpec
	key   string // what the rule does, in words; its digest ends the comment
	exprs []expr.Any
}

func familyOf(ip net.IP) nftables.TableFamily {
	if ip.To4() != nil {
		return nftables.TableFamilyIPv4
	}
	return nftables.TableFamilyIPv6
}

func ipBytes(ip net.IP) []byte {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip.To16()
}

// addrMatch compares the source or destination address with ip/mask.
func addrMatch(fam nftables.TableFamily, dst bool, n net.IPNet) []expr.Any {
	var off uint32
	switch {
	case fam == nftables.TableFamilyIPv4 && dst:
		off = 16
	case fam == nftables.TableFamilyIPv4:
		off = 12
	case dst:
		off = 24
	default:
		off = 8
	}
	addr := ipBytes(n.IP)
	l := uint32(len(addr))
	e := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l}}
	ones, bits := n.Mask.Size()
	if ones != bits {
		mask := net.IP(n.Mask)
		if len(n.Mask) != len(addr) {
			mask = net.IP(net.CIDRMask(ones, len(addr)*8))
		}
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: l, Mask: []byte(mask), Xor: make([]byte, l)})
		addr = ipBytes(n.IP.Mask(n.Mask))
	}
	return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr})
}

func hostNet(ip net.IP) net.IPNet {
	b := len(ipBytes(ip)) * 8
	return net.IPNet{IP: ip, Mask: net.CIDRMask(b, b)}
}

func portMatch(proto string, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNumbers[proto]}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// ctDNATed matches connections whose destination was translated.
func ctDNATed() []expr.Any {
	zero := []byte{0, 0, 0, 0}
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(0x20 /* IPS_DST_NAT */), Xor: zero},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: zero},
	}
}

// rules are the rules of an attachment, by family.
func rules(ms []mapping, addrs []net.IPNet, snat bool) map[nftables.TableFamily][]rule {
	out := map[nftables.TableFamily][]rule{}
	for _, m := range ms {
		for _, a := range addrs {
			fam := familyOf(a.IP)
			if m.hostIP != nil && familyOf(m.hostIP) != fam {
				continue
			}
			natFamily := uint32(unix.NFPROTO_IPV4)
			if fam == nftables.TableFamilyIPv6 {
				natFamily = unix.NFPROTO_IPV6
			}
			// DNAT hostIP:hostPort (any local address without hostIP).
			var dst []expr.Any
			if m.hostIP != nil {
				dst = addrMatch(fam, true, hostNet(m.hostIP))
			} else {
				dst = []expr.Any{
					&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
				}
			}
			dnat := append(append(dst, portMatch(m.proto, m.hostPort)...),
				&expr.Immediate{Register: 1, Data: ipBytes(a.IP)},
				&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(m.containerPort)},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: natFamily, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
			)
			key := fmt.Sprintf("%s %s:%d > %s:%d", m.proto, m.hostIP, m.hostPort, a.IP, m.containerPort)
			out[fam] = append(out[fam],
				rule{prerouting, "dnat " + key, dnat},
				rule{output, "dnat " + key, dnat})

			// Hairpin: a container of the subnet reaching this one through
			// a host address must see the reply come from the host.
			subnet := net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask}
			to := append(addrMatch(fam, true, hostNet(a.IP)), portMatch(m.proto, m.containerPort)...)
			hairpin := append(append(append(addrMatch(fam, false, subnet), to...), ctDNATed()...), &expr.Masq{})
			out[fam] = append(out[fam], rule{postrouting, "hairpin " + key, hairpin})

			// Loopback: connections from 127.0.0.0/8 leave with the
			// bridge's address (IPv6 cannot route ::1 out at all).
			if snat && fam == nftables.TableFamilyIPv4 && (m.hostIP == nil || m.hostIP.IsLoopback()) {
				lo := append(append(append(addrMatch(fam, false, net.IPNet{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}), to...), ctDNATed()...), &expr.Masq{})
				out[fam] = append(out[fam], rule{postrouting, "loopback " + key, lo})
			}
		}
	}
	return out
}

func comment(tag, key string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, tag+digest(key)[:12])
}

func ruleComment(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

func newConn() (*nftables.Conn, error) { return nftables.New() }

// table returns our table of a family, or nil when there is none.
func table(c *nftables.Conn, fam nftables.TableFamily) (*nftables.Table, error) {
	ts, err := c.ListTablesOfFamily(fam)
	if err != nil {
		return nil, fmt.Errorf("portmap: list nftables tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == tableName {
			return t, nil
		}
	}
	return nil, nil
}

// ourRules lists the rules of our table of a family whose comment starts
// with prefix and for which keep (if not nil) is false.
func ourRules(c *nftables.Conn, fam nftables.TableFamily, prefix string) ([]*nftables.Rule, error) {
	t, err := table(c, fam)
	if err != nil || t == nil {
		return nil, err
	}
	chains, err := c.ListChainsOfTableFamily(fam)
	if err != nil {
		return nil, fmt.Errorf("portmap: list nftables chains: %w", err)
	}
	var out []*nftables.Rule
	for _, ch := range chains {
		if ch.Table.Name != tableName {
			continue
		}
		rs, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("portmap: list rules of chain %s: %w", ch.Name, err)
		}
		for _, r := range rs {
			if strings.HasPrefix(ruleComment(r), prefix) {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// install replaces the attachment's rules with want, one transaction per
// family; when a family fails, the rules of the others are removed again.
func install(tag string, want map[nftables.TableFamily][]rule) error {
	c, err := newConn()
	if err != nil {
		return fmt.Errorf("portmap: nftables: %w", err)
	}
	for _, fam := range families {
		old, err := ourRules(c, fam, tag)
		if err != nil {
			return err
		}
		if len(old) == 0 && len(want[fam]) == 0 {
			continue
		}
		t := c.AddTable(&nftables.Table{Family: fam, Name: tableName})
		chains := map[string]*nftables.Chain{}
		for _, cs := range chainSpecs {
			chains[cs.name] = c.AddChain(&nftables.Chain{Name: cs.name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: cs.hook, Priority: cs.priority})
		}
		for _, r := range old {
			if err := c.DelRule(r); err != nil {
				return err
			}
		}
		for _, r := range want[fam] {
			c.AddRule(&nftables.Rule{Table: t, Chain: chains[r.chain.name], Exprs: r.exprs, UserData: comment(tag, r.key)})
		}
		if err := c.Flush(); err != nil {
			err = fmt.Errorf("portmap: install nftables rules: %w", err)
			if rerr := remove(tag); rerr != nil {
				err = fmt.Errorf("%w (and removing the others: %v)", err, rerr)
			}
			return err
		}
	}
	return nil
}

// remove deletes the rules whose comment starts with prefix and whose
// attachment keep (if not nil) does not name.
func removeIf(prefix string, drop func(comment string) bool) error {
	c, err := newConn()
	if err != nil {
		return fmt.Errorf("portmap: nftables: %w", err)
	}
	for _, fam := range families {
		rs, err := ourRules(c, fam, prefix)
		if err != nil {
			return err
		}
		n := 0
		for _, r := range rs {
			if drop == nil || drop(ruleComment(r)) {
				if err := c.DelRule(r); err != nil {
					return err
				}
				n++
			}
		}
		if n == 0 {
			continue
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("portmap: delete nftables rules: %w", err)
		}
	}
	return nil
}

func remove(tag string) error { return removeIf(tag, nil) }

// missing lists the keys of want that have no rule installed.
func missing(tag string, want map[nftables.TableFamily][]rule) ([]string, error) {
	c, err := newConn()
	if err != nil {
		return nil, fmt.Errorf("portmap: nftables: %w", err)
	}
	var out []string
	for _, fam := range families {
		if len(want[fam]) == 0 {
			continue
		}
		rs, err := ourRules(c, fam, tag)
		if err != nil {
			return nil, err
		}
		have := map[string]bool{}
		for _, r := range rs {
			have[r.Chain.Name+" "+ruleComment(r)] = true
		}
		for _, r := range want[fam] {
			if !have[r.chain.name+" "+string(tag+digest(r.key)[:12])] {
				out = append(out, r.chain.name+": "+r.key)
			}
		}
	}
	return out, nil
}
