// Package networks keeps berthd's networks as docker does: the built-in
// "bridge" (the default network, on berthd's --bridge and --subnet), "host"
// and "none", and the bridge networks `berth network create` makes, each
// with a bridge ("br-" and the first 12 hex digits of its ID) and a subnet
// of its own, driven by a *network.Manager. Records live in the daemon's
// bbolt database (bucket v1/networks) as the API's messages; the container
// library finds a container's network and reports who joins and leaves
// through Network, Attached and Detached (containers.Networks).
package networks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/filters"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/network"
	networksv1 "github.com/berth-project/berth/proto/services/networks/v1"
)

// Defaults of Config.
const (
	// DefaultPool is where Create picks the subnets of networks made
	// without one.
	DefaultPool = "10.210.0.0/16"
	// DefaultPoolSize is the prefix length of the subnets picked.
	DefaultPoolSize = 24
)

// Names of the built-in networks; "default" is another name of "bridge".
const (
	Bridge = "bridge"
	Host   = "host"
	None   = "none"
)

// BridgeNameOption is the option that names a bridge network's bridge.
const BridgeNameOption = "com.docker.network.bridge.name"

// Config is how the networks are kept.
type Config struct {
	// DB holds the records (bucket v1/networks).
	DB *bolt.DB
	// PluginDirs are where the CNI plugins live (network.Config).
	PluginDirs []string
	// StateDir holds each user-defined network's state, in <StateDir>/<id>.
	StateDir string
	// DefaultStateDir is the state directory of the default network
	// ("bridge"); berthd's is <state>/network.
	DefaultStateDir string
	// Bridge and Subnet are the default network's (berthd's --bridge and
	// --subnet); empty: network.DefaultBridge, network.DefaultSubnet.
	Bridge, Subnet string
	// MTU of the veths of every network; 0: the plugin's default.
	MTU int
	// NoBridge is berthd's --no-network: no bridge network is driven (the
	// "bridge" network is not kept, and none can be created).
	NoBridge bool
	// Pool is where subnets are picked (default DefaultPool), in subnets
	// of PoolSize bits (default DefaultPoolSize).
	Pool     string
	PoolSize int
}

// Store keeps the networks. Its methods are safe for concurrent use.
type Store struct {
	cfg  Config
	db   *bolt.DB
	pool *net.IPNet

	mu   sync.Mutex
	mgrs map[string]*network.Manager // by network ID
}

var (
	bucketV1       = []byte("v1")
	bucketNetworks = []byte("networks")
)

