// Package plugin is what berth's CNI plugins share: the spec versions they
// speak, their entry point, and errors shaped as the CNI spec shapes them
// (codes 1–11 and 50–51 from the spec, 100 and up for berth's own).
package plugin

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Versions are the CNI spec versions every berth plugin supports.
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Berth's error codes (the spec reserves 100 and up for plugins).
const (
	// ErrRangeExhausted: every address of a range set is allocated.
	ErrRangeExhausted uint = 100
	// ErrLinkConflict: a link of the wanted name exists but is of another kind.
	ErrLinkConflict uint = 101
	// ErrAddressTaken: a requested address is allocated to another attachment.
	ErrAddressTaken uint = 102
)

// Main runs a plugin: skel reads the environment and stdin, checks the
// versions and calls the command's function.
func Main(about string, funcs skel.CNIFuncs) {
	skel.PluginMainFuncs(funcs, Versions, about)
}

// Decode parses a configuration, with an error that says where it is wrong.
func Decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field == "" {
				return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("network configuration must be a JSON object, not %s", typeErr.Value), "")
			}
			return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("network configuration: field %s must be a JSON %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value), "")
		}
		return types.NewError(types.ErrDecodingFailure, "network configuration is not valid JSON", err.Error())
	}
	return nil
}

// InvalidConfig is error 7: the configuration is well-formed but wrong.
func InvalidConfig(format string, args ...any) error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, args...), "")
}

// IOFailure is error 5.
func IOFailure(what string, err error) error {
	return types.NewError(types.ErrIOFailure, what, err.Error())
}
