package bridge

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/coreos/go-iptables/iptables"

	"github.com/berth-project/berth/cni/internal/nftrule"
)

// The iptables backend of ipMasq ("ipMasqBackend": "iptables") lives in
// the nat table, in one chain per attachment named after the network and
// the attachment:
//
//	BERTH-<8 hex of sha256(network)>-<13 hex of sha256(containerID, ifname)>
//
// (28 characters, iptables' limit). The chain ACCEPTs (leaves alone)
// traffic to the attachment's own subnets and MASQUERADEs the rest but
// multicast; POSTROUTING jumps to it for each of the container's addresses.
// Every rule carries a comment naming the network, container and interface.
// DEL removes the chain and its jumps; GC removes the chains of the
// network whose attachments are not in cni.dev/valid-attachments.

const (
	natTable    = "nat"
	postrouting = "POSTROUTING"
	chainPrefix = "BERTH-"
)

// networkChainPrefix is what every masquerade chain of a network starts with.
func networkChainPrefix(network string) string {
	return chainPrefix + nftrule.Digest(network)[:8] + "-"
}

// masqChain is the masquerade chain of one attachment.
func masqChain(network, containerID, ifname string) string {
	return networkChainPrefix(network) + nftrule.Digest(containerID + "\x00" + ifname)[:13]
}

func masqComment(network, containerID, ifname string) string {
	c := fmt.Sprintf("berth bridge: name=%s id=%s if=%s", network, containerID, ifname)
	c = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < ' ' || r > '~' {
			return '_'
		}
		return r
	}, c)
	if len(c) > 255 {
		c = c[:255]
	}
	return c
}

var protocols = []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6}

// setupMasqIPTables installs the attachment's chain and jumps for its
// addresses.
func setupMasqIPTables(network, containerID, ifname string, ips []*types100.IPConfig) error {
	chain := masqChain(network, containerID, ifname)
	comment := []string{"-m", "comment", "--comment", masqComment(network, containerID, ifname)}
	for _, proto := range protocols {
		v4 := proto == iptables.ProtocolIPv4
		var mine []*types100.IPConfig
		for _, ipc := range ips {
			if isV4(ipc.Address.IP) == v4 {
				mine = append(mine, ipc)
			}
		}
		if len(mine) == 0 {
			continue
		}
		ipt, err := iptables.NewWithProtocol(proto)
		if err != nil {
			return fmt.Errorf("bridge: ipMasq needs %s: %w", command(proto), err)
		}
		// ClearChain creates the chain, or empties one a failed ADD left.
		if err := ipt.ClearChain(natTable, chain); err != nil {
			return fmt.Errorf("bridge: ipMasq: create chain %s: %w", chain, err)
		}
		multicast := "ff00::/8"
		if v4 {
			multicast = "224.0.0.0/4"
		}
		var rules [][]string
		for _, ipc := range mine {
			subnet := net.IPNet{IP: ipc.Address.IP.Mask(ipc.Address.Mask), Mask: ipc.Address.Mask}
			rules = append(rules, append([]string{"-d", subnet.String()}, append(comment, "-j", "ACCEPT")...))
		}
		rules = append(rules, append([]string{"!", "-d", multicast}, append(comment, "-j", "MASQUERADE")...))
		for _, r := range rules {
			if err := ipt.Append(natTable, chain, r...); err != nil {
				return fmt.Errorf("bridge: ipMasq: add rule to %s: %w", chain, err)
			}
		}
		for _, ipc := range mine {
			_, bits := ipc.Address.Mask.Size()
			host := net.IPNet{IP: ipc.Address.IP, Mask: net.CIDRMask(bits, bits)}
			r := append([]string{"-s", host.String()}, append(comment, "-j", chain)...)
			if err := ipt.AppendUnique(natTable, postrouting, r...); err != nil {
				return fmt.Errorf("bridge: ipMasq: add jump to %s: %w", chain, err)
			}
		}
	}
	return nil
}

func command(p iptables.Protocol) string {
	if p == iptables.ProtocolIPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// teardownMasqIPTables removes the attachment's chain and the jumps to it,
// in both families; what is already gone, or an iptables that is not
// installed (so nothing can have been set up with it), is not an error.
func teardownMasqIPTables(network, containerID, ifname string) error {
	chain := masqChain(network, containerID, ifname)
	var errs []error
	for _, proto := range protocols {
		ipt, err := iptables.NewWithProtocol(proto)
		if err != nil {
			continue
		}
		if err := removeChain(ipt, chain); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// gcMasqIPTables removes the network's chains whose attachments are not
// valid; without iptables there is nothing to collect.
func gcMasqIPTables(network string, valid []types.GCAttachment) error {
	keep := map[string]bool{}
	for _, a := range valid {
		keep[masqChain(network, a.ContainerID, a.IfName)] = true
	}
	prefix := networkChainPrefix(network)
	var errs []error
	for _, proto := range protocols {
		ipt, err := iptables.NewWithProtocol(proto)
		if err != nil {
			continue
		}
		chains, err := ipt.ListChains(natTable)
		if err != nil {
			errs = append(errs, fmt.Errorf("bridge: list %s nat chains: %w", command(proto), err))
			continue
		}
		for _, ch := range chains {
			if strings.HasPrefix(ch, prefix) && !keep[ch] {
				if err := removeChain(ipt, ch); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// masqChainExists reports whether the attachment's chain is installed for
// the family of ip.
func masqChainExists(network, containerID, ifname string, ip net.IP) (bool, error) {
	proto := iptables.ProtocolIPv6
	if isV4(ip) {
		proto = iptables.ProtocolIPv4
	}
	ipt, err := iptables.NewWithProtocol(proto)
	if err != nil {
		return false, err
	}
	return ipt.ChainExists(natTable, masqChain(network, containerID, ifname))
}

func removeChain(ipt *iptables.IPTables, chain string) error {
	exists, err := ipt.ChainExists(natTable, chain)
	if err != nil {
		return fmt.Errorf("bridge: ipMasq: look for chain %s: %w", chain, err)
	}
	if !exists {
		return nil
	}
	rules, err := ipt.List(natTable, postrouting)
	if err != nil {
		return fmt.Errorf("bridge: ipMasq: list %s: %w", postrouting, err)
	}
	for _, rule := range rules {
		args := splitRule(rule)
		if len(args) < 4 || args[0] != "-A" || args[len(args)-2] != "-j" || args[len(args)-1] != chain {
			continue
		}
		if err := ipt.Delete(natTable, postrouting, args[2:]...); err != nil && !isNotExist(err) {
			return fmt.Errorf("bridge: ipMasq: delete jump to %s: %w", chain, err)
		}
	}
	if err := ipt.ClearAndDeleteChain(natTable, chain); err != nil && !isNotExist(err) {
		return fmt.Errorf("bridge: ipMasq: delete chain %s: %w", chain, err)
	}
	return nil
}

func isNotExist(err error) bool {
	var e *iptables.Error
	return errors.As(err, &e) && e.IsNotExist()
}

// splitRule splits a rule as iptables -S prints it into its arguments:
// fields separated by spaces, where a double-quoted field may hold spaces
// and backslash-escaped quotes.
func splitRule(rule string) []string {
	var (
		args   []string
		cur    strings.Builder
		quoted bool
		inArg  bool
	)
	for i := 0; i < len(rule); i++ {
		ch := rule[i]
		switch {
		case quoted && ch == '\\' && i+1 < len(rule):
			i++
			cur.WriteByte(rule[i])
		case ch == '"':
			quoted = !quoted
			inArg = true
		case ch == ' ' && !quoted:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(ch)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}
