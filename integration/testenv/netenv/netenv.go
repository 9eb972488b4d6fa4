// Package netenv is the network setting that the tests of berth's CNI
// plugins share: throwaway network namespaces, one of which plays the host
// (the plugins run in it, so the machine's own links, sysctls and netfilter
// rules are never touched); a web server in a namespace and a client that
// fetches from it; and views of what plugins leave behind (veths, host-local
// allocations, iptables NAT rules, nftables rules). Everything a test makes
// here is removed when it ends, also when it fails; traffic never leaves
// the namespaces.
package netenv

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/integration/testenv"
)

// Host is a throwaway network namespace playing the host, with loopback
// up, and optionally an address of its own on a stand-in uplink.
type Host struct {
	ns.NetNS
	// Addr is the host's address on its uplink; nil without one.
	Addr net.IP
}

// NewHost makes a host namespace. With uplink (an address with its prefix,
// e.g. 10.98.3.1/24) it also has a link "uplink" holding that address: a
// bridge without ports, standing in for the host's outward interface (the
// dummy module may be missing). When the test ends, the links made in it
// are deleted (so a leak shows while the test still runs) and the
// namespace goes.
func NewHost(t testing.TB, uplink *net.IPNet) *Host {
	t.Helper()
	h := &Host{NetNS: testenv.NetNS(t)}
	t.Cleanup(func() {
		h.In(func() error {
			links, _ := netlink.LinkList()
			for _, l := range links {
				if l.Attrs().Name != "lo" {
					netlink.LinkDel(l)
				}
			}
			return nil
		})
	})
	err := h.In(func() error {
		if err := loopbackUp(); err != nil || uplink == nil {
			return err
		}
		up := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}}
		if err := netlink.LinkAdd(up); err != nil {
			return err
		}
		if err := netlink.AddrAdd(up, &netlink.Addr{IPNet: uplink}); err != nil {
			return err
		}
		return netlink.LinkSetUp(up)
	})
	if err != nil {
		t.Fatalf("set up the host namespace: %v", err)
	}
	if uplink != nil {
		h.Addr = uplink.IP
	}
	return h
}

// Remote makes a namespace that stands for another machine on the host's
// network: a veth pair links the two, the host's end ("remote0") holding
// hostAddr and the remote's end ("eth0") remoteAddr. The remote has no
// route beyond that link, so it can answer only addresses of that subnet
// (containers reach it only when the host masquerades their traffic).
func (h *Host) Remote(t testing.TB, hostAddr, remoteAddr *net.IPNet) ns.NetNS {
	t.Helper()
	r := Container(t)
	err := h.In(func() error {
		la := netlink.NewLinkAttrs()
		la.Name = "remote0"
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(r.Fd()))}); err != nil {
			return err
		}
		l, err := netlink.LinkByName("remote0")
		if err == nil {
			err = netlink.AddrAdd(l, &netlink.Addr{IPNet: hostAddr})
		}
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		return err
	})
	if err == nil {
		err = r.Do(func(ns.NetNS) error {
			l, err := netlink.LinkByName("eth0")
			if err == nil {
				err = netlink.AddrAdd(l, &netlink.Addr{IPNet: remoteAddr})
			}
			if err == nil {
				err = netlink.LinkSetUp(l)
			}
			return err
		})
	}
	if err != nil {
		t.Fatalf("link a remote namespace to the host: %v", err)
	}
	return r
}

// In runs f in the host namespace, on a locked OS thread.
func (h *Host) In(f func() error) error { return h.Do(func(ns.NetNS) error { return f() }) }

// Name is the namespace's name, for `ip netns exec`.
func Name(n ns.NetNS) string { return filepath.Base(n.Path()) }

// Container makes a throwaway namespace with loopback up.
func Container(t testing.TB) ns.NetNS {
	t.Helper()
	n := testenv.NetNS(t)
	if err := n.Do(func(ns.NetNS) error { return loopbackUp() }); err != nil {
		t.Fatalf("set loopback up in %s: %v", Name(n), err)
	}
	return n
}

