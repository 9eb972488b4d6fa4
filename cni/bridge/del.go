package bridge

import (
	"context"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// del releases the addresses, deletes the container's interface (its host
// peer goes with it) and removes the masquerade rules. Every step runs even
// when an earlier one fails, and what is already gone (the namespace, the
// interface, the rules) is not an error, so DEL can be repeated. The bridge
// stays: other containers may use it.
func del(ctx context.Context, args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	var errs []error
	if c.layer3() {
		errs = append(errs, ipam{conf: c, args: args}.run(ctx, "DEL"))
	}
	if args.Netns != "" {
		err := ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
			l, err := netlink.LinkByName(args.IfName)
			if isNotFound(err) {
				return nil
			}
			if err == nil {
				err = netlink.LinkDel(l)
			}
			if err != nil {
				return fmt.Errorf("bridge: delete %s in %s: %w", args.IfName, args.Netns, err)
			}
			return nil
		})
		if err != nil && !nsGone(err) {
			errs = append(errs, err)
		}
	}
	if c.IPMasq {
		errs = append(errs, teardownMasq(c.Name, args.ContainerID, args.IfName))
	}
	return joinErrors(errs...)
}
