// Package loopback is the loopback plugin: it brings the container's lo
// interface up (ADD) or down (DEL).
package loopback

import (
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/cni/plugin"
)

// Funcs are the plugin's commands.
var Funcs = skel.CNIFuncs{Add: Add, Del: Del, Check: Check, GC: noop, Status: noop}

func noop(*skel.CmdArgs) error { return nil }

func parse(data []byte) (*types.PluginConf, error) {
	var c types.PluginConf
	if err := plugin.Decode(data, &c); err != nil {
		return nil, err
	}
	if err := version.ParsePrevResult(&c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "loopback: prevResult", err.Error())
	}
	return &c, nil
}

// setLo brings lo up or down inside the network namespace at path.
func setLo(path string, up bool) error {
	return ns.WithNetNSPath(path, func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		if up {
			return netlink.LinkSetUp(lo)
		}
		return netlink.LinkSetDown(lo)
	})
}

// Add brings lo up. Chained after another plugin it passes the previous
// result on; alone it reports lo with its loopback addresses.
func Add(args *skel.CmdArgs) error {
	c, err := parse(args.StdinData)
	if err != nil {
		return err
	}
	if err := setLo(args.Netns, true); err != nil {
		return netnsError(args.Netns, err)
	}
	if c.PrevResult != nil {
		return types.PrintResult(c.PrevResult, c.CNIVersion)
	}
	zero := 0
	result := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{{Name: "lo", Mac: "00:00:00:00:00:00", Sandbox: args.Netns}},
		IPs: []*types100.IPConfig{
			{Interface: &zero, Address: net.IPNet{IP: net.IPv4(127, 0, 0, 1).To4(), Mask: net.CIDRMask(8, 32)}},
			{Interface: &zero, Address: net.IPNet{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)}},
		},
	}
	return types.PrintResult(result, c.CNIVersion)
}

// Del brings lo down; a namespace that is already gone is not an error.
func Del(args *skel.CmdArgs) error {
	if _, err := parse(args.StdinData); err != nil {
		return err
	}
	if args.Netns == "" {
		return nil
	}
	err := setLo(args.Netns, false)
	var gone ns.NSPathNotExistErr
	if err != nil && !errors.As(err, &gone) {
		return netnsError(args.Netns, err)
	}
	return nil
}

// Check verifies that lo is up.
func Check(args *skel.CmdArgs) error {
	if _, err := parse(args.StdinData); err != nil {
		return err
	}
	err := ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if lo.Attrs().Flags&net.FlagUp == 0 {
			return errors.New("loopback: lo is down")
		}
		return nil
	})
	if err != nil {
		return netnsError(args.Netns, err)
	}
	return nil
}

func netnsError(path string, err error) error {
	var gone ns.NSPathNotExistErr
	if errors.As(err, &gone) {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("loopback: network namespace %s does not exist", path), err.Error())
	}
	return err
}
