// Package network gives berthd's containers docker's default bridge
// network, through berth's CNI plugins run with libcni: a network namespace
// per container, loopback up, a veth on a bridge with an address from
// host-local, masquerading, and published ports (portmap).
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/berth-project/berth/manager/log"
)

// Defaults of Config.
const (
	DefaultBridge = "berth0"
	DefaultSubnet = "10.209.0.0/16"
)

// cniVersion is the spec version of the configurations (1.1.0: GC).
const cniVersion = "1.1.0"

// ifName is the container's interface on the bridge network.
const ifName = "eth0"

// Config is how berthd networks its containers: docker's default bridge
// network, through CNI.
type Config struct {
	// PluginDirs are where bridge, host-local, loopback and portmap live,
	// searched in order (berthd passes the directory of its own binary first).
	PluginDirs []string
	// StateDir holds what the manager keeps: the network namespaces' bind
	// mounts (netns/<id>), libcni's cache (cache/) and host-local's
	// allocations (ipam/). All per daemon, so several daemons (with
	// bridges and subnets of their own) can run side by side.
	StateDir string
	// Bridge is the bridge's name; default DefaultBridge. It also names the
	// CNI network ("berth-" + Bridge), which keys masquerade and port rules.
	Bridge string
	// Subnet is the containers' IPv4 subnet, its first address the gateway
	// on the bridge; default DefaultSubnet.
	Subnet string
	// MTU of the veths (and of the bridge when the plugin creates it); 0
	// leaves the plugin's default.
	MTU int
}

// Manager attaches containers to the bridge network and detaches them.
// Setup and Teardown of different containers may run concurrently (the
// plugins lock what they share); calls for one container must not overlap.
//
// The plugins run in the network namespace of the calling thread, the
// host's for berthd (tests call from a throwaway namespace standing for it).
type Manager struct {
	cfg    Config
	cni    *libcni.CNIConfig
	lo     *libcni.NetworkConfigList // loopback alone
	bridge *libcni.NetworkConfigList // bridge (+host-local)
	ports  *libcni.NetworkConfigList // bridge (+host-local) then portmap
}

// Attachment is a container's place on the network.
type Attachment struct {
	// NetNSPath is the container's network namespace (a bind mount).
	NetNSPath string
	// IP is eth0's address, PrefixLen its subnet's prefix length.
	IP        net.IP
	PrefixLen int
	// Gateway is the bridge's address, the container's default route.
	Gateway net.IP
	// MAC is eth0's hardware address.
	MAC string
	// Ports are the published ports, host ports resolved.
	Ports []PortMapping
	// Bridge is the bridge's name.
	Bridge string
}

