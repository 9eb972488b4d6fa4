// Package portmap is the portmap CNI plugin, chained after a plugin that
// attaches the container (bridge): it publishes container ports on the
// host with nftables DNAT rules, from other hosts, from the host itself
// (127.0.0.1 too) and from other containers through a host address
// (hairpin). It is a drop-in for the reference portmap plugin: the same
// configuration fields and capability (see README.md).
package portmap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/cni/plugin"
)

// Funcs are the plugin's commands.
var Funcs = skel.CNIFuncs{Add: Add, Del: Del, Check: Check, Status: Status, GC: GC}

// Add publishes the ports and prints prevResult as the result.
func Add(args *skel.CmdArgs) error { return add(context.Background(), args, os.Stdout) }

// Del removes the attachment's rules; what is already gone is not an error.
func Del(args *skel.CmdArgs) error { return del(context.Background(), args) }

// Check verifies that the rules for the mappings are installed.
func Check(args *skel.CmdArgs) error { return check(context.Background(), args) }

// Status reports whether nftables can be used.
func Status(args *skel.CmdArgs) error { return status(context.Background(), args) }

// GC removes the rules of attachments not in cni.dev/valid-attachments.
func GC(args *skel.CmdArgs) error { return gc(context.Background(), args) }

// attachment is what ADD and CHECK work from: the validated mappings and
// the container's addresses.
func attachment(c *NetConf) ([]mapping, *types100.Result, error) {
	ms, err := c.mappings()
	if err != nil {
		return nil, nil, err
	}
	prev, err := c.prevResult()
	if err != nil {
		return nil, nil, err
	}
	if prev == nil {
		return nil, nil, plugin.InvalidConfig("portmap: no prevResult: portmap must be chained after a plugin that gives the container addresses")
	}
	return ms, prev, nil
}

func add(_ context.Context, args *skel.CmdArgs, w io.Writer) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ms, prev, err := attachment(c)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		want := rules(ms, containerAddrs(prev), c.snat())
		if c.snat() && len(want[nftables.TableFamilyIPv4]) > 0 && needsLocalnet(ms) {
			if err := enableRouteLocalnet(hostInterfaces(prev)); err != nil {
				return err
			}
		}
		err := withConn(func(conn *nftables.Conn) error {
			return install(conn, attachmentTag(c.Name, args.ContainerID, args.IfName), want)
		})
		if err != nil {
			return err
		}
	}
	r, err := prev.GetAsVersion(c.CNIVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("portmap: cannot express the result in version %s", c.CNIVersion), err.Error())
	}
	if err := r.PrintTo(w); err != nil {
		return plugin.IOFailure("portmap: print the result", err)
	}
	return nil
}

// needsLocalnet reports whether a mapping can be reached on 127.0.0.1.
func needsLocalnet(ms []mapping) bool {
	for _, m := range ms {
		if m.hostIP == nil || (m.hostIP.To4() != nil && m.hostIP.IsLoopback()) {
			return true
		}
	}
	return false
}

// enableRouteLocalnet lets packets from 127.0.0.1 be routed out of the
// bridges in names (out of every interface when there is none), so that
// DNATed loopback connections reach the container.
func enableRouteLocalnet(names []string) error {
	var bridges []string
	for _, n := range names {
		if l, err := netlink.LinkByName(n); err == nil && l.Type() == "bridge" {
			bridges = append(bridges, n)
		}
	}
	if len(bridges) == 0 {
		bridges = []string{"all"}
	}
	for _, b := range bridges {
		key := fmt.Sprintf("net/ipv4/conf/%s/route_localnet", b)
		if _, err := sysctl.Sysctl(key, "1"); err != nil {
			return plugin.IOFailure(fmt.Sprintf("portmap: set %s", key), err)
		}
	}
	return nil
}

// del needs neither prevResult nor the namespace: the rules are found by
// their comment.
func del(_ context.Context, args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	return withConn(func(conn *nftables.Conn) error {
		return remove(conn, attachmentTag(c.Name, args.ContainerID, args.IfName))
	})
}

func check(_ context.Context, args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ms, prev, err := attachment(c)
	if err != nil {
		return err
	}
	var miss []string
	err = withConn(func(conn *nftables.Conn) (err error) {
		miss, err = missing(conn, attachmentTag(c.Name, args.ContainerID, args.IfName), rules(ms, containerAddrs(prev), c.snat()))
		return err
	})
	if err != nil {
		return err
	}
	if len(miss) > 0 {
		return types.NewError(types.ErrInternal, "portmap: rules are missing: "+strings.Join(miss, "; "), "")
	}
	return nil
}

func status(_ context.Context, args *skel.CmdArgs) error {
	if _, err := parseConf(args.StdinData); err != nil {
		return err
	}
	c, err := nftables.New()
	if err == nil {
		_, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	}
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "portmap: nftables cannot be used", err.Error())
	}
	return nil
}

func gc(_ context.Context, args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, a := range c.ValidAttachments {
		keep[attachmentTag(c.Name, a.ContainerID, a.IfName)] = true
	}
	return withConn(func(conn *nftables.Conn) error {
		return removeIf(conn, networkTag(c.Name), func(comment string) bool {
			i := strings.LastIndexByte(comment, ' ')
			return i < 0 || !keep[comment[:i+1]]
		})
	})
}

// withConn runs f with a netlink connection to nftables that it closes
// afterwards (once: see newConn), and makes a spec error 5 of f's errors.
func withConn(f func(*nftables.Conn) error) error {
	conn, err := newConn()
	if err != nil {
		return ioError(err)
	}
	defer conn.CloseLasting()
	if err := f(conn); err != nil {
		return ioError(err)
	}
	return nil
}

// ioError makes a spec error 5 of a failure to read or change nftables.
func ioError(err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return err
	}
	return types.NewError(types.ErrIOFailure, err.Error(), "")
}
