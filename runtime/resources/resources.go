// Package resources merges an update of a container's resource limits (the
// OCI LinuxResources shape that `update --resources` takes) into the
// container's libcontainer cgroup configuration. Only the fields the update
// sets are changed.
package resources

import (
	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Merge applies r onto dst.
func Merge(dst *cgroups.Resources, r *specs.LinuxResources) {
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			dst.Memory = *m.Limit
			// Lifting the limit without saying anything of swap would leave a
			// swap limit below the memory limit, which the kernel refuses.
			if *m.Limit == -1 && m.Swap == nil {
				dst.MemorySwap = 0
			}
		}
		setIf(&dst.MemoryReservation, m.Reservation)
		setIf(&dst.MemorySwap, m.Swap)
		if m.Swappiness != nil {
			dst.MemorySwappiness = m.Swappiness
		}
		if m.CheckBeforeUpdate != nil {
			dst.MemoryCheckBeforeUpdate = *m.CheckBeforeUpdate
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			dst.CpuShares = *c.Shares
			dst.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(*c.Shares)
		}
		setIf(&dst.CpuQuota, c.Quota)
		setIf(&dst.CpuPeriod, c.Period)
		if c.Burst != nil {
			dst.CpuBurst = c.Burst
		}
		setIf(&dst.CpuRtRuntime, c.RealtimeRuntime)
		setIf(&dst.CpuRtPeriod, c.RealtimePeriod)
		if c.Cpus != "" {
			dst.CpusetCpus = c.Cpus
		}
		if c.Mems != "" {
			dst.CpusetMems = c.Mems
		}
		if c.Idle != nil {
			dst.CPUIdle = c.Idle
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		dst.PidsLimit = p.Limit
	}
	if b := r.BlockIO; b != nil {
		setIf(&dst.BlkioWeight, b.Weight)
		setIf(&dst.BlkioLeafWeight, b.LeafWeight)
		for _, wd := range b.WeightDevice {
			dst.BlkioWeightDevice = upsertWeight(dst.BlkioWeightDevice, wd)
		}
		dst.BlkioThrottleReadBpsDevice = upsertThrottle(dst.BlkioThrottleReadBpsDevice, b.ThrottleReadBpsDevice)
		dst.BlkioThrottleWriteBpsDevice = upsertThrottle(dst.BlkioThrottleWriteBpsDevice, b.ThrottleWriteBpsDevice)
		dst.BlkioThrottleReadIOPSDevice = upsertThrottle(dst.BlkioThrottleReadIOPSDevice, b.ThrottleReadIOPSDevice)
		dst.BlkioThrottleWriteIOPSDevice = upsertThrottle(dst.BlkioThrottleWriteIOPSDevice, b.ThrottleWriteIOPSDevice)
	}
	if len(r.Unified) > 0 {
		if dst.Unified == nil {
			dst.Unified = map[string]string{}
		}
		for k, v := range r.Unified {
			dst.Unified[k] = v
		}
	}
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func upsertWeight(devs []*cgroups.WeightDevice, wd specs.LinuxWeightDevice) []*cgroups.WeightDevice {
	for _, d := range devs {
		if d.Major == wd.Major && d.Minor == wd.Minor {
			setIf(&d.Weight, wd.Weight)
			setIf(&d.LeafWeight, wd.LeafWeight)
			return devs
		}
	}
	var w, lw uint16
	setIf(&w, wd.Weight)
	setIf(&lw, wd.LeafWeight)
	return append(devs, cgroups.NewWeightDevice(wd.Major, wd.Minor, w, lw))
}

func upsertThrottle(devs []*cgroups.ThrottleDevice, in []specs.LinuxThrottleDevice) []*cgroups.ThrottleDevice {
next:
	for _, td := range in {
		for _, d := range devs {
			if d.Major == td.Major && d.Minor == td.Minor {
				d.Rate = td.Rate
				continue next
			}
		}
		devs = append(devs, cgroups.NewThrottleDevice(td.Major, td.Minor, td.Rate))
	}
	return devs
}
