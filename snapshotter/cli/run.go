package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc"

	"github.com/berth-project/berth/internal/memtrim"
	"github.com/berth-project/berth/internal/unixsock"
	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/native"
	"github.com/berth-project/berth/snapshotter/overlay"
	"github.com/berth-project/berth/snapshotter/server"
)

// Config is what berth-snapshotter runs with.
type Config struct {
	Root         string // the store's directory
	Address      string // the gRPC socket
	TTRPCAddress string // the ttrpc socket; none when empty
	// Backend is "overlay" or "native"; empty picks overlay, or native
	// when overlayfs does not work on Root.
	Backend string
}

// stopTimeout bounds how long a graceful stop waits for calls in flight
// before the servers are closed under them.
const stopTimeout = 10 * time.Second

// Run opens the store and serves it until ctx ends or a server fails;
// then it stops serving, waits for the calls in flight (up to
// stopTimeout), and closes the store.
// idleTrim is how long the snapshotter waits after the last call before
// it trims its memory.
const idleTrim = 2 * time.Second

func Run(ctx context.Context, cfg Config, logger *slog.Logger) (retErr error) {
	if cfg.Root == "" || cfg.Address == "" {
		return errors.New("--root and --address must not be empty")
	}
	store, backend, err := openStore(ctx, cfg.Root, cfg.Backend, logger)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("close the store: %w", err))
		}
	}()
	svc := server.New(store, logger)

	gl, err := unixsock.Listen(cfg.Address)
	if err != nil {
		return err
	}
	defer gl.Close() // a no-op once the server has closed it; removes the socket either way
	// After a quiet spell the snapshotter gives back the pages start-up and
	// the last calls left mapped (see internal/memtrim).
	idle := memtrim.NewIdle(idleTrim)
	idle.Touch()
	g := grpc.NewServer(
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			idle.Touch()
			defer idle.Touch()
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			idle.Touch()
			defer idle.Touch()
			return h(srv, ss)
		}),
	)
	svc.RegisterGRPC(g)
	errc := make(chan error, 2)
	go func() { errc <- serveErr("grpc", g.Serve(gl)) }()

	var ts *ttrpc.Server
	if cfg.TTRPCAddress != "" {
		tl, err := unixsock.Listen(cfg.TTRPCAddress)
		if err != nil {
			g.Stop()
			return err
		}
		defer tl.Close()
		if ts, err = ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(
			func(ctx context.Context, u ttrpc.Unmarshaler, _ *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
				idle.Touch()
				defer idle.Touch()
				return m(ctx, u)
			})); err != nil {
			g.Stop()
			return fmt.Errorf("ttrpc server: %w", err)
		}
		svc.RegisterTTRPC(ts)
		// Calls must not be cancelled by the signal that stops the
		// server: Shutdown lets them finish.
		go func() { errc <- serveErr("ttrpc", ts.Serve(context.WithoutCancel(ctx), tl)) }()
	}
	logger.Info("serving", "root", cfg.Root, "backend", backend, "address", cfg.Address, "ttrpc_address", cfg.TTRPCAddress, "version", Version)

	select {
	case <-ctx.Done():
		logger.Info("stopping", "reason", context.Cause(ctx))
	case err = <-errc:
		logger.Error("a server failed; stopping", "error", err)
	}
	stop(g, ts, logger)
	return err
}

// serveErr names the server whose Serve returned; the error a stopped
// server returns is no failure.
func serveErr(name string, err error) error {
	if err == nil || errors.Is(err, grpc.ErrServerStopped) || errors.Is(err, ttrpc.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s server: %w", name, err)
}

// stop stops both servers gracefully, closing them when calls in flight
// outlast stopTimeout.
func stop(g *grpc.Server, ts *ttrpc.Server, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	if ts != nil {
		if err := ts.Shutdown(ctx); err != nil {
			logger.Warn("ttrpc calls still in flight; closing", "error", err)
		}
		ts.Close()
	}
	select {
	case <-done:
	case <-ctx.Done():
		logger.Warn("gRPC calls still in flight; closing")
		g.Stop()
		<-done
	}
}

// openStore opens the store with the backend asked for, or picks one.
// The backend is recorded in <root>/backend the first time, because the
// backends lay snapshots out differently: an overlay snapshot holds only
// its changes (and whiteouts), a native one a full tree, and one read as
// the other shows the wrong files. So a root keeps its backend, and the
// fallback to native only happens in a new root.
func openStore(ctx context.Context, root, want string, logger *slog.Logger) (snapshotter.Snapshotter, string, error) {
	marker := filepath.Join(root, "backend")
	recorded := ""
	switch b, err := os.ReadFile(marker); {
	case err == nil:
		recorded = strings.TrimSpace(string(b))
	case !errors.Is(err, os.ErrNotExist):
		return nil, "", fmt.Errorf("read the backend of %s: %w", root, err)
	}
	if recorded != "" && want != "" && want != recorded {
		return nil, "", fmt.Errorf("%s holds %s snapshots: --backend %s cannot use them (use another --root)", root, recorded, want)
	}
	backend := want
	if recorded != "" {
		backend = recorded
	}
	var (
		store snapshotter.Snapshotter
		err   error
	)
	switch backend {
	case "overlay":
		store, err = overlay.New(ctx, root)
	case "native":
		store, err = native.New(ctx, root)
	case "":
		backend = "overlay"
		if store, err = overlay.New(ctx, root); err != nil {
			logger.Warn("overlayfs is unusable here; using the native backend, which copies each snapshot", "root", root, "error", err)
			backend = "native"
			store, err = native.New(ctx, root)
		}
	default:
		return nil, "", fmt.Errorf("unknown backend %q: want overlay or native", backend)
	}
	if err != nil {
		return nil, "", fmt.Errorf("open the %s store in %s: %w", backend, root, err)
	}
	if recorded == "" {
		if err := os.WriteFile(marker, []byte(backend+"\n"), 0o600); err != nil {
			return nil, "", errors.Join(fmt.Errorf("record the backend of %s: %w", root, err), store.Close())
		}
	}
	return store, backend, nil
}