// Open opens the store: it makes the built-in networks' records on first
// use (and brings "bridge"'s bridge and subnet up to date with cfg), and a
// manager for the default network and for each user-defined one recorded.
// A recorded network whose manager cannot be made is logged and left
// unusable rather than failing the daemon.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("networks: no database: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Bridge == "" {
		cfg.Bridge = network.DefaultBridge
	}
	if cfg.Subnet == "" {
		cfg.Subnet = network.DefaultSubnet
	}
	if cfg.Pool == "" {
		cfg.Pool = DefaultPool
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	_, pool, err := net.ParseCIDR(cfg.Pool)
	if err != nil || pool.IP.To4() == nil {
		return nil, fmt.Errorf("networks: pool %q is not an IPv4 subnet: %w", cfg.Pool, errdefs.ErrInvalidArgument)
	}
	if ones, _ := pool.Mask.Size(); cfg.PoolSize < ones || cfg.PoolSize > 30 {
		return nil, fmt.Errorf("networks: pool size /%d does not fit in %s (or is smaller than /30): %w", cfg.PoolSize, cfg.Pool, errdefs.ErrInvalidArgument)
	}
	if !cfg.NoBridge && (cfg.StateDir == "" || cfg.DefaultStateDir == "") {
		return nil, fmt.Errorf("networks: no state directory: %w", errdefs.ErrInvalidArgument)
	}
	s := &Store{cfg: cfg, db: cfg.DB, pool: pool, mgrs: map[string]*network.Manager{}}

	var recs []*networksv1.Network
	err = s.db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		b, err := v1.CreateBucketIfNotExists(bucketNetworks)
		if err != nil {
			return err
		}
		if recs, err = readAll(b); err != nil {
			return err
		}
		for _, name := range []string{Bridge, Host, None} {
			if name == Bridge && cfg.NoBridge {
				continue
			}
			i := slices.IndexFunc(recs, func(r *networksv1.Network) bool { return r.GetName() == name })
			var r *networksv1.Network
			if i < 0 {
				r = builtin(name)
				recs = append(recs, r)
			} else {
				r = recs[i]
			}
			if name == Bridge {
				_, subnet, err := net.ParseCIDR(cfg.Subnet)
				if err != nil {
					return fmt.Errorf("default network: subnet %q: %w", cfg.Subnet, errdefs.ErrInvalidArgument)
				}
				r.Ipam = &networksv1.IPAM{Driver: "default", Config: []*networksv1.IPAMConfig{{Subnet: subnet.String(), Gateway: firstAddr(subnet).String()}}}
				r.Options = map[string]string{BridgeNameOption: cfg.Bridge}
			}
			if err := put(b, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("networks: records: %w", err)
	}
	if cfg.NoBridge {
		return s, nil
	}
	for _, r := range recs {
		if r.GetDriver() != "bridge" {
			continue
		}
		m, err := s.manager(r)
		if err != nil {
			if r.GetName() == Bridge {
				return nil, err
			}
			log.L(ctx).Warn("networks: network left unusable", "network", r.GetName(), "id", r.GetId(), "error", err)
			continue
		}
		s.mgrs[r.GetId()] = m
	}
	return s, nil
}

// builtin is a new record of a built-in network.
func builtin(name string) *networksv1.Network {
	driver := map[string]string{Bridge: "bridge", Host: "host", None: "null"}[name]
	return &networksv1.Network{
		Name:    name,
		Id:      newID(),
		Created: timestamppb.Now(),
		Scope:   "local",
		Driver:  driver,
		Ipam:    &networksv1.IPAM{Driver: "default"},
	}
}

// manager makes the manager of bridge network r.
func (s *Store) manager(r *networksv1.Network) (*network.Manager, error) {
	cfg := network.Config{
		PluginDirs: s.cfg.PluginDirs,
		StateDir:   filepath.Join(s.cfg.StateDir, r.GetId()),
		Bridge:     r.GetOptions()[BridgeNameOption],
		MTU:        s.cfg.MTU,
	}
	if r.GetName() == Bridge {
		cfg.StateDir = s.cfg.DefaultStateDir
	}
	if c := r.GetIpam().GetConfig(); len(c) > 0 {
		cfg.Subnet = c[0].GetSubnet()
	}
	m, err := network.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", r.GetName(), err)
	}
	return m, nil
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// firstAddr is subnet's first address, its gateway.
func firstAddr(subnet *net.IPNet) net.IP {
	ip := slices.Clone(subnet.IP.To4())
	ip[3]++
	return ip
}

// isPredefined tells whether name is one of docker's predefined network
// names, which no user-defined network may take.
func isPredefined(name string) bool {
	return name == Bridge || name == Host || name == None || name == "default"
}

func readAll(b *bolt.Bucket) ([]*networksv1.Network, error) {
	var recs []*networksv1.Network
	err := b.ForEach(func(k, v []byte) error {
		r := &networksv1.Network{}
		if err := proto.Unmarshal(v, r); err != nil {
			return fmt.Errorf("network %s: %w", k, err)
		}
		recs = append(recs, r)
		return nil
	})
	return recs, err
}

func put(b *bolt.Bucket, r *networksv1.Network) error {
	v, err := proto.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put([]byte(r.GetId()), v)
}

func bucket(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bucketV1).Bucket(bucketNetworks) }

// records reads every record.
func (s *Store) records() (recs []*networksv1.Network, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		recs, err = readAll(bucket(tx))
		return err
	})
	return recs, err
}

