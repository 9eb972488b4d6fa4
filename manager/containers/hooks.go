package containers

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/berth-project/berth/manager/network"
	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
)

// Networks finds the network a container joins. manager/networks keeps
// them: the default bridge network and those `berth network create` made.
type Networks interface {
	// Network returns the manager of the named network (a name or an ID;
	// "bridge" is the default one), or an error of kind NotFound. Host and
	// none are not networks it keeps: the container library handles them.
	Network(ctx context.Context, name string) (*network.Manager, error)
	// Attached records that container id joined the network, and
	// Detached that it left it (a network with containers on it cannot be
	// removed).
	Attached(ctx context.Context, name, id string) error
	Detached(ctx context.Context, name, id string) error
}

// Volumes keeps named and anonymous volumes. manager/volumes implements
// it.
type Volumes interface {
	// Use returns the host directory of volume name for container id,
	// creating the volume if it does not exist (an empty name creates an
	// anonymous volume with a generated name), and records the use.
	// created tells whether this call made it: an empty new volume gets
	// the image's content at its destination copied in, as docker does.
	Use(ctx context.Context, name, id string) (resolved, dir string, created bool, err error)
	// Release drops container id's use of volume name; with remove it
	// also removes the volume once no container uses it (`rm -v` of an
	// anonymous volume).
	Release(ctx context.Context, name, id string, remove bool) error
}

// endpointSetter is what a Networks may offer: to show a container's
// address and MAC in `network inspect`.
type endpointSetter interface {
	SetEndpoint(ctx context.Context, name, id string, ep *networksv1.Endpoint) error
}

// gcNetworks is what a Networks may offer: at start-up, release what
// containers no longer recorded still hold.
type gcNetworks interface {
	GC(ctx context.Context, live []string) error
}

// SingleNetwork is a Networks of one bridge network, "bridge".
func SingleNetwork(m *network.Manager) Networks { return singleNetwork{m} }

type singleNetwork struct{ m *network.Manager }

func (n singleNetwork) Network(_ context.Context, name string) (*network.Manager, error) {
	if name != "bridge" {
		return nil, fmt.Errorf("network %s not found: %w", name, errdefs.ErrNotFound)
	}
	return n.m, nil
}

func (singleNetwork) Attached(context.Context, string, string) error { return nil }
func (singleNetwork) Detached(context.Context, string, string) error { return nil }

func (n singleNetwork) GC(ctx context.Context, live []string) error { return n.m.GC(ctx, live) }
