package bridge

import (
	"context"
	"fmt"
	"sync"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// del removes the masquerade rules, releases the addresses and deletes the
// container's interface (its host peer goes with it). Every step runs even
// when another one fails, and what is already gone (the namespace, the
// interface, the rules) is not an error, so DEL can be repeated. The bridge
// stays: other containers may use it.
//
// The rules go first and their nftables socket closes last (see masq.go);
// the IPAM plugin runs while the interface is deleted, which the kernel
// takes milliseconds to do (the reference deletes the interface before
// calling IPAM DEL, so no IPAM plugin can depend on the order).
func del(ctx context.Context, args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	var nft nftConn
	defer nft.close()
	var masqErr, ipamErr, linkErr error
	if c.IPMasq {
		masqErr = teardownMasq(&nft, c, args.ContainerID, args.IfName)
	}
	var wg sync.WaitGroup
	if c.layer3() {
		wg.Go(func() { ipamErr = ipam{conf: c, args: args}.run(ctx, "DEL") })
	}
	if args.Netns != "" {
		linkErr = deleteContainerLink(args.Netns, args.IfName)
	}
	wg.Wait()
	return joinErrors(ipamErr, linkErr, masqErr)
}

// deleteContainerLink deletes the interface in the namespace; a namespace
// or interface that is gone is not an error.
func deleteContainerLink(netns, ifname string) error {
	err := ns.WithNetNSPath(netns, func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifname)
		if isNotFound(err) {
			return nil
		}
		if err == nil {
			err = netlink.LinkDel(l)
		}
		if err != nil {
			return fmt.Errorf("bridge: delete %s in %s: %w", ifname, netns, err)
		}
		return nil
	})
	if err != nil && !nsGone(err) {
		return err
	}
	return nil
}
