// Package shimclient starts, connects to and cleans up after shims
// (containerd-shim-berth-v2, or any shim v2 binary) exactly as containerd
// 1.7 to 2.2 does: the `start` and `delete` subcommands with containerd's
// flags, environment and stdin, the bootstrap reply, and the
// containerd.task.v2.Task ttrpc service with the namespace in every
// request's metadata. It talks to the shim binary over its protocol only:
// it does not import the shim's packages.
package shimclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// NamespaceKey is the ttrpc metadata key containerd puts the namespace
// under in every request to a shim.
const NamespaceKey = "containerd-namespace-ttrpc"

// runcOptionsType is the type URL containerd gives runc's options: the
// message's full name, without a prefix (typeurl's form).
const runcOptionsType = "containerd.runc.v1.Options"

// publishBinary is passed as -publish-binary. containerd passes its own
// path, for shims that publish events by running `containerd publish`;
// shims since containerd 1.6 forward events over ttrpc to TTRPC_ADDRESS
// instead, and berthd has no publish command, so the flag names a program
// that does nothing and fails, should a shim ever run it.
const publishBinary = "/bin/false"

// Config is how the manager starts shims.
type Config struct {
	// Binary is the path of the shim (containerd-shim-berth-v2).
	Binary string
	// Namespace is the namespace of the containers (e.g. "berth"); the
	// shim adds it to the runtime's state root.
	Namespace string
	// Address is the manager's ttrpc socket path, where it serves
	// containerd.services.events.ttrpc.v1.Events (see Events): passed
	// as -address, TTRPC_ADDRESS and GRPC_ADDRESS. The shim names its
	// own socket after it (and the namespace and the container).
	Address string
	// RuntimeBinary is the OCI runtime (runc options' BinaryName), e.g.
	// berth-runtime; empty means the shim's default.
	RuntimeBinary string
	// RuntimeRoot is the runtime's state root (runc options' Root); empty
	// means the shim's default.
	RuntimeRoot string
	// Debug makes the shim log debug messages (-debug).
	Debug bool
	// Log receives the shim's log: what `start` and `delete` write to
	// stderr and what the running shim writes to the "log" FIFO in the
	// bundle. Nil means <bundle>/shim.log. Writes come from a goroutine
	// per shim: a Writer shared by shims must be safe for concurrent use.
	Log io.Writer
}

// RuntimeOptions are runc's options for cfg's runtime (BinaryName, Root)
// as containerd sends them: on start's stdin, and as CreateTaskRequest's
// Options, where the shim reads which runtime to run.
func (cfg Config) RuntimeOptions() (*anypb.Any, error) {
	v, err := proto.Marshal(&options.Options{BinaryName: cfg.RuntimeBinary, Root: cfg.RuntimeRoot})
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: runcOptionsType, Value: v}, nil
}

// Shim is a connection to a running shim serving one container (or, for a
// pod, several).
type Shim struct {
	// Task is the shim's containerd.task.v2.Task service. Every call
	// carries the namespace in its metadata, as containerd's do.
	Task taskapi.TTRPCTaskService
	// Address is the shim's socket, as its bootstrap reply and
	// <bundle>/address name it (unix://…).
	Address string

	client *ttrpc.Client
	log    io.Closer // the bundle's log FIFO, copied to Config.Log
}

