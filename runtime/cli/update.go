package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/docker/go-units"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/bundle"
	"github.com/berth-project/berth/runtime/resources"
)

func updateCommand() *command {
	var file string
	str := map[string]*string{}
	strFlags := []struct{ name, usage string }{
		{"blkio-weight", "specifies per cgroup weight, range is from 10 to 1000"},
		{"cpu-period", "CPU CFS period to be used for hardcapping (in usecs)"},
		{"cpu-quota", "CPU CFS hardcap limit (in usecs); allowed cpu time in a given period"},
		{"cpu-burst", "CPU CFS burst (in usecs)"},
		{"cpu-share", "CPU shares (relative weight vs. other containers)"},
		{"cpu-rt-period", "CPU realtime period to be used for hardcapping (in usecs)"},
		{"cpu-rt-runtime", "CPU realtime hardcap limit (in usecs)"},
		{"cpu-idle", "set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE"},
		{"cpuset-cpus", "CPU(s) to use"},
		{"cpuset-mems", "memory node(s) to use"},
		{"memory", "memory limit (in bytes, or with a unit: 512m, 1g; -1 for none)"},
		{"memory-reservation", "memory reservation or soft_limit (in bytes)"},
		{"memory-swap", "total memory usage (memory + swap); set '-1' to enable unlimited swap"},
		{"pids-limit", "maximum number of pids allowed in the container"},
	}
	return &command{
		name:  "update",
		args:  "<container-id>",
		short: "update the resource limits of a container",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&file, "resources", "r", "", "path to a file with the resources (OCI linux.resources JSON) to update, or '-' for stdin")
			for _, f := range strFlags {
				str[f.name] = fs.String(f.name, "", f.usage)
			}
			fs.String("kernel-memory", "", "(obsolete, ignored)")
			fs.String("kernel-memory-tcp", "", "(obsolete, ignored)")
		},
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, 1); err != nil {
				return err
			}
			c, err := loadContainer(g, fs)
			if err != nil {
				return err
			}
			var r specs.LinuxResources
			if file != "" {
				if err := readResources(file, &r); err != nil {
					return err
				}
			} else if err := resourcesFromFlags(fs, str, &r); err != nil {
				return err
			}
			config := c.Config()
			resources.Merge(config.Cgroups.Resources, &r)
			// update does not change device rules; leave them as they are.
			config.Cgroups.SkipDevices = true
			return c.Set(config)
		},
	}
}

func readResources(file string, r *specs.LinuxResources) error {
	var (
		data []byte
		err  error
	)
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("--resources: %w", err)
	}
	return bundle.Decode(file, data, r)
}

func resourcesFromFlags(fs *pflag.FlagSet, str map[string]*string, r *specs.LinuxResources) error {
	r.Memory = &specs.LinuxMemory{}
	r.CPU = &specs.LinuxCPU{}
	r.BlockIO = &specs.LinuxBlockIO{}
	r.Pids = &specs.LinuxPids{}
	set := func(name string) (string, bool) {
		return *str[name], fs.Changed(name)
	}
	var err error
	uint64s := []struct {
		name string
		dst  **uint64
	}{{"cpu-period", &r.CPU.Period}, {"cpu-share", &r.CPU.Shares}, {"cpu-rt-period", &r.CPU.RealtimePeriod}, {"cpu-burst", &r.CPU.Burst}}
	for _, u := range uint64s {
		if v, ok := set(u.name); ok {
			n, perr := strconv.ParseUint(v, 10, 64)
			if perr != nil {
				return fmt.Errorf("invalid value for --%s: %q is not a non-negative number", u.name, v)
			}
			*u.dst = &n
		}
	}
	int64s := []struct {
		name string
		dst  **int64
	}{{"cpu-quota", &r.CPU.Quota}, {"cpu-rt-runtime", &r.CPU.RealtimeRuntime}, {"cpu-idle", &r.CPU.Idle}, {"pids-limit", &r.Pids.Limit}}
	for _, i := range int64s {
		if v, ok := set(i.name); ok {
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil {
				return fmt.Errorf("invalid value for --%s: %q is not a number", i.name, v)
			}
			*i.dst = &n
		}
	}
	sizes := []struct {
		name string
		dst  **int64
	}{{"memory", &r.Memory.Limit}, {"memory-reservation", &r.Memory.Reservation}, {"memory-swap", &r.Memory.Swap}}
	for _, s := range sizes {
		if v, ok := set(s.name); ok {
			n := int64(-1)
			if v != "-1" {
				if n, err = units.RAMInBytes(v); err != nil {
					return fmt.Errorf("invalid value for --%s: %w", s.name, err)
				}
			}
			*s.dst = &n
		}
	}
	if v, ok := set("blkio-weight"); ok {
		n, perr := strconv.ParseUint(v, 10, 16)
		if perr != nil {
			return fmt.Errorf("invalid value for --blkio-weight: %q", v)
		}
		w := uint16(n)
		r.BlockIO.Weight = &w
	}
	if v, ok := set("cpuset-cpus"); ok {
		r.CPU.Cpus = v
	}
	if v, ok := set("cpuset-mems"); ok {
		r.CPU.Mems = v
	}
	return nil
}
