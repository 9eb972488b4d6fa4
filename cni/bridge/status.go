package bridge

import (
	"context"
	"errors"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/coreos/go-iptables/iptables"
)

// status is ready unless masquerading is wanted and its backend (nftables
// or iptables) cannot be used, or the IPAM plugin is missing or reports
// itself not ready.
func status(ctx context.Context, args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if c.IPMasq && c.masqBackend() == backendIPTables {
		if _, err := iptables.NewWithProtocol(iptables.ProtocolIPv4); err != nil {
			return types.NewError(types.ErrPluginNotAvailable, "bridge: ipMasq needs iptables, which cannot be run", err.Error())
		}
	}
	if c.IPMasq && c.masqBackend() == backendNFTables {
		if err := nftablesUsable(); err != nil {
			return types.NewError(types.ErrPluginNotAvailable, "bridge: ipMasq needs nftables, which cannot be used", err.Error())
		}
	}
	if !c.layer3() {
		return nil
	}
	p := ipam{conf: c, args: args}
	if _, err := p.find(); err != nil {
		var te *types.Error
		errors.As(err, &te)
		return types.NewError(types.ErrPluginNotAvailable, te.Msg, te.Details)
	}
	return p.run(ctx, "STATUS")
}

// gc has the IPAM plugin release the addresses of attachments that are no
// longer valid, and removes their masquerade chains.
func gc(ctx context.Context, args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	var errs []error
	if c.layer3() {
		errs = append(errs, ipam{conf: c, args: args}.run(ctx, "GC"))
	}
	errs = append(errs, gcMasq(c))
	return joinErrors(errs...)
}
