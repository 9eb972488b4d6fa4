//go:build linux

// Package ctrd runs a private containerd (1.6 or later) for black-box
// integration tests and drives it with ctr, the way a user would.
//
// A Daemon keeps everything under a temporary directory of its own (root,
// state, sockets, FIFOs, config, log and the programs put first on its
// PATH); Stop kills what it left (shims, container processes), unmounts
// and removes the directory. A Client is one test's view of a daemon: a
// containerd namespace named after the test, with the test image imported,
// that its cleanup checks was left empty.
package ctrd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Config is what a daemon is started with beyond the defaults.
type Config struct {
	// Bin holds programs by name (file contents: scripts) that are written
	// to Dir/bin, first on containerd's PATH, where containerd finds shims
	// (containerd-shim-<name>-<version>) and the shims their OCI runtime.
	Bin map[string]string
	// Path holds further directories put on PATH after Dir/bin.
	Path []string
	// ProxyPlugins are written as containerd's [proxy_plugins.<name>]
	// sections: plugins served by another process on a socket, such as a
	// snapshotter ("ctr --snapshotter <name>").
	ProxyPlugins map[string]ProxyPlugin
}

// ProxyPlugin is one of containerd's proxy plugins.
type ProxyPlugin struct {
	Type    string // "snapshot" or "content"
	Address string // its gRPC unix socket
}

