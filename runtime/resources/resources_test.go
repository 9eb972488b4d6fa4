package resources

import (
	"testing"

	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

func TestMergeChangesOnlyWhatIsSet(t *testing.T) {
	dst := &cgroups.Resources{Memory: 100, CpuShares: 512, CpusetCpus: "0", PidsLimit: ptr[int64](10), BlkioWeight: 300}
	Merge(dst, &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr[int64](200)},
		Pids:   &specs.LinuxPids{Limit: ptr[int64](20)},
		CPU:    &specs.LinuxCPU{},
	})
	if dst.Memory != 200 || *dst.PidsLimit != 20 {
		t.Errorf("set fields not applied: memory=%d pids=%d", dst.Memory, *dst.PidsLimit)
	}
	if dst.CpuShares != 512 || dst.CpusetCpus != "0" || dst.BlkioWeight != 300 {
		t.Errorf("unset fields changed: %+v", dst)
	}
}

func TestMergeCPUAndDevices(t *testing.T) {
	dst := &cgroups.Resources{}
	Merge(dst, &specs.LinuxResources{
		CPU: &specs.LinuxCPU{Shares: ptr[uint64](1024), Quota: ptr[int64](50000), Period: ptr[uint64](100000), Cpus: "0-1"},
		BlockIO: &specs.LinuxBlockIO{
			ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1000}},
		},
	})
	if dst.CpuShares != 1024 || dst.CpuWeight == 0 || dst.CpuQuota != 50000 || dst.CpuPeriod != 100000 || dst.CpusetCpus != "0-1" {
		t.Errorf("cpu not merged: %+v", dst)
	}
	Merge(dst, &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
		ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 2000}},
	}})
	if len(dst.BlkioThrottleReadBpsDevice) != 1 || dst.BlkioThrottleReadBpsDevice[0].Rate != 2000 {
		t.Errorf("throttle device not updated in place: %+v", dst.BlkioThrottleReadBpsDevice)
	}
}

func TestUnlimitedMemoryResetsSwap(t *testing.T) {
	dst := &cgroups.Resources{Memory: 100, MemorySwap: 200}
	Merge(dst, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](-1)}})
	if dst.Memory != -1 || dst.MemorySwap != 0 {
		t.Errorf("memory=%d swap=%d, want -1 and 0", dst.Memory, dst.MemorySwap)
	}
}
