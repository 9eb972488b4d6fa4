package hostlocal

import (
	"bytes"
	"net"
)

// normaliseIP returns the 4-byte form of IPv4 addresses.
func normaliseIP(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip.To16()
}

func cmp(a, b net.IP) int { return bytes.Compare(normaliseIP(a), normaliseIP(b)) }

func next(ip net.IP) net.IP {
	out := append(net.IP(nil), normaliseIP(ip)...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]++
		if out[i] != 0 {
			break
		}
	}
	return out
}

func prev(ip net.IP) net.IP {
	out := append(net.IP(nil), normaliseIP(ip)...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}

func lastAddr(n *net.IPNet) net.IP {
	ip := normaliseIP(n.IP)
	out := make(net.IP, len(ip))
	mask := n.Mask
	if len(mask) != len(ip) {
		mask = mask[len(mask)-len(ip):]
	}
	for i := range ip {
		out[i] = ip[i] | ^mask[i]
	}
	return out
}
