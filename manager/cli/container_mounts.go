package cli

import (
	"github.com/berth-project/berth/manager/network"
	"github.com/berth-project/berth/manager/ocispec"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// parseMounts reads -v, --mount and --tmpfs with the daemon's own parsers,
// so the CLI rejects what berthd would.
func parseMounts(volumes, mounts, tmpfs []string) ([]*containersv1.Mount, error) {
	var out []*containersv1.Mount
	add := func(m ocispec.Mount, volume string) {
		pm := &containersv1.Mount{Type: m.Type, Source: m.Source, Destination: m.Destination, ReadOnly: m.ReadOnly, Options: m.Options}
		if volume != "" {
			pm.Type, pm.Source = "volume", volume
		}
		if m.NoCopy {
			pm.Options = append(pm.Options, "nocopy")
		}
		out = append(out, pm)
	}
	for _, v := range volumes {
		m, name, err := ocispec.ParseVolume(v)
		if err != nil {
			return nil, err
		}
		add(m, name)
	}
	for _, v := range mounts {
		m, name, err := ocispec.ParseMount(v)
		if err != nil {
			return nil, err
		}
		add(m, name)
	}
	for _, v := range tmpfs {
		m, err := ocispec.ParseTmpfs(v)
		if err != nil {
			return nil, err
		}
		add(m, "")
	}
	return out, nil
}

// parsePorts reads -p as berthd's network package does.
func parsePorts(specs []string) ([]*containersv1.PortBinding, error) {
	ms, err := network.ParsePublish(specs)
	if err != nil {
		return nil, err
	}
	var out []*containersv1.PortBinding
	for _, m := range ms {
		out = append(out, &containersv1.PortBinding{HostIp: m.HostIP, HostPort: uint32(m.HostPort), ContainerPort: uint32(m.ContainerPort), Protocol: m.Protocol})
	}
	return out, nil
}