// Start runs `<Binary> -namespace NS -address ADDR -publish-binary
// /bin/false -id ID -bundle BUNDLE start` in bundle as containerd 1.7 does
// (with -debug before -id if cfg.Debug), runc's options on stdin, reads
// the bootstrap reply and connects to the shim it names. Before that it
// makes the "log" FIFO in the bundle, which the shim writes its log to,
// and copies it to cfg.Log until the shim exits or the Shim is closed.
func Start(ctx context.Context, cfg Config, id, bundle string) (*Shim, error) {
	if cfg.Binary == "" || cfg.Namespace == "" || cfg.Address == "" || id == "" || bundle == "" {
		return nil, fmt.Errorf("shim start: binary, namespace, address, id and bundle are required: %w", errdefs.ErrInvalidArgument)
	}
	opts, err := cfg.RuntimeOptions()
	if err != nil {
		return nil, err
	}
	stdin, err := proto.Marshal(opts)
	if err != nil {
		return nil, err
	}
	logw, err := openLog(cfg, bundle)
	if err != nil {
		return nil, err
	}
	logFifo, err := copyShimLog(ctx, bundle, logw)
	if err != nil {
		logw.Close()
		return nil, err
	}
	cmd := command(ctx, cfg, id, bundle, "start")
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, logw)
	if err := cmd.Run(); err != nil {
		logFifo.Close()
		return nil, commandError(cfg.Binary, "start", err, stderr.Bytes())
	}
	addr, err := parseReply(stdout.Bytes())
	if err != nil {
		logFifo.Close()
		return nil, fmt.Errorf("%s start: %w", cfg.Binary, err)
	}
	s, err := connect(ctx, cfg.Namespace, addr)
	if err != nil {
		logFifo.Close()
		return nil, fmt.Errorf("%s start: %w", cfg.Binary, err)
	}
	s.log = logFifo
	return s, nil
}

// Connect reconnects to the shim whose address is recorded in
// <bundle>/address, for a manager that restarted. cfg is what the shim was
// started with: its Namespace goes in every request (containerd reads it
// from the bundle's path), and the shim's log is copied to cfg.Log again.
// It is NotFound when the bundle has no address or the shim is gone.
func Connect(ctx context.Context, cfg Config, bundle string) (*Shim, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "address"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("shim of bundle %s: no address: %w", bundle, errdefs.ErrNotFound)
		}
		return nil, err
	}
	addr := string(bytes.TrimSpace(b))
	if addr == "" {
		return nil, fmt.Errorf("shim of bundle %s: empty address: %w", bundle, errdefs.ErrNotFound)
	}
	s, err := connect(ctx, cfg.Namespace, addr)
	if err != nil {
		return nil, fmt.Errorf("shim of bundle %s: %w", bundle, err)
	}
	if logw, err := openLog(cfg, bundle); err == nil {
		if s.log, err = copyShimLog(ctx, bundle, logw); err != nil {
			logw.Close()
		}
	}
	return s, nil
}

// Close closes the connection; the shim keeps running.
func (s *Shim) Close() error {
	if s.log != nil {
		s.log.Close()
	}
	err := s.client.Close()
	if errors.Is(err, ttrpc.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown asks the shim to exit (Task.Shutdown, as containerd sends it
// after deleting the container id) and closes the connection. The shim
// exits only once it serves no container (a pod's shim serves several). A
// shim that already went is no error.
func (s *Shim) Shutdown(ctx context.Context, id string) error {
	_, err := s.Task.Shutdown(ctx, &taskapi.ShutdownRequest{ID: id})
	cerr := s.Close()
	if err != nil && !gone(err) {
		return fmt.Errorf("shim %s: shutdown: %w", s.Address, errgrpc.ToNative(err))
	}
	return cerr
}

// Cleanup runs `<Binary> … -id ID -bundle BUNDLE delete` for a shim that
// died, as containerd does: the shim binary has the runtime force-delete the
// container and unmounts its rootfs. It returns the DeleteResponse the
// command prints (the exit status and time it reports for the container).
func Cleanup(ctx context.Context, cfg Config, id, bundle string) (*taskapi.DeleteResponse, error) {
	if cfg.Binary == "" || cfg.Namespace == "" || id == "" || bundle == "" {
		return nil, fmt.Errorf("shim delete: binary, namespace, id and bundle are required: %w", errdefs.ErrInvalidArgument)
	}
	var logw io.WriteCloser = &shimLog{w: io.Discard}
	if l, err := openLog(cfg, bundle); err == nil { // the bundle may be gone
		logw = l
	}
	defer logw.Close()
	cmd := command(ctx, cfg, id, bundle, "delete")
	if _, err := os.Stat(bundle); err != nil {
		cmd.Dir = os.TempDir() // as containerd does when the bundle is gone
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, logw)
	if err := cmd.Run(); err != nil {
		return nil, commandError(cfg.Binary, "delete", err, stderr.Bytes())
	}
	var resp taskapi.DeleteResponse
	if err := proto.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("%s delete: reply %q is no DeleteResponse: %w", cfg.Binary, stdout.Bytes(), err)
	}
	return &resp, nil
}

// command is the shim binary run for subcommand as containerd 1.7 runs it:
// in the bundle, in a process group of its own (a signal to the manager's
// group does not reach it), with containerd's environment.
func command(ctx context.Context, cfg Config, id, bundle, subcommand string) *exec.Cmd {
	args := []string{"-namespace", cfg.Namespace, "-address", cfg.Address, "-publish-binary", publishBinary}
	if cfg.Debug {
		args = append(args, "-debug")
	}
	args = append(args, "-id", id, "-bundle", bundle, subcommand)
	cmd := exec.CommandContext(ctx, cfg.Binary, args...)
	cmd.Dir = bundle
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, k := range []string{"TTRPC_ADDRESS=", "GRPC_ADDRESS=", "NAMESPACE=", "MAX_SHIM_VERSION=", "GOMAXPROCS="} {
			if strings.HasPrefix(kv, k) {
				return true
			}
		}
		return false
	})
	cmd.Env = append(cmd.Env,
		"GOMAXPROCS=2", // containerd's
		"TTRPC_ADDRESS="+cfg.Address,
		"GRPC_ADDRESS="+cfg.Address,
		"NAMESPACE="+cfg.Namespace,
		"MAX_SHIM_VERSION=2",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// commandError names the binary and the subcommand and shows its stderr.
// A missing binary is NotFound.
func commandError(binary, subcommand string, err error, stderr []byte) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("shim %s: %w (%w)", subcommand, err, errdefs.ErrNotFound)
	}
	if msg := bytes.TrimSpace(stderr); len(msg) > 0 {
		return fmt.Errorf("%s %s: %w: %s", binary, subcommand, err, msg)
	}
	return fmt.Errorf("%s %s: %w", binary, subcommand, err)
}

