// Command berthd is berth's daemon: it serves berth's API (proto/) over
// ttrpc on a unix socket, keeps its metadata under --root, and runs
// berth-snapshotter for its storage. The work is in manager/daemon; this
// file parses the flags and wires the services in.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/berth-project/berth/manager/builder"
	"github.com/berth-project/berth/manager/containers"
	"github.com/berth-project/berth/manager/daemon"
	"github.com/berth-project/berth/manager/images"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/network"
	"github.com/berth-project/berth/manager/networks"
	"github.com/berth-project/berth/manager/server"
	"github.com/berth-project/berth/manager/shimclient"
	"github.com/berth-project/berth/manager/version"
	"github.com/berth-project/berth/manager/volumes"
)

func main() {
	var (
		cfg             daemon.Config
		logLevel        string
		debug           bool
		shutdownTimeout int
	)
	cmd := &cobra.Command{
		Use:   "berthd [flags]",
		Short: "The berth daemon: serves berth's API on a unix socket",
		Long: "berthd serves berth's API over ttrpc on a unix socket (by default " +
			"unix:///run/berth/berthd.sock, root only), keeps its data under --root and " +
			"runs berth-snapshotter for storage.",
		Args:          cobra.NoArgs,
		Version:       fmt.Sprintf("%s, build %s", version.Version, version.GitCommit),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if debug {
				logLevel = "debug"
			}
			cfg.LogLevel = logLevel
			cfg.ShutdownTimeout = time.Duration(shutdownTimeout) * time.Second
			return run(cmd.Context(), cfg)
		},
	}
	cmd.SetVersionTemplate("berthd version {{.Version}}\n")
	f := cmd.Flags()
	f.StringVarP(&cfg.Host, "host", "H", "", "socket to serve on, unix:///path (default unix://<state>/berthd.sock)")
	f.StringVar(&cfg.Root, "root", daemon.DefaultRoot, "directory of persistent state: metadata, content, snapshots")
	f.StringVar(&cfg.State, "state", daemon.DefaultState, "directory of runtime state: sockets, pid file")
	f.StringVarP(&cfg.Group, "group", "G", "", "group (name or ID) that may use the socket besides root")
	f.StringVar(&cfg.SnapshotterAddress, "snapshotter-address", "", "socket of a snapshotter already serving containerd's snapshots API (default: start berth-snapshotter)")
	f.StringArrayVar(&cfg.InsecureRegistries, "insecure-registry", nil, "registry (host[:port] or CIDR) to reach over plain http; repeatable")
	f.StringVar(&cfg.Bridge, "bridge", network.DefaultBridge, "bridge of the default network")
	f.StringVar(&cfg.Subnet, "subnet", network.DefaultSubnet, "subnet of the default network (the bridge takes its first address)")
	f.BoolVar(&cfg.NoNetwork, "no-network", false, "run without the bridge network: containers get --network host or none")
	f.StringVar(&cfg.CgroupParent, "cgroup-parent", "/berth", "cgroup that holds the containers' cgroups")
	f.StringVarP(&logLevel, "log-level", "l", "info", "log level: debug, info, warn or error")
	f.BoolVarP(&debug, "debug", "D", false, "log at debug level")
	f.IntVar(&shutdownTimeout, "shutdown-timeout", int(daemon.DefaultShutdownTimeout/time.Second), "seconds calls in flight may take to finish on shutdown")

	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		os.Exit(1)
	}
}

