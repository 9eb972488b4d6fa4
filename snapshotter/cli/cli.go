// Package cli is the command line of berth-snapshotter: it parses the
// flags into a Config, and Run opens the store and serves it over gRPC
// (for containerd's proxy_plugins) and optionally ttrpc (for berthd) until
// the context ends.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Name is the binary's name.
const Name = "berth-snapshotter"

// Version is set at build time.
var Version = "dev"

// Defaults of the flags.
const (
	DefaultRoot    = "/var/lib/berth-snapshotter"
	DefaultAddress = "/run/berth-snapshotter/grpc.sock"
)

// Main runs the command line and returns the exit status. SIGTERM and
// SIGINT stop it gracefully.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	var (
		cfg      Config
		logLevel string
		version  bool
	)
	fs := flag.NewFlagSet(Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: %s [flags]\n\nServes containerd's snapshots API on a unix socket.\n\nFlags:\n", Name)
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(out, "  --%-15s %s", f.Name, f.Usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(out, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
	fs.StringVar(&cfg.Root, "root", DefaultRoot, "directory of the snapshots and their metadata")
	fs.StringVar(&cfg.Address, "address", DefaultAddress, "unix socket to serve gRPC on (containerd's proxy_plugins address)")
	fs.StringVar(&cfg.TTRPCAddress, "ttrpc-address", "", "unix socket to serve ttrpc on as well (for berthd); none when empty")
	fs.StringVar(&cfg.Backend, "backend", "", `"overlay" or "native" (default: overlay, or native with a warning where overlayfs does not work)`)
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&version, "version", false, "print the version and exit")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if version {
		fmt.Fprintf(os.Stdout, "%s %s\n", Name, Version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", Name, fs.Args())
		return 2
	}
	logger, err := newLogger(stderr, logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", Name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Once the first signal starts the graceful stop, the default action
	// comes back: a second signal ends the process at once.
	go func() { <-ctx.Done(); stop() }()
	if err := Run(ctx, cfg, logger); err != nil {
		logger.Error("exiting", "error", err)
		return 1
	}
	return 0
}
