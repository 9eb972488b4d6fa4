// Package cli is the command line of containerd-shim-berth-v2: the flags
// and subcommands containerd's shim v2 protocol defines (start, delete), and
// the hidden serve command that start spawns.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/containerd/log"

	"github.com/berth-project/berth/internal/memtrim"
	"github.com/berth-project/berth/shim/bootstrap"
	"github.com/berth-project/berth/shim/events"
	"github.com/berth-project/berth/shim/reaper"
	"github.com/berth-project/berth/shim/rpc"
	"github.com/berth-project/berth/shim/task"
)

// Name is the binary's name.
const Name = "containerd-shim-berth-v2"

// Version is set at build time.
var Version = "dev"

// Main runs the shim's command line and returns its exit status.
func Main(ctx context.Context, args []string) int {
	var a bootstrap.Args
	fs := flag.NewFlagSet(Name, flag.ContinueOnError)
	fs.StringVar(&a.Namespace, "namespace", "", "namespace of the task")
	fs.StringVar(&a.ID, "id", "", "id of the task")
	fs.StringVar(&a.Address, "address", "", "containerd's gRPC address")
	fs.StringVar(&a.PublishBinary, "publish-binary", "", "containerd's binary, for publishing events (unused: events go over ttrpc)")
	fs.StringVar(&a.Bundle, "bundle", "", "bundle directory (default: the working directory)")
	fs.BoolVar(&a.Debug, "debug", false, "log debug messages")
	version := fs.Bool("v", false, "print the version and exit")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *version {
		fmt.Printf("%s:\n  Version: %s\n  Runtime: berth-runtime (default), or the BinaryName runtime option\n", Name, Version)
		return 0
	}
	if a.Namespace == "" {
		a.Namespace = os.Getenv("NAMESPACE")
	}
	if a.Bundle == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fail(err)
		}
		a.Bundle = wd
	}
	if a.Namespace == "" || a.ID == "" {
		return fail(fmt.Errorf("-namespace and -id are required (containerd passes them)"))
	}
	switch cmd := fs.Arg(0); cmd {
	case "start":
		if err := start(a); err != nil {
			return fail(err)
		}
		return 0
	case "delete":
		out, err := bootstrap.Delete(ctx, a)
		if err != nil {
			return fail(err)
		}
		_, _ = os.Stdout.Write(out)
		return 0
	case "serve":
		if err := serve(ctx, a); err != nil {
			return fail(err)
		}
		return 0
	default:
		return fail(fmt.Errorf("unknown command %q: use start or delete", cmd))
	}
}

// start spawns or finds the server and answers the manager in the form it
// asked for (see bootstrap.Form).
func start(a bootstrap.Args) error {
	var stdin io.Reader = os.Stdin
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		stdin = nil // a terminal (or /dev/null): nothing sent
	}
	p, err := bootstrap.ReadParams(stdin, os.Getenv, a.ID, a.Namespace)
	if err != nil {
		return err
	}
	a.Debug = a.Debug || p.Debug
	if a.Address == "" {
		a.Address = p.GRPCAddress
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	serve := []string{"-namespace", a.Namespace, "-id", a.ID, "-address", a.Address}
	if a.Debug {
		serve = append(serve, "-debug")
	}
	addr, err := bootstrap.Start(a, p, self, append(serve, "serve"))
	if err != nil {
		return err
	}
	reply, err := p.Reply(addr)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(reply)
	return err
}

func fail(err error) int {
	fmt.Fprintf(os.Stderr, "%s: %v\n", Name, err)
	return 1
}

// idleTrim is how long the server waits after the last request before it
// trims its memory: longer than the gaps inside a burst of requests (create,
// start, wait; an exec's create, start and delete), short next to a shim's
// idle life. A trim costs a collection of a small heap and a few hundred
// minor page faults when the next request comes.
const idleTrim = 500 * time.Millisecond

// serve runs the task service on the socket start passed as fd 3, until
// containerd shuts the shim down.
func serve(ctx context.Context, a bootstrap.Args) error {
	bootstrap.RestoreEnv()
	// The shim logs through containerd/log, the logger ttrpc already logs
	// through: its messages reach containerd's log too, and a second logging
	// library (log/slog) would add 100 KB to the binary every shim maps.
	log.L.Logger.SetOutput(logOutput(a.Bundle))
	if a.Debug {
		_ = log.SetLevel("debug")
	}
	logger := log.L.WithFields(log.Fields{"id": a.ID, "namespace": a.Namespace})
	signal.Ignore(syscall.SIGPIPE)
	l, err := net.FileListener(os.NewFile(3, "socket"))
	if err != nil {
		return fmt.Errorf("socket from start: %w", err)
	}
	r, err := reaper.New()
	if err != nil {
		return err
	}
	ttrpcAddress := os.Getenv("TTRPC_ADDRESS")
	if ttrpcAddress == "" {
		ttrpcAddress = a.Address + ".ttrpc"
	}
	pub := events.NewPublisher(ttrpcAddress, a.Namespace, logger)
	// Each quiet spell gives back what start-up and the last requests left
	// mapped and the heap's free pages (see package memtrim).
	idle := memtrim.NewIdle(idleTrim)
	server := rpc.NewServer()
	server.Activity = idle.Touch
	ctx, cancel := context.WithCancel(ctx)
	svc := task.New(a.Namespace, logger, r, pub, cancel)
	// Execs leave garbage (ttrpc, protobuf, os/exec) that grows the heap to
	// Go's 4 MiB minimum target and keeps it there; a quarter of the default
	// target holds it near 1 MiB. Only from the first exec on: a shim that
	// never execs would pay 0.5 MiB for the collector's running start-up
	// and save nothing. GOGC set by the operator still wins.
	if os.Getenv("GOGC") == "" {
		svc.OnFirstExec = func() { debug.SetGCPercent(25) }
	}
	task.Register(server, svc)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		// Shutdown's own answer, and any other call in flight, go out
		// before the connections close.
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = server.Shutdown(sctx)
	}()
	logger.WithField("address", l.Addr()).Debug("serving")
	idle.Touch()
	// The requests' contexts end with their connections (closed once
	// Shutdown has let the calls in flight answer), not with ctx.
	if err := server.Serve(context.WithoutCancel(ctx), l); err != nil && !errors.Is(err, rpc.ErrClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	<-stopped
	pub.Close()
	if ua, ok := l.Addr().(*net.UnixAddr); ok {
		os.Remove(ua.Name)
	}
	return nil
}

// logOutput is the "log" FIFO containerd makes in the bundle and reads the
// shim's log from; without it, nothing is logged.
func logOutput(bundle string) io.Writer {
	f, err := os.OpenFile(filepath.Join(bundle, "log"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return io.Discard
	}
	return f
}
