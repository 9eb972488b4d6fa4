// Package hostlocal is the host-local IPAM plugin: it hands out addresses
// from configured ranges and keeps the allocations in files on the host,
// safe under concurrent invocations, released on DEL, and garbage-collected
// on GC (CNI 1.1) against the list of attachments that are still valid.
package hostlocal

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/berth-project/berth/cni/plugin"
)

// Funcs are the plugin's commands.
var Funcs = skel.CNIFuncs{Add: Add, Del: Del, Check: Check, GC: GC, Status: Status}

// Add allocates one address from each range set (the requested one where
// the runtime asks for one) and prints the result.
func Add(args *skel.CmdArgs) error { return add(args, os.Stdout) }

func add(args *skel.CmdArgs, w io.Writer) error {
	c, err := Parse(args.StdinData)
	if err != nil {
		return err
	}
	if err := c.Request(args.Args); err != nil {
		return err
	}
	result, err := Allocate(c, args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	r, err := result.GetAsVersion(c.CNIVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("host-local: cannot express the result in version %s", c.CNIVersion), err.Error())
	}
	return r.PrintTo(w)
}

// Allocate is Add without printing: the result in the current version.
// Addresses requested with Request are allocated as asked.
func Allocate(c *Config, id, ifname string) (*types100.Result, error) {
	s, err := openStore(c.dir())
	if err != nil {
		return nil, plugin.IOFailure("host-local: open the allocation store", err)
	}
	defer s.close()
	o := owner{id: id, ifname: ifname}
	result := &types100.Result{CNIVersion: types100.ImplementedSpecVersion, Routes: c.IPAM.Routes, DNS: c.DNS}
	var fresh []net.IP // reserved by this call, undone if a later set fails
	for i, set := range c.IPAM.Ranges {
		var ipc *types100.IPConfig
		var isNew bool
		var err error
		if i < len(c.requested) && c.requested[i] != nil {
			ipc, isNew, err = allocateRequested(s, i, set, o, c.requested[i])
		} else {
			ipc, isNew, err = allocate(s, i, set, o)
		}
		if err != nil {
			for _, ip := range fresh {
				os.Remove(filepath.Join(s.dir, ip.String()))
			}
			return nil, err
		}
		if isNew {
			fresh = append(fresh, ipc.Address.IP)
		}
		result.IPs = append(result.IPs, ipc)
	}
	return result, nil
}

// allocate claims the next free address of a range set, round robin from the
// last one handed out, so that a released address is not reused at once. An
// attachment that already holds an address of the set gets it again (isNew
// is false then).
func allocate(s *store, idx int, set RangeSet, o owner) (ipc *types100.IPConfig, isNew bool, err error) {
	entries, err := s.entries()
	if err != nil {
		return nil, false, plugin.IOFailure("host-local: read allocations", err)
	}
	for ip, e := range entries {
		if e.matches(o.id, o.ifname) {
			if r := set.find(net.ParseIP(ip)); r != nil {
				return ipConfig(r, net.ParseIP(ip)), false, nil
			}
		}
	}
	ri, ip := set.after(s.last(idx))
	for start := ip; ; {
		r := &set[ri]
		if !ip.Equal(r.Gateway) {
			ok, err := s.reserve(ip, o)
			if err != nil {
				return nil, false, plugin.IOFailure("host-local: reserve "+ip.String(), err)
			}
			if ok {
				if err := s.setLast(idx, ip); err != nil {
					os.Remove(filepath.Join(s.dir, ip.String()))
					return nil, false, plugin.IOFailure("host-local: record the last reserved address", err)
				}
				return ipConfig(r, ip), true, nil
			}
		}
		ri, ip = set.step(ri, ip)
		if ip.Equal(start) {
			return nil, false, types.NewError(plugin.ErrRangeExhausted, fmt.Sprintf("host-local: no IP addresses available in range set %s", set.describe()), "every address is allocated: release some with DEL or GC, or widen the range")
		}
	}
}

// allocateRequested claims ip, which Request found in the range set, for
// o: an address the attachment already holds is its again; one another
// attachment holds is error 102.
func allocateRequested(s *store, idx int, set RangeSet, o owner, ip net.IP) (ipc *types100.IPConfig, isNew bool, err error) {
	entries, err := s.entries()
	if err != nil {
		return nil, false, plugin.IOFailure("host-local: read allocations", err)
	}
	for held, e := range entries {
		if !e.matches(o.id, o.ifname) || set.find(net.ParseIP(held)) == nil || net.ParseIP(held).Equal(ip) {
			continue
		}
		return nil, false, plugin.InvalidConfig("host-local: %s/%s already holds %s in range set %d, not the requested %s: DEL it first",
			o.id, o.ifname, held, idx, ip)
	}
	r := set.find(ip)
	if e, ok := entries[ip.String()]; ok {
		if e.matches(o.id, o.ifname) {
			return ipConfig(r, ip), false, nil
		}
		return nil, false, taken(ip, e)
	}
	ok, err := s.reserve(ip, o)
	if err != nil {
		return nil, false, plugin.IOFailure("host-local: reserve "+ip.String(), err)
	}
	if !ok { // an allocation written without the lock, by another plugin
		return nil, false, taken(ip, owner{id: "(unknown)"})
	}
	if err := s.setLast(idx, ip); err != nil {
		os.Remove(filepath.Join(s.dir, ip.String()))
		return nil, false, plugin.IOFailure("host-local: record the last reserved address", err)
	}
	return ipConfig(r, ip), true, nil
}

