package containers

import (
	"context"
	"encoding/json"
	"fmt"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/berth-project/berth/manager/ocispec"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// Update changes a container's limits and restart policy: in its record,
// and in its cgroup at once when it runs.
func (s *Service) Update(ctx context.Context, req *containersv1.UpdateRequest) error {
	id, err := s.Resolve(req.GetId())
	if err != nil {
		return err
	}
	c := s.track(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := s.record(id)
	if err != nil {
		return err
	}
	cfg := r.GetConfig()
	if req.Memory != nil {
		cfg.Memory = req.GetMemory()
	}
	if req.MemorySwap != nil {
		cfg.MemorySwap = req.GetMemorySwap()
	}
	if req.NanoCpus != nil {
		cfg.NanoCpus = req.GetNanoCpus()
	}
	if req.CpuShares != nil {
		cfg.CpuShares = req.GetCpuShares()
	}
	if req.PidsLimit != nil {
		cfg.PidsLimit = max(req.GetPidsLimit(), 0) // docker's -1 and 0: unlimited
	}
	if req.RestartPolicy != nil {
		if _, err := parseRestartPolicy(req.GetRestartPolicy()); err != nil {
			return err
		}
		if cfg.GetAutoRemove() && req.GetRestartPolicy() != "" && req.GetRestartPolicy() != "no" {
			return fmt.Errorf("restart policy cannot be updated because AutoRemove is enabled for the container: %w", errdefs.ErrInvalidArgument)
		}
		cfg.RestartPolicy = req.GetRestartPolicy()
	}
	res, err := ocispec.Resources(ocispec.Options{
		Memory: cfg.GetMemory(), MemorySwap: cfg.GetMemorySwap(), NanoCPUs: cfg.GetNanoCpus(),
		CPUShares: cfg.GetCpuShares(), PidsLimit: cfg.GetPidsLimit(),
	})
	if err != nil {
		return err
	}
	if req.PidsLimit != nil && cfg.PidsLimit == 0 {
		// Leaving the pids out would keep the old limit: -1 lifts it
		// (pids.max "max"), as runc's update does.
		unlimited := int64(-1)
		res.Pids = &specs.LinuxPids{Limit: &unlimited}
	}
	if c.run != nil {
		data, err := json.Marshal(res)
		if err != nil {
			return err
		}
		if _, err := c.run.shim.Task.Update(ctx, &taskapi.UpdateTaskRequest{
			ID:        id,
			Resources: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", Value: data},
		}); err != nil {
			return fmt.Errorf("update %s: %w", r.GetName(), wireError(err))
		}
	}
	rec, err := s.update(id, func(r *containersv1.Container) { r.Config = cfg })
	if err != nil {
		return err
	}
	s.publish(ctx, "update", rec, nil)
	return nil
}