// find resolves ref among recs as docker does: a full ID, then a name,
// then a unique ID prefix; "default" is "bridge".
func find(recs []*networksv1.Network, ref string) (*networksv1.Network, error) {
	if ref == "default" {
		ref = Bridge
	}
	for _, r := range recs {
		if r.GetId() == ref {
			return r, nil
		}
	}
	for _, r := range recs {
		if r.GetName() == ref {
			return r, nil
		}
	}
	var found []*networksv1.Network
	if ref != "" {
		for _, r := range recs {
			if strings.HasPrefix(r.GetId(), ref) {
				found = append(found, r)
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("network %s not found: %w", ref, errdefs.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("network %s is ambiguous (%d matches found based on ID prefix): %w", ref, len(found), errdefs.ErrInvalidArgument)
}

// update resolves ref and lets f change its record, which is then saved.
func (s *Store) update(ref string, f func(r *networksv1.Network) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := bucket(tx)
		recs, err := readAll(b)
		if err != nil {
			return err
		}
		r, err := find(recs, ref)
		if err != nil {
			return err
		}
		if err := f(r); err != nil {
			return err
		}
		return put(b, r)
	})
}

// Create makes a user-defined bridge network and returns its record. The
// bridge appears when the first container joins. Without a subnet it takes
// the first subnet of the pool that no other network and no route or
// address of the calling thread's network namespace (the host's, for
// berthd) overlaps.
func (s *Store) Create(ctx context.Context, req *networksv1.CreateRequest) (*networksv1.Network, error) {
	name := req.GetName()
	switch driver := req.GetDriver(); {
	case name == "":
		return nil, fmt.Errorf("network name is empty: %w", errdefs.ErrInvalidArgument)
	case isPredefined(name):
		return nil, fmt.Errorf("operation is not permitted on predefined %s network : %w", name, errdefs.ErrPermissionDenied)
	case driver == "host" || driver == "null":
		return nil, fmt.Errorf("only one instance of %q network is allowed: %w", driver, errdefs.ErrPermissionDenied)
	case driver != "" && driver != "bridge":
		return nil, fmt.Errorf("plugin %q not found: %w", driver, errdefs.ErrNotFound)
	case s.cfg.NoBridge:
		return nil, fmt.Errorf("berthd runs without bridge networks (--no-network): %w", errdefs.ErrFailedPrecondition)
	}
	var subnet *net.IPNet
	if req.GetSubnet() != "" {
		ip, n, err := net.ParseCIDR(req.GetSubnet())
		switch {
		case err != nil || ip.To4() == nil:
			return nil, fmt.Errorf("invalid subnet %s: berth's networks take an IPv4 subnet in CIDR form: %w", req.GetSubnet(), errdefs.ErrInvalidArgument)
		case !ip.Equal(n.IP):
			return nil, fmt.Errorf("invalid subnet %s: it should be %s: %w", req.GetSubnet(), n, errdefs.ErrInvalidArgument)
		}
		if ones, bits := n.Mask.Size(); bits-ones < 2 {
			return nil, fmt.Errorf("invalid subnet %s: too small: %w", req.GetSubnet(), errdefs.ErrInvalidArgument)
		}
		n.IP = n.IP.To4()
		subnet = n
	}
	if gw := req.GetGateway(); gw != "" {
		ip := net.ParseIP(gw)
		switch {
		case subnet == nil:
			return nil, fmt.Errorf("every ip-range or gateway must have a corresponding subnet: %w", errdefs.ErrInvalidArgument)
		case ip == nil || !subnet.Contains(ip):
			return nil, fmt.Errorf("no matching subnet for gateway %s: %w", gw, errdefs.ErrInvalidArgument)
		case !ip.Equal(firstAddr(subnet)):
			return nil, fmt.Errorf("gateway %s: berth's bridge networks take the subnet's first address (%s) as the gateway: %w", gw, firstAddr(subnet), errdefs.ErrInvalidArgument)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	var used []*net.IPNet
	for _, r := range recs {
		if r.GetName() == name {
			return nil, fmt.Errorf("network with name %s already exists: %w", name, errdefs.ErrAlreadyExists)
		}
		for _, c := range r.GetIpam().GetConfig() {
			if _, n, err := net.ParseCIDR(c.GetSubnet()); err == nil {
				if subnet != nil && overlaps(n, subnet) {
					return nil, fmt.Errorf("invalid pool request: Pool overlaps with other one on this address space (subnet %s of network %s): %w", n, r.GetName(), errdefs.ErrConflict)
				}
				used = append(used, n)
			}
		}
	}
	if subnet == nil {
		host, err := hostNets()
		if err != nil {
			return nil, fmt.Errorf("read the host's routes and addresses: %w", err)
		}
		if subnet = s.freeSubnet(append(used, host...)); subnet == nil {
			return nil, fmt.Errorf("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network (pool %s): %w", s.pool, errdefs.ErrUnavailable)
		}
	}

	r := &networksv1.Network{
		Name:    name,
		Id:      newID(),
		Created: timestamppb.Now(),
		Scope:   "local",
		Driver:  "bridge",
		Ipam:    &networksv1.IPAM{Driver: "default", Config: []*networksv1.IPAMConfig{{Subnet: subnet.String(), Gateway: firstAddr(subnet).String()}}},
		Labels:  req.GetLabels(),
	}
	r.Options = map[string]string{BridgeNameOption: "br-" + r.GetId()[:12]}
	m, err := s.manager(r)
	if err != nil {
		os.RemoveAll(filepath.Join(s.cfg.StateDir, r.GetId()))
		return nil, err
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return put(bucket(tx), r) }); err != nil {
		os.RemoveAll(filepath.Join(s.cfg.StateDir, r.GetId()))
		return nil, fmt.Errorf("network %s: record: %w", name, err)
	}
	s.mgrs[r.GetId()] = m
	log.L(ctx).Info("network created", "network", name, "id", r.GetId(), "subnet", subnet.String())
	return r, nil
}

// freeSubnet is the first subnet of the pool that overlaps none of used.
func (s *Store) freeSubnet(used []*net.IPNet) *net.IPNet {
	ones, _ := s.pool.Mask.Size()
	base := ipToUint(s.pool.IP.To4())
	step := uint32(1) << (32 - s.cfg.PoolSize)
	count := uint32(1) << (s.cfg.PoolSize - ones)
	for i := range count {
		n := &net.IPNet{IP: uintToIP(base + i*step), Mask: net.CIDRMask(s.cfg.PoolSize, 32)}
		if !slices.ContainsFunc(used, func(u *net.IPNet) bool { return overlaps(u, n) }) {
			return n
		}
	}
	return nil
}

func ipToUint(ip net.IP) uint32 {
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}

func uintToIP(v uint32) net.IP { return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4() }

func overlaps(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// hostNets are the IPv4 subnets the calling thread's network namespace
// routes to or holds addresses in, the default route left out.
func hostNets() ([]*net.IPNet, error) {
	var nets []*net.IPNet
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			continue
		}
		nets = append(nets, r.Dst)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if a.IPNet != nil && !a.IP.IsLoopback() {
			nets = append(nets, &net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask})
		}
	}
	return nets, nil
}

// List returns the networks that pass filters (docker's `network ls`
// filters: name, id, label, driver, type), sorted by name.
func (s *Store) List(ctx context.Context, fs []string) ([]*networksv1.Network, error) {
	args, err := filters.Parse(fs, "name", "id", "label", "driver", "type")
	if err != nil {
		return nil, err
	}
	for _, t := range args.Get("type") {
		if t != "builtin" && t != "custom" {
			return nil, fmt.Errorf("invalid filter: 'type'='%s': %w", t, errdefs.ErrInvalidArgument)
		}
	}
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	var out []*networksv1.Network
	for _, r := range recs {
		typ := "custom"
		if isPredefined(r.GetName()) {
			typ = "builtin"
		}
		if !args.MatchFunc("name", func(v string) bool { return strings.Contains(r.GetName(), v) }) ||
			!args.MatchFunc("id", func(v string) bool { return strings.HasPrefix(r.GetId(), v) }) ||
			!args.MatchLabels("label", r.GetLabels()) || !args.Match("driver", r.GetDriver()) || !args.Match("type", typ) {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *networksv1.Network) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

// Get returns the record of the network named, by name, ID or unique ID
// prefix.
func (s *Store) Get(ctx context.Context, ref string) (*networksv1.Network, error) {
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	return find(recs, ref)
}

// Remove removes a user-defined network that no container is on: its
// plugins' leftovers (CNI GC: masquerade rules, addresses), its bridge
// (which the bridge plugin leaves; deleted in the calling thread's network
// namespace), its state and its record.
func (s *Store) Remove(ctx context.Context, ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.records()
	if err != nil {
		return err
	}
	r, err := find(recs, ref)
	if err != nil {
		return err
	}
	return s.remove(ctx, r)
}

func (s *Store) remove(ctx context.Context, r *networksv1.Network) error {
	if isPredefined(r.GetName()) {
		return fmt.Errorf("%s is a pre-defined network and cannot be removed: %w", r.GetName(), errdefs.ErrPermissionDenied)
	}
	if len(r.GetContainers()) > 0 {
		return fmt.Errorf("error while removing network: network %s id %s has active endpoints: %w", r.GetName(), r.GetId(), errdefs.ErrFailedPrecondition)
	}
	if m := s.mgrs[r.GetId()]; m != nil {
		if err := m.GC(ctx, nil); err != nil {
			log.L(ctx).Warn("networks: release what the plugins kept", "network", r.GetName(), "error", err)
		}
	}
	if br := r.GetOptions()[BridgeNameOption]; br != "" {
		if err := deleteLink(br); err != nil {
			return fmt.Errorf("error while removing network %s: delete bridge %s: %w", r.GetName(), br, err)
		}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return bucket(tx).Delete([]byte(r.GetId())) }); err != nil {
		return fmt.Errorf("network %s: record: %w", r.GetName(), err)
	}
	delete(s.mgrs, r.GetId())
	if err := os.RemoveAll(filepath.Join(s.cfg.StateDir, r.GetId())); err != nil {
		log.L(ctx).Warn("networks: remove the network's state", "network", r.GetName(), "error", err)
	}
	log.L(ctx).Info("network removed", "network", r.GetName(), "id", r.GetId())
	return nil
}

// deleteLink deletes the link name if there is one.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		if _, ok := err.(netlink.LinkNotFoundError); ok {
			return nil
		}
		return err
	}
	return netlink.LinkDel(l)
}