func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	return err
}

// RandomName is prefix and 8 random hex digits: names of bridges (15
// characters at most) and networks that no other test or run uses.
func RandomName(prefix string) string { return fmt.Sprintf("%s%08x", prefix, rand.Uint32()) }

// HTTPD serves body on port with busybox httpd in a namespace (its
// loopback set up) until the test ends, and returns once it answers.
func HTTPD(t testing.TB, in ns.NetNS, port int, body string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := in.Do(func(ns.NetNS) error { return loopbackUp() }); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", Name(in), "busybox", "httpd", "-f", "-p", fmt.Sprint(port), "-h", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start httpd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var err error
	for range 50 {
		if _, err = Fetch(in, fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("httpd in %s does not answer on port %d: %v", Name(in), port, err)
}

// Fetch gets http://addr/ from inside a namespace and returns the body. It
// dials on the namespace's locked thread and speaks HTTP/1.0 itself
// (net/http would dial from another goroutine, in another namespace).
func Fetch(from ns.NetNS, addr string) (string, error) {
	var body string
	err := from.Do(func(ns.NetNS) error {
		conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		resp, err := io.ReadAll(conn)
		if err != nil {
			return err
		}
		head, b, ok := strings.Cut(string(resp), "\r\n\r\n")
		if !ok || !strings.Contains(strings.SplitN(head, "\r\n", 2)[0], " 200 ") {
			return fmt.Errorf("unexpected response %q", resp)
		}
		body = b
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("GET http://%s/ from %s: %w", addr, Name(from), err)
	}
	return body, nil
}

// Ping sends one ping to addr from inside a namespace.
func Ping(from ns.NetNS, addr net.IP) error {
	out, err := exec.Command("ip", "netns", "exec", Name(from), "busybox", "ping", "-c1", "-W2", addr.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", addr, Name(from), err, out)
	}
	return nil
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NATRules is `iptables -t nat -S` (cmd is iptables or ip6tables) in a
// namespace, without the policy lines.
func NATRules(t testing.TB, in ns.NetNS, cmd string) []string {
	t.Helper()
	var rules []string
	for _, l := range strings.Split(strings.TrimSpace(run(t, "ip", "netns", "exec", Name(in), cmd, "-t", "nat", "-S")), "\n") {
		if l != "" && !strings.HasPrefix(l, "-P ") {
			rules = append(rules, l)
		}
	}
	return rules
}

// Ruleset is `nft list ruleset` in a namespace.
func Ruleset(t testing.TB, in ns.NetNS) string {
	t.Helper()
	return run(t, "ip", "netns", "exec", Name(in), "nft", "list", "ruleset")
}

// NFTRules are the nftables rules in a namespace whose comment starts with
// prefix, as `nft list ruleset` prints them.
func NFTRules(t testing.TB, in ns.NetNS, prefix string) []string {
	t.Helper()
	var rules []string
	for _, l := range strings.Split(Ruleset(t, in), "\n") {
		if strings.Contains(l, `comment "`+prefix) {
			rules = append(rules, strings.TrimSpace(l))
		}
	}
	return rules
}

// Veths are the names of the veth links in a namespace.
func Veths(t testing.TB, in ns.NetNS) []string {
	t.Helper()
	var names []string
	err := in.Do(func(ns.NetNS) error {
		links, err := netlink.LinkList()
		for _, l := range links {
			if l.Type() == "veth" {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// Allocations are the addresses host-local holds in a network's directory
// (dataDir/name).
func Allocations(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, de := range des {
		if net.ParseIP(de.Name()) != nil {
			ips = append(ips, de.Name())
		}
	}
	return ips
}

// ErrCode is the spec error code of err (0 when err is not a spec error).
func ErrCode(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
