// Package snapshots gives berthd its snapshot store: a berth-snapshotter
// that berthd starts and supervises (restarted when it dies, stopped when
// berthd stops), or one already serving on a socket the user names.
// Either way berthd reaches it through snapshotter/proxy over gRPC, the
// containerd snapshots API that any such store serves, whose connection
// comes back by itself when the store does.
package snapshots

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/berth-project/berth/manager/events"
	"github.com/berth-project/berth/manager/log"
	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/proxy"
)

// BinaryName is the snapshotter's executable.
const BinaryName = "berth-snapshotter"

// BackendRemote is the backend reported for a store berthd did not start:
// which backend it runs is its own business.
const BackendRemote = "remote"

// Config says which store to use.
type Config struct {
	// Address is the unix socket of a store that already serves the
	// containerd snapshots API over gRPC. When set, berthd starts none and
	// the fields below are not used.
	Address string

	// Binary is the berth-snapshotter to start; empty looks beside the
	// running executable first (the one built with it), then on PATH.
	Binary string
	// Root is the started store's --root, Socket its --address.
	Root   string
	Socket string
	// LogLevel is passed on as --log-level.
	LogLevel string
	// Output receives the started store's log (its stdout and stderr).
	Output io.Writer
	// Events receives a snapshotter start or die event each time the
	// started store starts or dies. May be nil.
	Events events.Publisher
}

// Store is the snapshot store berthd uses: the process (when berthd
// started it) and the connection to it.
type Store struct {
	sn      *proxy.Snapshotter
	address string
	root    string // "" when berthd did not start it
	version string
	conn    *grpc.ClientConn
	sup     *supervisor // nil when berthd did not start it
}

// Open starts the store (or connects to the one at cfg.Address) and
// returns once it serves.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Address != "" {
		return connect(ctx, cfg.Address, "", "", nil)
	}
	if cfg.Root == "" || cfg.Socket == "" {
		return nil, errors.New("snapshotter: a root and a socket are needed to start one")
	}
	bin, err := findBinary(cfg.Binary)
	if err != nil {
		return nil, err
	}
	version := binaryVersion(ctx, bin)
	sup := newSupervisor(cfg, bin)
	if err := sup.start(ctx); err != nil {
		return nil, err
	}
	s, err := connect(ctx, cfg.Socket, cfg.Root, version, sup)
	if err != nil {
		return nil, errors.Join(err, sup.stop(ctx))
	}
	// After a restart the connection's backoff may have grown while the
	// socket was gone: try again at once.
	sup.onRestart = s.conn.ResetConnectBackoff
	// Supervision outlives the start-up call: a signal that cancels ctx
	// must not stop restarts while berthd shuts down in order.
	go sup.run(log.With(context.WithoutCancel(ctx), "component", BinaryName))
	return s, nil
}

func connect(ctx context.Context, address, root, version string, sup *supervisor) (*Store, error) {
	conn, err := grpc.NewClient("unix://"+address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A restarted store is back within a second or two: keep the
		// reconnection attempts that close together.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("snapshotter at %s: %w", address, err)
	}
	s := &Store{
		sn:      proxy.NewGRPC(conn),
		address: address,
		root:    root,
		version: version,
		conn:    conn,
		sup:     sup,
	}
	if sup == nil {
		// A store berthd did not start must answer now, or the user has
		// named the wrong socket: better to say so at start-up than at the
		// first pull.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.sn.Walk(cctx, func(context.Context, snapshotter.Info) error { return errStopWalk }); err != nil && !errors.Is(err, errStopWalk) {
			conn.Close()
			return nil, fmt.Errorf("snapshotter at %s does not answer: %w", address, err)
		}
	}
	return s, nil
}

var errStopWalk = errors.New("stop")

// Snapshotter is the store's API. Its Close does nothing: Store.Close
// ends the connection.
func (s *Store) Snapshotter() snapshotter.Snapshotter { return s.sn }

// Address is the store's socket.
func (s *Store) Address() string { return s.address }

// Root is the started store's directory; empty for one berthd did not
// start.
func (s *Store) Root() string { return s.root }

// Version is the started store's version; empty when not known.
func (s *Store) Version() string { return s.version }

// Supervised reports whether berthd started the store.
func (s *Store) Supervised() bool { return s.sup != nil }

// PID is the process of the started store, 0 when it is not running or
// berthd did not start it.
func (s *Store) PID() int {
	if s.sup == nil {
		return 0
	}
	return s.sup.pid()
}

// Backend names how the store keeps snapshots: "overlay" or "native" for
// the started store (it records its backend in its root), BackendRemote
// for another.
func (s *Store) Backend() string {
	if s.root == "" {
		return BackendRemote
	}
	b, err := os.ReadFile(filepath.Join(s.root, "backend"))
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// Close disconnects, and stops the started store: SIGTERM, then SIGKILL
// when it has not exited by the time ctx ends.
func (s *Store) Close(ctx context.Context) error {
	err := s.conn.Close()
	if s.sup != nil {
		err = errors.Join(err, s.sup.stop(ctx))
		select {
		case <-s.sup.done:
		case <-ctx.Done():
		}
	}
	return err
}