// run runs the daemon until SIGTERM or SIGINT, then shuts it down in
// order. A second signal ends the process at once.
func run(ctx context.Context, cfg daemon.Config) error {
	logger, err := log.New(os.Stderr, cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	cfg.Output = os.Stderr // the snapshotter logs beside the daemon
	ctx = log.WithLogger(ctx, logger)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()

	d, err := daemon.New(ctx, cfg)
	if err != nil {
		return err
	}
	// The image library keeps its content under <root>/images and its
	// records in the daemon's database.
	// Images that containers were made from stay: the container library
	// opens after the image library, before anything is served.
	var ctrs *containers.Service
	imgs, err := images.Open(ctx, images.Config{
		InUse: func(ctx context.Context, id digest.Digest) bool {
			return ctrs != nil && ctrs.InUse(ctx, id.String())
		},
		Root:               filepath.Join(d.Config().Root, "images"),
		DB:                 d.DB(),
		Snapshotter:        d.Snapshots().Snapshotter(),
		InsecureRegistries: d.InsecureRegistries(),
		Events:             server.ImageEvents(d.Events()),
	})
	if err != nil {
		return errors.Join(fmt.Errorf("open the image store: %w", err), d.Close(ctx))
	}
	vols, err := volumes.Open(ctx, volumes.Config{
		Root:   filepath.Join(d.Config().Root, "volumes"),
		DB:     d.DB(),
		Events: d.Events(),
	})
	if err != nil {
		return errors.Join(fmt.Errorf("open the volume store: %w", err), imgs.Close(), d.Close(ctx))
	}
	nets, err := openNetworks(ctx, d)
	if err != nil {
		return errors.Join(err, imgs.Close(), d.Close(ctx))
	}
	ctrs, shimEvents, err := openContainers(ctx, d, imgs, vols, nets)
	if err != nil {
		return errors.Join(err, imgs.Close(), d.Close(ctx))
	}
	serveErr := d.Serve(ctx, daemon.Services{
		Images:     server.NewImages(imgs, d.Snapshots().Backend()),
		Containers: server.NewContainers(ctrs),
		Volumes:    server.NewVolumes(vols),
		Networks:   server.NewNetworks(nets),
		Build:      server.NewBuild(builder.New(imgs, ctrs, filepath.Join(d.Config().Root, "build"))),
		Extra:      shimEvents.Register,
		Stopping:   ctrs.Stopping,
	})
	// The container and image services go before the daemon closes the
	// database and the snapshot store under them; containers keep running
	// in their shims.
	if err := errors.Join(serveErr, ctrs.Close(), imgs.Close(), d.Close(ctx)); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// openNetworks opens the networks: the default bridge (--bridge,
// --subnet) and those `berth network create` made, through the CNI
// plugins beside berthd or in /opt/cni/bin.
func openNetworks(ctx context.Context, d *daemon.Daemon) (*networks.Store, error) {
	cfg := d.Config()
	dirs := []string{"/opt/cni/bin"}
	if self, err := os.Executable(); err == nil {
		dirs = append([]string{filepath.Dir(self)}, dirs...)
	}
	nets, err := networks.Open(ctx, networks.Config{
		DB:              d.DB(),
		PluginDirs:      dirs,
		StateDir:        filepath.Join(cfg.State, "networks"),
		DefaultStateDir: filepath.Join(cfg.State, "network"),
		Bridge:          cfg.Bridge,
		Subnet:          cfg.Subnet,
		NoBridge:        cfg.NoNetwork,
	})
	if err != nil {
		return nil, fmt.Errorf("the networks (run with --no-network to go without): %w", err)
	}
	return nets, nil
}

// openContainers opens the container library: shims and the runtime from
// beside berthd (else PATH).
func openContainers(ctx context.Context, d *daemon.Daemon, imgs *images.Service, vols *volumes.Service, nets *networks.Store) (*containers.Service, *shimclient.Events, error) {
	cfg := d.Config()
	shimBin, err := siblingBinary("containerd-shim-berth-v2")
	if err != nil {
		return nil, nil, err
	}
	runtimeBin, err := siblingBinary("berth-runtime")
	if err != nil {
		return nil, nil, err
	}
	// Without the bridge network, containers get host or none only.
	var ctrNets containers.Networks
	if !cfg.NoNetwork {
		ctrNets = nets
	}
	var ctrs *containers.Service
	shimEvents := shimclient.NewEvents(func(ctx context.Context, ns, topic string, ev proto.Message) {
		if ctrs != nil {
			ctrs.ShimEvent(ctx, ns, topic, ev)
		}
	})
	ctrs, err = containers.Open(ctx, containers.Config{
		Root:         filepath.Join(cfg.Root, "containers"),
		State:        filepath.Join(cfg.State, "containers"),
		DB:           d.DB(),
		Images:       imgs,
		Snapshotter:  d.Snapshots().Snapshotter(),
		Networks:     ctrNets,
		Volumes:      vols,
		Events:       d.Events(),
		CgroupParent: cfg.CgroupParent,
		Shim: shimclient.Config{
			Binary:        shimBin,
			Namespace:     "berth",
			Address:       d.Socket(),
			RuntimeBinary: runtimeBin,
			RuntimeRoot:   filepath.Join(cfg.State, "runtime"),
			Debug:         cfg.LogLevel == "debug",
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open the container store: %w", err)
	}
	return ctrs, shimEvents, nil
}

// siblingBinary finds one of berth's binaries beside the running one,
// else on PATH.
func siblingBinary(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is neither beside berthd nor on PATH: install berth (make install): %w", name, err)
	}
	return p, nil
}