// Daemon is a private containerd: everything it keeps is under Dir.
type Daemon struct {
	Dir  string // root, state, FIFOs, bin, config, log
	Sock string // gRPC socket; Sock+".ttrpc" is the ttrpc one

	env  []string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a containerd and waits until it serves.
func Start(cfg Config) (*Daemon, error) {
	dir, err := os.MkdirTemp("", "berth-ctrd-") // short: the socket path must fit sun_path
	if err != nil {
		return nil, err
	}
	d := &Daemon{Dir: dir, Sock: filepath.Join(dir, "containerd.sock")}
	if err := d.setup(cfg); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	if err := d.start(); err != nil {
		return nil, errors.Join(err, d.Stop())
	}
	return d, nil
}

func (d *Daemon) setup(cfg Config) error {
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q
`, filepath.Join(d.Dir, "root"), filepath.Join(d.Dir, "state"), d.Sock, d.Sock+".ttrpc")
	for _, name := range slices.Sorted(maps.Keys(cfg.ProxyPlugins)) {
		p := cfg.ProxyPlugins[name]
		config += fmt.Sprintf("\n[proxy_plugins.%q]\n  type = %q\n  address = %q\n", name, p.Type, p.Address)
	}
	if err := os.WriteFile(d.configPath(), []byte(config), 0o600); err != nil {
		return err
	}
	bin := filepath.Join(d.Dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		return err
	}
	for name, script := range cfg.Bin {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			return err
		}
	}
	path := strings.Join(append([]string{bin}, cfg.Path...), ":")
	if p := os.Getenv("PATH"); p != "" {
		path += ":" + p
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			d.env = append(d.env, kv)
		}
	}
	d.env = append(d.env, "PATH="+path)
	return nil
}

func (d *Daemon) configPath() string { return filepath.Join(d.Dir, "config.toml") }

// LogPath is containerd's log (debug level), kept across restarts.
func (d *Daemon) LogPath() string { return filepath.Join(d.Dir, "containerd.log") }

// FIFODir is where clients should put their stdio FIFOs (ctr --fifo-dir).
func (d *Daemon) FIFODir() string { return filepath.Join(d.Dir, "fifo") }

// BinDir is the directory first on containerd's PATH (Config.Bin).
func (d *Daemon) BinDir() string { return filepath.Join(d.Dir, "bin") }

// PID is containerd's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

func (d *Daemon) start() error {
	logFile, err := os.OpenFile(d.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	d.cmd = exec.Command("containerd", "--config", d.configPath(), "--log-level", "debug")
	d.cmd.Dir = d.Dir // a known working directory: containerd resolves relative shim paths against it
	d.cmd.Env = d.env
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	// Should the test binary die without cleaning up, containerd goes too.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d.done = make(chan struct{})
	if err := d.cmd.Start(); err != nil {
		close(d.done)
		return err
	}
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(d.cmd, d.done)

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := exec.CommandContext(ctx, "ctr", "--address", d.Sock, "version").Run()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("containerd exited: %v\n%s", d.cmd.ProcessState, d.LogTail(""))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not serve %s within 30s\n%s", d.Sock, d.LogTail(""))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// terminate stops containerd: SIGTERM by its pid, SIGKILL after 30s.
func (d *Daemon) terminate() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// Restart stops containerd with SIGTERM and starts it again with the same
// configuration and environment. Shims, and the containers they serve, are
// not containerd's children: they keep running.
func (d *Daemon) Restart() error {
	d.terminate()
	return d.start()
}

// Stop stops containerd, kills the shims it left and the container
// processes they left, unmounts what is left under its directory and
// removes it. Anything it had to kill is reported in the error.
func (d *Daemon) Stop() error {
	d.terminate()
	var errs []error
	for _, s := range d.Shims() {
		errs = append(errs, fmt.Errorf("shim %d (%s/%s) outlived its containers; killed", s.PID, s.Namespace, s.ID))
		unix.Kill(s.PID, unix.SIGKILL)
	}
	inits, _ := filepath.Glob(filepath.Join(d.Dir, "state", "io.containerd.runtime.v2.task", "*", "*", "init.pid"))
	for _, f := range inits {
		if pid, err := readPID(f); err == nil && unix.Kill(pid, unix.SIGKILL) == nil {
			errs = append(errs, fmt.Errorf("container process %d (%s) was left running; killed", pid, f))
		}
	}
	errs = append(errs, UnmountUnder(d.Dir), os.RemoveAll(d.Dir))
	return errors.Join(errs...)
}

// Shim is a running shim process serving this daemon.
type Shim struct {
	PID           int
	Namespace, ID string // its -namespace and -id arguments
	Argv          []string
}

// Shims finds the shims serving this containerd: containerd starts them
// with "-address <its socket>", which no other containerd's shims have.
func (d *Daemon) Shims() []Shim {
	var shims []Shim
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") || flagValue(argv, "-address") != d.Sock {
			continue
		}
		shims = append(shims, Shim{PID: pid, Namespace: flagValue(argv, "-namespace"), ID: flagValue(argv, "-id"), Argv: argv})
	}
	return shims
}

func flagValue(argv []string, name string) string {
	if i := slices.Index(argv, name); i > 0 && i+1 < len(argv) {
		return argv[i+1]
	}
	return ""
}

// LogTail returns the last lines of containerd's log that contain substr.
func (d *Daemon) LogTail(substr string) string {
	b, _ := os.ReadFile(d.LogPath())
	var lines []string
	for l := range strings.Lines(string(b)) {
		if strings.Contains(l, substr) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-60):], "")
}

// Shared is a daemon that a package's tests share: the first test that
// asks for it starts it, and the package's TestMain stops it.
type Shared struct {
	once sync.Once
	d    *Daemon
	err  error
}

// Get returns the shared daemon, starting it with cfg on the first call.
func (s *Shared) Get(t testing.TB, cfg Config) *Daemon {
	t.Helper()
	s.once.Do(func() { s.d, s.err = Start(cfg) })
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.d
}

// Stop stops the shared daemon if it was started.
func (s *Shared) Stop() error {
	if s.d == nil {
		return nil
	}
	return s.d.Stop()
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Mounts returns the mount points at or below dir.
func Mounts(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mounts []string
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	return mounts
}

// UnmountUnder detaches every mount below dir, deepest first.
func UnmountUnder(dir string) error {
	mounts := slices.DeleteFunc(Mounts(dir), func(m string) bool { return m == dir })
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}
