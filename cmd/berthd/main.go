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
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/daemon"
	"github.com/berth-project/berth/manager/images"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/manager/server"
	"github.com/berth-project/berth/manager/version"
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
	imgs, err := images.Open(ctx, images.Config{
		Root:               filepath.Join(d.Config().Root, "images"),
		DB:                 d.DB(),
		Snapshotter:        d.Snapshots().Snapshotter(),
		InsecureRegistries: d.InsecureRegistries(),
		Events:             server.ImageEvents(d.Events()),
	})
	if err != nil {
		return errors.Join(fmt.Errorf("open the image store: %w", err), d.Close(ctx))
	}
	serveErr := d.Serve(ctx, daemon.Services{Images: server.NewImages(imgs, d.Snapshots().Backend())})
	// The image service goes before the daemon closes the database and
	// the snapshot store under it.
	if err := errors.Join(serveErr, imgs.Close(), d.Close(ctx)); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}
