// Package nftrule is what berth's CNI plugins share to keep rules in
// nftables tables of their own (google/nftables, over netlink, in process:
// no iptables binary to run, no xtables lock): address matches, the
// comment that tags each rule with its owner, and finding an owner's rules
// again with as few netlink round trips as it takes.
package nftrule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Families are the table families the plugins keep rules in.
var Families = []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}

// Digest is the hex SHA-256 of s; tags use prefixes of it.
func Digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// FamilyOf is the table family of ip's version.
func FamilyOf(ip net.IP) nftables.TableFamily {
	if ip.To4() != nil {
		return nftables.TableFamilyIPv4
	}
	return nftables.TableFamilyIPv6
}

// IPBytes is ip in 4 bytes (IPv4) or 16 (IPv6), as packets carry it.
func IPBytes(ip net.IP) []byte {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip.To16()
}

// HostNet is ip as a network of one address.
func HostNet(ip net.IP) net.IPNet {
	b := len(IPBytes(ip)) * 8
	return net.IPNet{IP: ip, Mask: net.CIDRMask(b, b)}
}

// AddrMatch compares the packet's source (or destination, when dst)
// address with the network n, in a table of family fam: op is
// expr.CmpOpEq for "in n", expr.CmpOpNeq for "not in n".
func AddrMatch(fam nftables.TableFamily, dst bool, n net.IPNet, op expr.CmpOp) []expr.Any {
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
	addr := IPBytes(n.IP)
	l := uint32(len(addr))
	e := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l}}
	ones, bits := n.Mask.Size()
	if len(n.Mask) != len(addr) {
		n.Mask = net.CIDRMask(ones, len(addr)*8)
		bits = len(addr) * 8
	}
	if ones != bits {
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: l, Mask: []byte(n.Mask), Xor: make([]byte, l)})
		addr = IPBytes(n.IP.Mask(n.Mask))
	}
	return append(e, &expr.Cmp{Op: op, Register: 1, Data: addr})
}

// Comment is a rule's user data holding the comment s.
func Comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

// CommentOf is a rule's comment ("" when it has none).
func CommentOf(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

// Find lists the rules of the named chains of table (in family fam) whose
// comment starts with prefix. A table that does not exist holds none. It
// costs one netlink round trip for the table and one per chain.
func Find(c *nftables.Conn, fam nftables.TableFamily, table string, chains []string, prefix string) ([]*nftables.Rule, error) {
	t, err := c.ListTableOfFamily(table, fam)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up nftables table %s: %w", table, err)
	}
	var out []*nftables.Rule
	for _, name := range chains {
		rs, err := c.GetRules(t, &nftables.Chain{Name: name, Table: t})
		if err != nil {
			// The chain may have been deleted by hand: then it holds
			// nothing (google/nftables does not keep the errno here).
			if ok, lerr := chainExists(c, t, name); lerr == nil && !ok {
				continue
			}
			return nil, fmt.Errorf("list the rules of nftables chain %s %s: %w", table, name, err)
		}
		for _, r := range rs {
			if strings.HasPrefix(CommentOf(r), prefix) {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func chainExists(c *nftables.Conn, t *nftables.Table, name string) (bool, error) {
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return false, err
	}
	for _, ch := range chains {
		if ch.Table.Name == t.Name && ch.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// Remove deletes, in one transaction for both families, the rules of the
// named chains of table whose comment starts with prefix and for which
// drop (nil: every one) is true. When a concurrent command deleted one of
// them first the transaction fails; then it looks again.
func Remove(c *nftables.Conn, table string, chains []string, prefix string, drop func(comment string) bool) error {
	for attempt := 0; ; attempt++ {
		n := 0
		for _, fam := range Families {
			rules, err := Find(c, fam, table, chains, prefix)
			if err != nil {
				return err
			}
			for _, r := range rules {
				if drop != nil && !drop(CommentOf(r)) {
					continue
				}
				if err := c.DelRule(r); err != nil {
					return err
				}
				n++
			}
		}
		if n == 0 {
			return nil
		}
		err := c.Flush()
		if err == nil {
			return nil
		}
		if attempt == 2 {
			return fmt.Errorf("delete nftables rules from table %s: %w", table, err)
		}
	}
}
