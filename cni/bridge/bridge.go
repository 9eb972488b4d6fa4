// Package bridge is the bridge CNI plugin: it connects a container to a
// Linux bridge on the host through a veth pair, gives the container's end
// the addresses an IPAM plugin hands out (delegated to the plugin named in
// ipam.type), and optionally makes the bridge the containers' gateway and
// masquerades their traffic. It is a drop-in for the reference bridge
// plugin: the same configuration fields, results and behaviour (see
// README.md for the fields and what is not supported).
package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
)

// Funcs are the plugin's commands.
var Funcs = skel.CNIFuncs{Add: Add, Del: Del, Check: Check, Status: Status, GC: GC}

// Add attaches the container and prints the result on stdout.
func Add(args *skel.CmdArgs) error { return add(context.Background(), args, os.Stdout) }

// Del detaches the container; what is already gone is not an error.
func Del(args *skel.CmdArgs) error { return del(context.Background(), args) }

// Check verifies that the attachment is as prevResult describes it.
func Check(args *skel.CmdArgs) error { return check(context.Background(), args) }

// Status reports whether ADD can work.
func Status(args *skel.CmdArgs) error { return status(context.Background(), args) }

// GC releases what attachments no longer in cni.dev/valid-attachments hold.
func GC(args *skel.CmdArgs) error { return gc(context.Background(), args) }

// openNetNS opens the container's network namespace.
func openNetNS(path string) (ns.NetNS, error) {
	n, err := ns.GetNS(path)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("bridge: cannot open network namespace %q", path), err.Error())
	}
	return n, nil
}

// nsGone reports whether err says that a namespace no longer exists.
func nsGone(err error) bool {
	var notExist ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	return errors.As(err, &notExist) || errors.As(err, &notNS)
}

// joinErrors makes one spec error of several; it keeps the code of the
// first one that has a code.
func joinErrors(errs ...error) error {
	var msgs []string
	var code uint
	for _, err := range errs {
		if err == nil {
			continue
		}
		var te *types.Error
		if errors.As(err, &te) {
			if code == 0 {
				code = te.Code
			}
			msgs = append(msgs, te.Error())
		} else {
			msgs = append(msgs, err.Error())
		}
	}
	switch len(msgs) {
	case 0:
		return nil
	case 1:
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
	}
	if code == 0 {
		code = types.ErrInternal
	}
	return types.NewError(code, strings.Join(msgs, "; "), "")
}

// printResult writes the result in the configuration's version.
func printResult(w io.Writer, r types.Result, version string) error {
	v, err := r.GetAsVersion(version)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("bridge: cannot express the result in version %s", version), err.Error())
	}
	if err := v.PrintTo(w); err != nil {
		return types.NewError(types.ErrIOFailure, "bridge: print the result", err.Error())
	}
	return nil
}
