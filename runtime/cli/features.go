package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/moby/sys/capability"
	"github.com/opencontainers/runc/libcontainer/apparmor"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/spf13/pflag"
)

func featuresCommand() *command {
	return &command{
		name:  "features",
		short: "print the features this runtime supports as JSON (OCI runtime features)",
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 0, 0); err != nil {
				return err
			}
			t := true
			f := features.Features{
				OCIVersionMin: "1.0.0",
				OCIVersionMax: specs.Version,
				Annotations: map[string]string{
					"io.berth.runtime.version":                   Version,
					"org.opencontainers.runc.checkpoint.enabled": "true",
				},
				Hooks:        configs.KnownHookNames(),
				MountOptions: specconv.KnownMountOptions(),
				Linux: &features.Linux{
					Namespaces:   specconv.KnownNamespaces(),
					Capabilities: knownCapabilities(),
					Cgroup:       &features.Cgroup{V1: &t, V2: &t, Systemd: &t, SystemdUser: &t, Rdma: &t},
					Apparmor:     &features.Apparmor{Enabled: boolPtr(apparmor.IsEnabled())},
					Selinux:      &features.Selinux{Enabled: &t},
					IntelRdt:     &features.IntelRdt{Enabled: &t},
					MountExtensions: &features.MountExtensions{
						IDMap: &features.IDMap{Enabled: &t},
					},
				},
				PotentiallyUnsafeConfigAnnotations: []string{"bundle", "org.systemd.property.", "org.criu.config"},
			}
			if seccomp.Enabled {
				f.Linux.Seccomp = &features.Seccomp{
					Enabled:        &t,
					Actions:        seccomp.KnownActions(),
					Operators:      seccomp.KnownOperators(),
					Archs:          seccomp.KnownArchs(),
					KnownFlags:     seccomp.KnownFlags(),
					SupportedFlags: seccomp.SupportedFlags(),
				}
				major, minor, patch := seccomp.Version()
				f.Annotations["io.github.seccomp.libseccomp.version"] = fmt.Sprintf("%d.%d.%d", major, minor, patch)
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "    ")
			return enc.Encode(f)
		},
	}
}

func boolPtr(b bool) *bool { return &b }

func knownCapabilities() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}
