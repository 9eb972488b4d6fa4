package bridge

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/berth-project/berth/cni/internal/nftrule"
)

// IP masquerading (ipMasq) has two backends, chosen by ipMasqBackend:
//
//   - nftables (the default): rules in tables of our own, "ip berth-bridge"
//     and "ip6 berth-bridge", each with one base chain "postrouting" (nat,
//     hook postrouting, priority srcnat). Each of the container's addresses
//     has one rule there,
//
//     ip saddr <address> ip daddr != <its subnets> ip daddr != 224.0.0.0/4 masquerade
//     comment "berth-bridge <8 hex of sha256(network)> <16 hex of sha256(containerID, ifname)> <address>"
//
//     made over netlink in one transaction, in process: no iptables binary
//     to run, no xtables lock.
//   - iptables: a chain per attachment in the nat table (masq_iptables.go),
//     made with coreos/go-iptables, which runs iptables several times.
//
// DEL removes the attachment's nftables rules, and with the iptables
// backend its chain too. GC sweeps both backends.
//
// Closing a netlink socket to nftables right after a transaction waits for
// an RCU grace period (the kernel frees the transaction's objects first:
// 5 to 15 ms), so ADD and DEL commit their rules early, keep the socket
// (nftConn) open while they do the rest of their work, and close it last.

const (
	backendNFTables = "nftables"
	backendIPTables = "iptables"

	masqTable     = "berth-bridge"
	masqChainName = "postrouting"
)

// masqBackend is the backend the configuration asks for.
func (c *NetConf) masqBackend() string {
	if c.IPMasqBackend == "" {
		return backendNFTables
	}
	return c.IPMasqBackend
}

// nftConn is a netlink connection to nftables, opened when first used and
// closed by close, at the end of a command.
type nftConn struct{ conn *nftables.Conn }

func (n *nftConn) get() (*nftables.Conn, error) {
	if n.conn == nil {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			return nil, fmt.Errorf("bridge: ipMasq: nftables: %w", err)
		}
		n.conn = c
	}
	return n.conn, nil
}

func (n *nftConn) close() {
	if n.conn != nil {
		n.conn.CloseLasting()
		n.conn = nil
	}
}

// setupMasq installs the attachment's masquerade rules.
func setupMasq(n *nftConn, c *NetConf, containerID, ifname string, ips []*types100.IPConfig) error {
	if c.masqBackend() == backendIPTables {
		return setupMasqIPTables(c.Name, containerID, ifname, ips)
	}
	return setupMasqNFT(n, c.Name, containerID, ifname, ips)
}

// teardownMasq removes the attachment's masquerade rules. The nftables
// rules go whatever the backend (looking costs two netlink round trips);
// with the iptables backend the chain goes too, and nftables errors are
// not reported then (a host without nftables has no rules there).
func teardownMasq(n *nftConn, c *NetConf, containerID, ifname string) error {
	err := teardownMasqNFT(n, c.Name, containerID, ifname)
	if c.masqBackend() != backendIPTables {
		return err
	}
	return teardownMasqIPTables(c.Name, containerID, ifname)
}

// gcMasq removes the masquerade rules of the network's attachments that
// are not valid, in both backends.
func gcMasq(c *NetConf) error {
	var n nftConn
	defer n.close()
	nftErr := gcMasqNFT(&n, c.Name, c.ValidAttachments)
	if c.masqBackend() == backendIPTables {
		nftErr = nil
	}
	return errors.Join(nftErr, gcMasqIPTables(c.Name, c.ValidAttachments))
}

// masqInstalled reports whether the masquerade rule of the attachment's
// address ip is installed.
func masqInstalled(c *NetConf, containerID, ifname string, ip net.IP) (bool, string, error) {
	if c.masqBackend() == backendIPTables {
		ok, err := masqChainExists(c.Name, containerID, ifname, ip)
		return ok, "chain " + masqChain(c.Name, containerID, ifname), err
	}
	var n nftConn
	defer n.close()
	ok, err := masqRuleExists(&n, c.Name, containerID, ifname, ip)
	return ok, fmt.Sprintf("the nftables rule for %s in table %s", ip, masqTable), err
}

func masqNetworkTag(network string) string {
	return "berth-bridge " + nftrule.Digest(network)[:8] + " "
}

func masqAttachmentTag(network, containerID, ifname string) string {
	return masqNetworkTag(network) + nftrule.Digest(containerID + "\x00" + ifname)[:16] + " "
}

var multicast = map[nftables.TableFamily]net.IPNet{
	nftables.TableFamilyIPv4: {IP: net.IPv4(224, 0, 0, 0).To4(), Mask: net.CIDRMask(4, 32)},
	nftables.TableFamilyIPv6: {IP: net.ParseIP("ff00::"), Mask: net.CIDRMask(8, 128)},
}