// parseReply reads start's reply as containerd 1.7 to 2.2 does: JSON
// {"version":2,"address":…,"protocol":"ttrpc"}, or, from an older shim,
// the bare address.
func parseReply(out []byte) (string, error) {
	out = bytes.TrimSpace(out)
	var r struct {
		Version  int    `json:"version"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.Version < 2 {
		r.Address, r.Protocol = string(out), "ttrpc"
	}
	if r.Version > 2 {
		return "", fmt.Errorf("unsupported shim version %d: %w", r.Version, errdefs.ErrNotImplemented)
	}
	if r.Protocol != "ttrpc" {
		return "", fmt.Errorf("unsupported shim protocol %q: %w", r.Protocol, errdefs.ErrNotImplemented)
	}
	if r.Address == "" {
		return "", fmt.Errorf("empty bootstrap reply")
	}
	return r.Address, nil
}

// connect dials the shim at address (unix://path or a path) and makes the
// task client that adds namespace to every request.
func connect(ctx context.Context, namespace, address string) (*Shim, error) {
	path, ok := strings.CutPrefix(address, "unix://")
	if !ok && strings.Contains(address, "://") {
		return nil, fmt.Errorf("shim address %q: only unix:// is supported: %w", address, errdefs.ErrNotImplemented)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("shim at %s is gone: %w (%w)", address, err, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("dial shim: %w", err)
	}
	client := ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(withNamespace(namespace)))
	return &Shim{Task: taskapi.NewTTRPCTaskClient(client), Address: "unix://" + path, client: client}, nil
}

// withNamespace sets the namespace in each request's metadata, replacing
// one the caller's context may carry.
func withNamespace(namespace string) ttrpc.UnaryClientInterceptor {
	return func(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, info *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
		req.Metadata = slices.DeleteFunc(req.Metadata, func(kv *ttrpc.KeyValue) bool { return kv.Key == NamespaceKey })
		req.Metadata = append(req.Metadata, &ttrpc.KeyValue{Key: NamespaceKey, Value: namespace})
		return invoke(ctx, req, resp)
	}
}

// gone tells whether err means the shim's connection is closed: the shim
// exited (or was never reachable through this Shim again).
func gone(err error) bool {
	return errors.Is(err, ttrpc.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
