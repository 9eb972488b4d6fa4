package bridge

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// ipam runs the IPAM plugin named in ipam.type the way the spec has a
// plugin delegate: the same configuration on stdin and the same CNI_*
// values, with another CNI_COMMAND. The values are passed explicitly from
// args (rather than inherited from the process environment as pkg/ipam
// does), so the plugin behaves the same called in-process or as a binary.
type ipam struct {
	conf *NetConf
	args *skel.CmdArgs
}

func (p ipam) find() (string, error) {
	path, err := invoke.FindInPath(p.conf.IPAM.Type, filepath.SplitList(p.args.Path))
	if err != nil {
		return "", types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("bridge: IPAM plugin %q not found in CNI_PATH %q", p.conf.IPAM.Type, p.args.Path), err.Error())
	}
	return path, nil
}

func (p ipam) invokeArgs(command string) *invoke.Args {
	return &invoke.Args{
		Command:       command,
		ContainerID:   p.args.ContainerID,
		NetNS:         p.args.Netns,
		IfName:        p.args.IfName,
		PluginArgsStr: p.args.Args,
		Path:          p.args.Path,
	}
}

// add allocates addresses; the result is in the current spec version.
func (p ipam) add(ctx context.Context) (*types100.Result, error) {
	path, err := p.find()
	if err != nil {
		return nil, err
	}
	r, err := invoke.ExecPluginWithResult(ctx, path, p.args.StdinData, p.invokeArgs("ADD"), nil)
	if err != nil {
		return nil, p.wrap("ADD", err)
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("bridge: IPAM plugin %q returned a result that cannot be converted", p.conf.IPAM.Type), err.Error())
	}
	return res, nil
}

// run executes a command that gives no result: DEL, CHECK, STATUS, GC.
func (p ipam) run(ctx context.Context, command string) error {
	path, err := p.find()
	if err != nil {
		return err
	}
	if err := invoke.ExecPluginWithoutResult(ctx, path, p.args.StdinData, p.invokeArgs(command), nil); err != nil {
		return p.wrap(command, err)
	}
	return nil
}

// wrap names the IPAM plugin in its error and keeps the error's code.
func (p ipam) wrap(command string, err error) error {
	prefix := fmt.Sprintf("bridge: IPAM plugin %q %s", p.conf.IPAM.Type, command)
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, prefix+": "+te.Msg, te.Details)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}
