package network

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// PortMapping publishes a container port on the host (docker's -p).
type PortMapping struct {
	// HostIP is the host address the port is published on; empty (or
	// 0.0.0.0, ::) for every address.
	HostIP string
	// HostPort is the port on the host; 0 asks Setup for a free one.
	HostPort uint16
	// ContainerPort is the port inside the container.
	ContainerPort uint16
	// Protocol is "tcp" or "udp"; empty means tcp.
	Protocol string
}

// String is the mapping in docker's form, e.g. "127.0.0.1:8080->80/tcp".
func (p PortMapping) String() string {
	host := net.JoinHostPort(p.HostIP, strconv.Itoa(int(p.HostPort)))
	if p.HostIP == "" {
		host = fmt.Sprintf("0.0.0.0:%d", p.HostPort)
	}
	return fmt.Sprintf("%s->%d/%s", host, p.ContainerPort, protocol(p.Protocol))
}

func protocol(p string) string {
	if p == "" {
		return "tcp"
	}
	return p
}

// ParsePublish parses docker's -p values, [hostIP:][hostPort:]containerPort[/protocol]:
// "80", "8080:80", "127.0.0.1:8080:80", "127.0.0.1::80", "[::1]:8080:80",
// "8080:80/udp", and ranges, "8000-8001:80-81" (as long as the container's)
// or "8000-8010:80" (one free port of the host range). A host port that is
// not given gets a free ephemeral port, as with docker: one the kernel hands
// out on binding to port 0 on hostIP, released at once (so another program
// may take it before Setup publishes it). Errors wrap
// errdefs.ErrInvalidArgument and name the bad value.
func ParsePublish(specs []string) ([]PortMapping, error) {
	var out []PortMapping
	for _, spec := range specs {
		m, err := parsePublish(spec)
		if err != nil {
			return nil, fmt.Errorf("invalid publish spec %q: %w", spec, err)
		}
		out = append(out, m...)
	}
	return out, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

func parsePublish(spec string) ([]PortMapping, error) {
	rest, proto := spec, "tcp"
	if i := strings.LastIndexByte(spec, '/'); i >= 0 {
		rest, proto = spec[:i], strings.ToLower(spec[i+1:])
		if proto != "tcp" && proto != "udp" {
			return nil, invalid("protocol %q: want tcp or udp", spec[i+1:])
		}
	}
	var hostIP, hostPorts, ctrPorts string
	if strings.HasPrefix(rest, "[") { // [IPv6]:hostPort:containerPort
		end := strings.Index(rest, "]:")
		if end < 0 {
			return nil, invalid("host address in %q: want [address]:hostPort:containerPort", rest)
		}
		hostIP = rest[1:end]
		var ok bool
		if hostPorts, ctrPorts, ok = strings.Cut(rest[end+2:], ":"); !ok {
			return nil, invalid("%q: want [address]:hostPort:containerPort", rest)
		}
	} else {
		switch parts := strings.Split(rest, ":"); len(parts) {
		case 1:
			ctrPorts = parts[0]
		case 2:
			hostPorts, ctrPorts = parts[0], parts[1]
		case 3:
			hostIP, hostPorts, ctrPorts = parts[0], parts[1], parts[2]
		default:
			return nil, invalid("%q: want [hostIP:][hostPort:]containerPort", rest)
		}
	}
	if hostIP != "" {
		ip := net.ParseIP(hostIP)
		if ip == nil {
			return nil, invalid("host address %q", hostIP)
		}
		hostIP = ip.String()
	}
	cLo, cHi, err := portRange(ctrPorts, false)
	if err != nil {
		return nil, invalid("container port %q", ctrPorts)
	}
	hLo, hHi, err := portRange(hostPorts, true)
	if err != nil {
		return nil, invalid("host port %q", hostPorts)
	}
	n := int(cHi-cLo) + 1
	var out []PortMapping
	switch {
	case hLo == 0: // no host port: one free port each
		for i := range n {
			out = append(out, PortMapping{HostIP: hostIP, ContainerPort: cLo + uint16(i), Protocol: proto})
		}
	case n == 1 && hHi > hLo: // one container port, a host range: a free port of it
		p, err := freePortIn(hostIP, proto, hLo, hHi)
		if err != nil {
			return nil, err
		}
		return []PortMapping{{HostIP: hostIP, HostPort: p, ContainerPort: cLo, Protocol: proto}}, nil
	case int(hHi-hLo)+1 != n:
		return nil, invalid("host ports %q and container ports %q are ranges of different lengths", hostPorts, ctrPorts)
	default:
		for i := range n {
			out = append(out, PortMapping{HostIP: hostIP, HostPort: hLo + uint16(i), ContainerPort: cLo + uint16(i), Protocol: proto})
		}
	}
	if err := resolveFreePorts(out); err != nil {
		return nil, err
	}
	return out, nil
}

// portRange parses "80" or "8000-8010". An empty string (or "0") is 0, 0
// when allowZero, an error otherwise.
func portRange(s string, allowZero bool) (lo, hi uint16, err error) {
	if s == "" && allowZero {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	l, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return 0, 0, err
	}
	h := l
	if isRange {
		if h, err = strconv.ParseUint(b, 10, 16); err != nil {
			return 0, 0, err
		}
	}
	if h < l || (l == 0 && (!allowZero || isRange)) {
		return 0, 0, fmt.Errorf("bad range")
	}
	return uint16(l), uint16(h), nil
}

// resolveFreePorts gives each mapping without a host port a free one.
func resolveFreePorts(ms []PortMapping) error {
	for i := range ms {
		if ms[i].HostPort != 0 {
			continue
		}
		p, err := freePort(ms[i].HostIP, protocol(ms[i].Protocol), 0)
		if err != nil {
			return fmt.Errorf("pick a free host port for %d/%s: %w", ms[i].ContainerPort, protocol(ms[i].Protocol), err)
		}
		ms[i].HostPort = p
	}
	return nil
}

// freePortIn is the first port of lo..hi that can be bound on hostIP.
func freePortIn(hostIP, proto string, lo, hi uint16) (uint16, error) {
	for p := int(lo); p <= int(hi); p++ {
		if got, err := freePort(hostIP, proto, uint16(p)); err == nil {
			return got, nil
		}
	}
	return 0, fmt.Errorf("no free %s port in %d-%d: %w", proto, lo, hi, errdefs.ErrUnavailable)
}

// freePort binds port (0: any) on hostIP, releases it and returns its number.
func freePort(hostIP, proto string, port uint16) (uint16, error) {
	addr := net.JoinHostPort(hostIP, strconv.Itoa(int(port)))
	if proto == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}