var validID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// New checks cfg, fills in its defaults, makes StateDir's directories and
// checks that the plugins are there (errdefs.ErrNotFound naming the one
// missing). A bad field wraps errdefs.ErrInvalidArgument.
func New(cfg Config) (*Manager, error) {
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if cfg.Subnet == "" {
		cfg.Subnet = DefaultSubnet
	}
	if len(cfg.PluginDirs) == 0 {
		return nil, fmt.Errorf("network: no plugin directories: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("network: no state directory: %w", errdefs.ErrInvalidArgument)
	}
	if len(cfg.Bridge) > 15 || !validID.MatchString(cfg.Bridge) {
		return nil, fmt.Errorf("network: bridge name %q (at most 15 letters, digits, '_', '.', '-'): %w", cfg.Bridge, errdefs.ErrInvalidArgument)
	}
	ip, subnet, err := net.ParseCIDR(cfg.Subnet)
	if err != nil || !ip.Equal(subnet.IP) || ip.To4() == nil {
		return nil, fmt.Errorf("network: subnet %q is not an IPv4 network address in CIDR form: %w", cfg.Subnet, errdefs.ErrInvalidArgument)
	}
	if ones, bits := subnet.Mask.Size(); bits-ones < 2 {
		return nil, fmt.Errorf("network: subnet %q is too small: %w", cfg.Subnet, errdefs.ErrInvalidArgument)
	}
	if cfg.MTU < 0 || cfg.MTU > 65535 {
		return nil, fmt.Errorf("network: MTU %d: %w", cfg.MTU, errdefs.ErrInvalidArgument)
	}
	for _, d := range []string{"netns", "cache", "ipam"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}

	m := &Manager{
		cfg: cfg,
		// An explicit exec: libcni fills a missing one in lazily, which
		// races when calls run concurrently.
		cni: libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, filepath.Join(cfg.StateDir, "cache"),
			&invoke.DefaultExec{RawExec: &invoke.RawExec{}, PluginDecoder: version.PluginDecoder{}}),
	}
	for _, typ := range []string{"loopback", "bridge", "host-local", "portmap"} {
		if _, err := invoke.FindInPath(typ, cfg.PluginDirs); err != nil {
			return nil, fmt.Errorf("network: CNI plugin %s not found in %v: %w", typ, cfg.PluginDirs, errdefs.ErrNotFound)
		}
	}

	bridge := map[string]any{
		"type":             "bridge",
		"bridge":           cfg.Bridge,
		"isGateway":        true,
		"isDefaultGateway": true,
		"ipMasq":           true,
		"hairpinMode":      true,
		"ipam": map[string]any{
			"type":    "host-local",
			"ranges":  [][]map[string]string{{{"subnet": subnet.String()}}},
			"dataDir": filepath.Join(cfg.StateDir, "ipam"),
		},
	}
	if cfg.MTU > 0 {
		bridge["mtu"] = cfg.MTU
	}
	portmap := map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}}
	name := "berth-" + cfg.Bridge
	if m.lo, err = confList("berth-loopback", map[string]any{"type": "loopback"}); err == nil {
		if m.bridge, err = confList(name, bridge); err == nil {
			m.ports, err = confList(name, bridge, portmap)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	return m, nil
}

func confList(name string, plugins ...map[string]any) (*libcni.NetworkConfigList, error) {
	b, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": name, "plugins": plugins})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

// NetNSPath is where Setup puts id's network namespace.
func (m *Manager) NetNSPath(id string) string {
	return filepath.Join(m.cfg.StateDir, "netns", id)
}

// portMapEntry is one mapping of the portMappings capability.
type portMapEntry struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

func runtimeConf(id, netns, ifname string, ports []PortMapping) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: ifname}
	if ifname == ifName {
		pm := make([]portMapEntry, 0, len(ports))
		for _, p := range ports {
			pm = append(pm, portMapEntry{HostPort: int(p.HostPort), ContainerPort: int(p.ContainerPort), Protocol: protocol(p.Protocol), HostIP: p.HostIP})
		}
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

// Setup makes a network namespace for container id (bind-mounted at
// NetNSPath(id)), brings its lo up (loopback plugin) and attaches it as eth0
// to the bridge network (bridge with host-local, then portmap when ports are
// given). A mapping without a host port gets a free one (see ParsePublish).
// A namespace already at NetNSPath(id) is errdefs.ErrAlreadyExists, an
// invalid id or mapping errdefs.ErrInvalidArgument. On error Setup undoes
// what it did (CNI DEL, the namespace), even when ctx is cancelled.
func (m *Manager) Setup(ctx context.Context, id string, ports []PortMapping) (_ *Attachment, retErr error) {
	if !validID.MatchString(id) {
		return nil, fmt.Errorf("network: container ID %q: %w", id, errdefs.ErrInvalidArgument)
	}
	ports = append([]PortMapping(nil), ports...)
	for i, p := range ports {
		if p.ContainerPort == 0 {
			return nil, fmt.Errorf("network: publish %s: container port 0: %w", p, errdefs.ErrInvalidArgument)
		}
		if pr := protocol(p.Protocol); pr != "tcp" && pr != "udp" {
			return nil, fmt.Errorf("network: publish %s: protocol %q: %w", p, p.Protocol, errdefs.ErrInvalidArgument)
		}
		if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
			return nil, fmt.Errorf("network: publish %s: host address %q: %w", p, p.HostIP, errdefs.ErrInvalidArgument)
		}
		ports[i].Protocol = protocol(p.Protocol)
	}
	if err := resolveFreePorts(ports); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}

	path := m.NetNSPath(id)
	if err := createNetNS(path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("network: container %s already has a network namespace at %s: %w", id, path, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("network: container %s: %w", id, err)
	}
	var undo []func(context.Context) error
	defer func() {
		if retErr == nil {
			return
		}
		uctx := context.WithoutCancel(ctx)
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](uctx); err != nil {
				log.L(ctx).Warn("network: undo a failed setup", "id", id, "error", err)
			}
		}
		if err := removeNetNS(path); err != nil {
			log.L(ctx).Warn("network: undo a failed setup", "id", id, "error", err)
		}
	}()

	loRT := runtimeConf(id, path, "lo", nil)
	undo = append(undo, func(ctx context.Context) error { return m.cni.DelNetworkList(ctx, m.lo, loRT) })
	if _, err := m.cni.AddNetworkList(ctx, m.lo, loRT); err != nil {
		return nil, fmt.Errorf("network: container %s: loopback: %w", id, err)
	}

	list := m.bridge
	if len(ports) > 0 {
		list = m.ports
	}
	rt := runtimeConf(id, path, ifName, ports)
	undo = append(undo, func(ctx context.Context) error { return m.cni.DelNetworkList(ctx, list, rt) })
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		return nil, fmt.Errorf("network: container %s: attach to bridge %s: %w", id, m.cfg.Bridge, err)
	}
	a, err := attachment(res)
	if err != nil {
		return nil, fmt.Errorf("network: container %s: %w", id, err)
	}
	a.NetNSPath, a.Ports, a.Bridge = path, ports, m.cfg.Bridge
	return a, nil
}

