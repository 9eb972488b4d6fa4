// Package state reads containers from the runtime's state directory and
// presents them in the JSON shape that runc's `state` and `list` print, which
// containerd, podman and docker parse.
package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/moby/sys/user"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// State is one container as `state` and `list --format json` print it.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

// Of reports the state of a loaded container. A stopped container has pid 0,
// as in runc, so that callers never signal a recycled pid.
func Of(c *libcontainer.Container) (State, error) {
	st, err := c.State()
	if err != nil {
		return State{}, fmt.Errorf("read state of %s: %w", c.ID(), err)
	}
	status, err := c.Status()
	if err != nil {
		return State{}, fmt.Errorf("read status of %s: %w", c.ID(), err)
	}
	pid := st.BaseState.InitProcessPid
	if status == libcontainer.Stopped {
		pid = 0
	}
	bundle, annotations := utils.Annotations(c.Config().Labels)
	return State{
		OCIVersion:  specs.Version,
		ID:          st.BaseState.ID,
		Pid:         pid,
		Status:      status.String(),
		Bundle:      bundle,
		Rootfs:      st.BaseState.Config.Rootfs,
		Created:     st.BaseState.Created,
		Annotations: annotations,
	}, nil
}

// List loads every container under root, skipping entries that vanish or are
// not containers while we read (a concurrent delete is not an error). A root
// that does not exist yet holds no containers.
func List(root string) ([]State, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	var out []State
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		c, err := libcontainer.Load(root, e.Name())
		if err != nil {
			continue
		}
		s, err := Of(c)
		if err != nil {
			continue
		}
		s.Owner = owner(info)
		out = append(out, s)
	}
	return out, nil
}

func owner(info fs.FileInfo) string {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	u, err := user.LookupUid(int(st.Uid))
	if err != nil {
		return fmt.Sprintf("#%d", st.Uid)
	}
	return u.Name
}

// Dir is the state directory of container id under root.
func Dir(root, id string) string { return filepath.Join(root, id) }