// masqRules are the attachment's rules by family: for each address,
// masquerade what it sends outside its family's subnets, but multicast.
func masqRules(tag string, ips []*types100.IPConfig) map[nftables.TableFamily][]*nftables.Rule {
	out := map[nftables.TableFamily][]*nftables.Rule{}
	for _, ipc := range ips {
		fam := nftrule.FamilyOf(ipc.Address.IP)
		e := nftrule.AddrMatch(fam, false, nftrule.HostNet(ipc.Address.IP), expr.CmpOpEq)
		for _, other := range ips {
			if nftrule.FamilyOf(other.Address.IP) == fam {
				subnet := net.IPNet{IP: other.Address.IP.Mask(other.Address.Mask), Mask: other.Address.Mask}
				e = append(e, nftrule.AddrMatch(fam, true, subnet, expr.CmpOpNeq)...)
			}
		}
		e = append(e, nftrule.AddrMatch(fam, true, multicast[fam], expr.CmpOpNeq)...)
		e = append(e, &expr.Masq{})
		out[fam] = append(out[fam], &nftables.Rule{Exprs: e, UserData: nftrule.Comment(tag + ipc.Address.IP.String())})
	}
	return out
}

// setupMasqNFT replaces the attachment's rules (a repeated ADD leaves no
// stale ones) with those for ips, in one transaction.
func setupMasqNFT(n *nftConn, network, containerID, ifname string, ips []*types100.IPConfig) error {
	tag := masqAttachmentTag(network, containerID, ifname)
	conn, err := n.get()
	if err != nil {
		return err
	}
	want := masqRules(tag, ips)
	for _, fam := range nftrule.Families {
		stale, err := nftrule.Find(conn, fam, masqTable, []string{masqChainName}, tag)
		if err != nil {
			return fmt.Errorf("bridge: ipMasq: %w", err)
		}
		if len(stale) == 0 && len(want[fam]) == 0 {
			continue
		}
		t := conn.AddTable(&nftables.Table{Family: fam, Name: masqTable})
		ch := conn.AddChain(&nftables.Chain{Name: masqChainName, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
		for _, r := range stale {
			if err := conn.DelRule(r); err != nil {
				return fmt.Errorf("bridge: ipMasq: %w", err)
			}
		}
		for _, r := range want[fam] {
			r.Table, r.Chain = t, ch
			conn.AddRule(r)
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("bridge: ipMasq: install nftables rules: %w", err)
	}
	return nil
}

// teardownMasqNFT removes the attachment's rules; none is not an error.
func teardownMasqNFT(n *nftConn, network, containerID, ifname string) error {
	tag := masqAttachmentTag(network, containerID, ifname)
	return removeMasqNFT(n, tag, func(string) bool { return true })
}

// gcMasqNFT removes the network's rules of attachments not in valid.
func gcMasqNFT(n *nftConn, network string, valid []types.GCAttachment) error {
	keep := map[string]bool{}
	for _, a := range valid {
		keep[masqAttachmentTag(network, a.ContainerID, a.IfName)] = true
	}
	return removeMasqNFT(n, masqNetworkTag(network), func(comment string) bool {
		i := strings.LastIndexByte(comment, ' ')
		return i < 0 || !keep[comment[:i+1]]
	})
}

// removeMasqNFT deletes the rules whose comment starts with prefix and
// for which drop says so.
func removeMasqNFT(n *nftConn, prefix string, drop func(comment string) bool) error {
	conn, err := n.get()
	if err != nil {
		return err
	}
	if err := nftrule.Remove(conn, masqTable, []string{masqChainName}, prefix, drop); err != nil {
		return fmt.Errorf("bridge: ipMasq: %w", err)
	}
	return nil
}

// masqRuleExists reports whether the rule of the attachment's address ip
// is installed.
func masqRuleExists(n *nftConn, network, containerID, ifname string, ip net.IP) (bool, error) {
	conn, err := n.get()
	if err != nil {
		return false, err
	}
	want := masqAttachmentTag(network, containerID, ifname) + ip.String()
	rules, err := nftrule.Find(conn, nftrule.FamilyOf(ip), masqTable, []string{masqChainName}, want)
	if err != nil {
		return false, err
	}
	for _, r := range rules {
		if nftrule.CommentOf(r) == want {
			return true, nil
		}
	}
	return false, nil
}

// nftablesUsable reports whether nftables can be read.
func nftablesUsable() error {
	conn, err := nftables.New()
	if err == nil {
		_, err = conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	}
	return err
}
