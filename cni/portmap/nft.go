package portmap

import (
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/cni/internal/nftrule"
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

var families = nftrule.Families

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

func networkTag(network string) string { return "berth-portmap " + nftrule.Digest(network)[:8] + " " }

func attachmentTag(network, containerID, ifname string) string {
	return networkTag(network) + nftrule.Digest(containerID + "\x00" + ifname)[:16] + " "
}

// rule is one rule to install, before it is bound to a table.
type rule struct {
	chain chainSpec
	key   string // what the rule does, in words; its digest ends the comment
	exprs []expr.Any
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
			fam := nftrule.FamilyOf(a.IP)
			if m.hostIP != nil && nftrule.FamilyOf(m.hostIP) != fam {
				continue
			}
			natFamily := uint32(unix.NFPROTO_IPV4)
			if fam == nftables.TableFamilyIPv6 {
				natFamily = unix.NFPROTO_IPV6
			}
			// DNAT hostIP:hostPort (any local address without hostIP).
			var dst []expr.Any
			if m.hostIP != nil {
				dst = nftrule.AddrMatch(fam, true, nftrule.HostNet(m.hostIP), expr.CmpOpEq)
			} else {
				dst = []expr.Any{
					&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
				}
			}
			dnat := append(append(dst, portMatch(m.proto, m.hostPort)...),
				&expr.Immediate{Register: 1, Data: nftrule.IPBytes(a.IP)},
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
			to := append(nftrule.AddrMatch(fam, true, nftrule.HostNet(a.IP), expr.CmpOpEq), portMatch(m.proto, m.containerPort)...)
			hairpin := append(append(append(nftrule.AddrMatch(fam, false, subnet, expr.CmpOpEq), to...), ctDNATed()...), &expr.Masq{})
			out[fam] = append(out[fam], rule{postrouting, "hairpin " + key, hairpin})

			// Loopback: connections from 127.0.0.0/8 leave with the
			// bridge's address (IPv6 cannot route ::1 out at all).
			if snat && fam == nftables.TableFamilyIPv4 && (m.hostIP == nil || m.hostIP.IsLoopback()) {
				lo := append(append(append(nftrule.AddrMatch(fam, false, net.IPNet{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}, expr.CmpOpEq), to...), ctDNATed()...), &expr.Masq{})
				out[fam] = append(out[fam], rule{postrouting, "loopback " + key, lo})
			}
		}
	}
	return out
}

func comment(tag, key string) []byte { return nftrule.Comment(tag + nftrule.Digest(key)[:12]) }

// newConn opens one netlink connection for a whole command: a command
// closes it once, at its end. (Closing a connection to nftables waits for
// an RCU grace period when a transaction was committed shortly before, by
// this command or another, so every short-lived connection can cost
// milliseconds.)
func newConn() (*nftables.Conn, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("portmap: nftables: %w", err)
	}
	return c, nil
}

var chainNames = []string{prerouting.name, output.name, postrouting.name}

// ourRules lists the rules of our table of a family whose comment starts
// with prefix.
func ourRules(c *nftables.Conn, fam nftables.TableFamily, prefix string) ([]*nftables.Rule, error) {
	rs, err := nftrule.Find(c, fam, tableName, chainNames, prefix)
	if err != nil {
		return nil, fmt.Errorf("portmap: %w", err)
	}
	return rs, nil
}

// install replaces the attachment's rules with want, in one transaction
// for both families.
func install(c *nftables.Conn, tag string, want map[nftables.TableFamily][]rule) error {
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
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("portmap: install nftables rules: %w", err)
	}
	return nil
}

// removeIf deletes, in one transaction, the rules whose comment starts
// with prefix and for which drop (if not nil) is true.
func removeIf(c *nftables.Conn, prefix string, drop func(comment string) bool) error {
	if err := nftrule.Remove(c, tableName, chainNames, prefix, drop); err != nil {
		return fmt.Errorf("portmap: %w", err)
	}
	return nil
}

func remove(c *nftables.Conn, tag string) error { return removeIf(c, tag, nil) }

// missing lists the keys of want that have no rule installed.
func missing(c *nftables.Conn, tag string, want map[nftables.TableFamily][]rule) ([]string, error) {
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
			have[r.Chain.Name+" "+nftrule.CommentOf(r)] = true
		}
		for _, r := range want[fam] {
			if !have[r.chain.name+" "+string(tag+nftrule.Digest(r.key)[:12])] {
				out = append(out, r.chain.name+": "+r.key)
			}
		}
	}
	return out, nil
}