func taken(ip net.IP, by owner) error {
	return types.NewError(plugin.ErrAddressTaken,
		fmt.Sprintf("host-local: the requested address %s is allocated to another attachment (container %s, interface %s)", ip, by.id, by.ifname),
		"ask for another address, or release it with DEL or GC")
}

func ipConfig(r *Range, ip net.IP) *types100.IPConfig {
	mask := net.IPNet(r.Subnet).Mask
	return &types100.IPConfig{Address: net.IPNet{IP: normaliseIP(ip), Mask: mask}, Gateway: r.Gateway}
}

// find returns the range holding ip.
func (set RangeSet) find(ip net.IP) *Range {
	for i := range set {
		if set[i].contains(ip) {
			return &set[i]
		}
	}
	return nil
}

// after is the position following last (or the very first address).
func (set RangeSet) after(last net.IP) (int, net.IP) {
	for i := range set {
		if last != nil && set[i].contains(last) {
			return set.step(i, normaliseIP(last))
		}
	}
	return 0, set[0].RangeStart
}

// step moves to the next address, wrapping from range to range.
func (set RangeSet) step(i int, ip net.IP) (int, net.IP) {
	if cmp(ip, set[i].RangeEnd) < 0 {
		return i, next(ip)
	}
	i = (i + 1) % len(set)
	return i, set[i].RangeStart
}

func (set RangeSet) describe() string {
	s := ""
	for i, r := range set {
		if i > 0 {
			s += ", "
		}
		s += r.RangeStart.String() + "-" + r.RangeEnd.String()
	}
	return s
}

// withStore parses the configuration and runs fn with the network's store
// locked.
func withStore(args *skel.CmdArgs, fn func(*Config, *store) error) error {
	c, err := Parse(args.StdinData)
	if err != nil {
		return err
	}
	s, err := openStore(c.dir())
	if err != nil {
		return plugin.IOFailure("host-local: open the allocation store", err)
	}
	defer s.close()
	return fn(c, s)
}

// Del releases the attachment's addresses; it succeeds when there are none.
func Del(args *skel.CmdArgs) error {
	return withStore(args, func(_ *Config, s *store) error {
		if err := s.release(func(o owner) bool { return !o.matches(args.ContainerID, args.IfName) }); err != nil {
			return plugin.IOFailure("host-local: release", err)
		}
		return nil
	})
}

// Check verifies that the attachment holds an address in every range set,
// the requested one where the runtime asks for one.
func Check(args *skel.CmdArgs) error {
	return withStore(args, func(c *Config, s *store) error {
		if err := c.Request(args.Args); err != nil {
			return err
		}
		return check(c, s, args)
	})
}

func check(c *Config, s *store, args *skel.CmdArgs) error {
	entries, err := s.entries()
	if err != nil {
		return plugin.IOFailure("host-local: read allocations", err)
	}
	for i, set := range c.IPAM.Ranges {
		var held []string
		for ip, o := range entries {
			if o.matches(args.ContainerID, args.IfName) && set.find(net.ParseIP(ip)) != nil {
				held = append(held, ip)
			}
		}
		if len(held) == 0 {
			return fmt.Errorf("host-local: %s/%s holds no address in range set %d (%s)", args.ContainerID, args.IfName, i, set.describe())
		}
		if want := c.requested[i]; want != nil && !slices.Contains(held, want.String()) {
			return fmt.Errorf("host-local: %s/%s holds %s in range set %d, not the requested %s", args.ContainerID, args.IfName, strings.Join(held, ", "), i, want)
		}
	}
	return nil
}

// GC releases every allocation whose attachment is not in the
// configuration's cni.dev/valid-attachments list: the cure for addresses
// leaked by a DEL that never came.
func GC(args *skel.CmdArgs) error {
	return withStore(args, func(c *Config, s *store) error {
		valid := map[owner]bool{}
		for _, a := range c.ValidAttachments {
			valid[owner{id: a.ContainerID, ifname: a.IfName}] = true
		}
		if err := s.release(func(o owner) bool { return valid[o] || (o.ifname == "" && validID(valid, o.id)) }); err != nil {
			return plugin.IOFailure("host-local: garbage-collect", err)
		}
		return nil
	})
}

func validID(valid map[owner]bool, id string) bool {
	for o := range valid {
		if o.id == id {
			return true
		}
	}
	return false
}

// Status reports whether ADD can work: the allocation store must be usable.
func Status(args *skel.CmdArgs) error {
	c, err := Parse(args.StdinData)
	if err != nil {
		return err
	}
	s, err := openStore(c.dir())
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "host-local: the allocation store is not usable", err.Error())
	}
	s.close()
	return nil
}