// attachment reads eth0's address, gateway and MAC address from an ADD result.
func attachment(res types.Result) (*Attachment, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI result: %w", err)
	}
	eth := -1
	for i, itf := range r.Interfaces {
		if itf.Name == ifName && itf.Sandbox != "" {
			eth = i
		}
	}
	a := &Attachment{}
	if eth >= 0 {
		a.MAC = r.Interfaces[eth].Mac
	}
	for _, ipc := range r.IPs {
		if ipc.Interface != nil && *ipc.Interface != eth || ipc.Address.IP.To4() == nil {
			continue
		}
		a.IP = ipc.Address.IP.To4()
		a.PrefixLen, _ = ipc.Address.Mask.Size()
		a.Gateway = ipc.Gateway
		break
	}
	if a.IP == nil {
		return nil, fmt.Errorf("CNI result has no IPv4 address for %s: %s", ifName, r)
	}
	return a, nil
}

// Teardown detaches container id: CNI DEL of the bridge network (with the
// configuration and runtime configuration that libcni cached at ADD, or
// without a cache the current configuration with portmap and ports), then of
// loopback, and removes the network namespace. It is idempotent: a second
// call, or one after a crash half-way through Setup or Teardown, succeeds.
// Every step runs even when another fails; the errors are joined.
func (m *Manager) Teardown(ctx context.Context, id string, ports []PortMapping) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("network: container ID %q: %w", id, errdefs.ErrInvalidArgument)
	}
	path := m.NetNSPath(id)
	netns := path
	if !isNetNS(path) { // gone, or an empty file left by a crash: DEL without a namespace
		netns = ""
	}
	var errs []error
	if err := m.del(ctx, m.ports, runtimeConf(id, netns, ifName, ports)); err != nil {
		errs = append(errs, fmt.Errorf("detach from bridge %s: %w", m.cfg.Bridge, err))
	}
	if err := m.del(ctx, m.lo, runtimeConf(id, netns, "lo", nil)); err != nil {
		errs = append(errs, fmt.Errorf("loopback: %w", err))
	}
	if err := removeNetNS(path); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network: container %s: %w", id, err)
	}
	return nil
}

// del runs CNI DEL with the cached configuration and runtime configuration
// when libcni has them, else with list and rt.
func (m *Manager) del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	cached, crt, err := m.cni.GetNetworkListCachedConfig(list, rt)
	if err == nil && cached != nil {
		if l, err := libcni.NetworkConfFromBytes(cached); err == nil {
			list, rt = l, crt
		} else {
			log.L(ctx).Warn("network: unreadable cached CNI configuration, using the current one", "id", rt.ContainerID, "error", err)
		}
	}
	return m.cni.DelNetworkList(ctx, list, rt)
}

// GC is for start-up: it runs CNI GC with the containers in live as the
// valid attachments (libcni DELs the cached attachments of others, then
// each plugin releases what no valid attachment owns: addresses,
// masquerade and port rules), and removes the network namespaces of
// containers not in live.
func (m *Manager) GC(ctx context.Context, live []string) error {
	alive := make(map[string]bool, len(live))
	eth := make([]types.GCAttachment, 0, len(live)) // not nil: an empty list releases everything
	lo := make([]types.GCAttachment, 0, len(live))
	for _, id := range live {
		alive[id] = true
		eth = append(eth, types.GCAttachment{ContainerID: id, IfName: ifName})
		lo = append(lo, types.GCAttachment{ContainerID: id, IfName: "lo"})
	}
	var errs []error
	if err := m.cni.GCNetworkList(ctx, m.ports, &libcni.GCArgs{ValidAttachments: eth}); err != nil {
		errs = append(errs, fmt.Errorf("bridge network: %w", err))
	}
	if err := m.cni.GCNetworkList(ctx, m.lo, &libcni.GCArgs{ValidAttachments: lo}); err != nil {
		errs = append(errs, fmt.Errorf("loopback: %w", err))
	}
	des, err := os.ReadDir(filepath.Join(m.cfg.StateDir, "netns"))
	if err != nil {
		errs = append(errs, err)
	}
	for _, de := range des {
		if !alive[de.Name()] {
			if err := removeNetNS(filepath.Join(m.cfg.StateDir, "netns", de.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network: gc: %w", err)
	}
	return nil
}
