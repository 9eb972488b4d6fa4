package cli

import (
	"context"

	"github.com/docker/go-units"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// UpdateOptions are the flags of `berth update`; nil fields were not given.
type UpdateOptions struct {
	Memory, MemorySwap *string
	CPUs               *float64
	CPUShares          *int64
	PidsLimit          *int64
	Restart            *string
}

// request turns the flags into an update of container id.
func (o UpdateOptions) request(id string) (*containersv1.UpdateRequest, error) {
	req := &containersv1.UpdateRequest{Id: id}
	size := func(flag string, v *string) (*int64, error) {
		if v == nil {
			return nil, nil
		}
		if flag == "--memory-swap" && *v == "-1" {
			n := int64(-1)
			return &n, nil
		}
		n, err := units.RAMInBytes(*v)
		if err != nil {
			return nil, createUsage("invalid argument %q for %q flag: %v", *v, flag, err)
		}
		return &n, nil
	}
	var err error
	if req.Memory, err = size("--memory", o.Memory); err != nil {
		return nil, err
	}
	if req.MemorySwap, err = size("--memory-swap", o.MemorySwap); err != nil {
		return nil, err
	}
	if o.CPUs != nil {
		if *o.CPUs < 0 {
			return nil, createUsage("invalid argument %v for \"--cpus\" flag: value must be positive", *o.CPUs)
		}
		n := int64(*o.CPUs * 1e9)
		req.NanoCpus = &n
	}
	req.CpuShares, req.PidsLimit = o.CPUShares, o.PidsLimit
	if o.Restart != nil {
		if err := validRestart(*o.Restart); err != nil {
			return nil, err
		}
		req.RestartPolicy = o.Restart
	}
	return req, nil
}

// Update changes containers' limits and restart policy as `docker update`
// does, printing each name.
func (cli *CLI) Update(ctx context.Context, names []string, opts UpdateOptions) error {
	if _, err := opts.request(""); err != nil {
		return err
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	return cli.eachContainer(names, func(n string) error {
		req, _ := opts.request(n)
		_, err := c.Containers().Update(ctx, req)
		return err
	})
}
