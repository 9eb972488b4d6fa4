package task

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/berth-project/berth/shim/wire"
)

// runtimeOptions reads the options containerd passes with Create: runc's
// options (what CRI and `ctr run --runc-binary` send), or the generic
// runtime options whose TOML config (ConfigPath or ConfigBody) holds the same
// keys (what `ctr run --runtime-config-path` sends for other runtimes).
func runtimeOptions(a *anypb.Any) (*options.Options, error) {
	var opts options.Options
	if a == nil || len(a.Value) == 0 {
		return &opts, nil
	}
	var generic runtimeoptions.Options
	switch {
	case typeIs(a, "containerd.runc.v1.Options"):
		if err := wire.Decode(a.Value, &opts); err != nil {
			return nil, fmt.Errorf("runtime options: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		return &opts, nil
	case typeIs(a, "runtimeoptions.v1.Options"):
		if err := wire.Decode(a.Value, &generic); err != nil {
			return nil, fmt.Errorf("runtime options: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		body := generic.ConfigBody
		if generic.ConfigPath != "" {
			var err error
			if body, err = os.ReadFile(generic.ConfigPath); err != nil {
				return nil, fmt.Errorf("runtime config: %v: %w", err, errdefs.ErrInvalidArgument)
			}
		}
		if err := parseConfig(body, &opts); err != nil {
			return nil, fmt.Errorf("runtime config %s: %v: %w", generic.ConfigPath, err, errdefs.ErrInvalidArgument)
		}
		return &opts, nil
	}
	return nil, fmt.Errorf("runtime options of type %q: want containerd.runc.v1.Options or runtimeoptions.v1.Options: %w", a.TypeUrl, errdefs.ErrInvalidArgument)
}

// typeIs says whether a holds the message named name, with or without a
// type URL prefix (as anypb.Any.MessageIs, without protobuf's reflection).
func typeIs(a *anypb.Any, name string) bool {
	url := a.GetTypeUrl()
	return url == name || strings.HasSuffix(url, "/"+name)
}

// parseConfig reads `Key = value` lines (a flat TOML table) with runc's
// option names, CamelCase as containerd's configuration writes them or
// snake_case.
func parseConfig(body []byte, o *options.Options) error {
	sc := bufio.NewScanner(bytes.NewReader(body))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("line %d: want key = value", n)
		}
		key = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(key), "_", ""))
		value = strings.TrimSpace(value)
		str := func() (string, error) { return strconv.Unquote(value) }
		boolean := func() (bool, error) { return strconv.ParseBool(value) }
		var err error
		switch key {
		case "binaryname":
			o.BinaryName, err = str()
		case "root":
			o.Root, err = str()
		case "systemdcgroup":
			o.SystemdCgroup, err = boolean()
		case "nopivotroot":
			o.NoPivotRoot, err = boolean()
		case "nonewkeyring":
			o.NoNewKeyring, err = boolean()
		default:
			return fmt.Errorf("line %d: unknown option %q", n, key)
		}
		if err != nil {
			return fmt.Errorf("line %d: %s: %v", n, key, err)
		}
	}
	return sc.Err()
}