// Prune removes the user-defined networks that no container is on and
// that pass filters (until, label, label!), and returns their names.
func (s *Store) Prune(ctx context.Context, fs []string) ([]string, error) {
	args, err := filters.Parse(fs, "until", "label", "label!")
	if err != nil {
		return nil, err
	}
	var until time.Time
	if vs := args.Get("until"); len(vs) > 0 {
		if until, err = filters.ParseTime(vs[0], time.Now()); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b *networksv1.Network) int { return strings.Compare(a.GetName(), b.GetName()) })
	var (
		deleted []string
		errs    []error
	)
	for _, r := range recs {
		if isPredefined(r.GetName()) || len(r.GetContainers()) > 0 || !args.MatchLabels("label", r.GetLabels()) ||
			(!until.IsZero() && !r.GetCreated().AsTime().Before(until)) {
			continue
		}
		if args.Has("label!") && slices.ContainsFunc(args.Get("label!"), func(l string) bool {
			return filters.Args{"l": {l}}.MatchLabels("l", r.GetLabels())
		}) {
			continue
		}
		if err := s.remove(ctx, r); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, r.GetName())
	}
	return deleted, errors.Join(errs...)
}

// Network returns the manager of the bridge network named (a name, an ID
// or a unique ID prefix; "default" and "bridge" are the default network).
// Host and none have none: they are InvalidArgument.
func (s *Store) Network(ctx context.Context, ref string) (*network.Manager, error) {
	r, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if r.GetDriver() != "bridge" {
		return nil, fmt.Errorf("network %s (driver %s) is not a bridge network: %w", r.GetName(), r.GetDriver(), errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mgrs[r.GetId()]
	if m == nil {
		return nil, fmt.Errorf("network %s cannot be used (see berthd's log): %w", r.GetName(), errdefs.ErrUnavailable)
	}
	return m, nil
}

// Attached records that container id joined the network named.
func (s *Store) Attached(ctx context.Context, ref, id string) error {
	return s.SetEndpoint(ctx, ref, id, nil)
}

// SetEndpoint records container id on the network named with what it
// has there (nil: an endpoint without details, or the one recorded).
func (s *Store) SetEndpoint(ctx context.Context, ref, id string, ep *networksv1.Endpoint) error {
	if id == "" {
		return fmt.Errorf("no container ID: %w", errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.update(ref, func(r *networksv1.Network) error {
		if r.Containers == nil {
			r.Containers = map[string]*networksv1.Endpoint{}
		}
		if ep == nil {
			if r.Containers[id] != nil {
				return nil
			}
			ep = &networksv1.Endpoint{}
		}
		r.Containers[id] = ep
		return nil
	})
}

// Detached records that container id left the network named. A network
// that is gone, or that the container was not on, is no error.
func (s *Store) Detached(ctx context.Context, ref, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.update(ref, func(r *networksv1.Network) error {
		delete(r.Containers, id)
		return nil
	})
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// GC is for start-up, with the containers that exist: each bridge
// network's manager releases what other containers still hold (CNI GC,
// network namespaces), and the records forget the containers that are
// gone, so that they no longer keep their networks from being removed.
func (s *Store) GC(ctx context.Context, live []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, m := range s.mgrs {
		if err := m.GC(ctx, live); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", id, err))
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucket(tx)
		recs, err := readAll(b)
		if err != nil {
			return err
		}
		for _, r := range recs {
			n := len(r.Containers)
			for id := range r.Containers {
				if !slices.Contains(live, id) {
					delete(r.Containers, id)
				}
			}
			if len(r.Containers) != n {
				if err := put(b, r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("records: %w", err))
	}
	return errors.Join(errs...)
}
