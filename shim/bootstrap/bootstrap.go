// Package bootstrap is the shim binary's contract with containerd: the
// `start` subcommand that spawns (or finds) the shim server and prints its
// address, and the `delete` subcommand that cleans up after a shim that died.
package bootstrap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// SocketDir is where shim sockets live, as containerd's shims put them.
const SocketDir = "/run/containerd/s"

// GroupAnnotations name the group (pod) a container belongs to: containers
// of one group share one shim.
var GroupAnnotations = []string{"io.kubernetes.cri.sandbox-id", "io.berth.group"}

// Args are the flags containerd passes to the shim binary.
type Args struct {
	Namespace     string
	ID            string
	Address       string // containerd's gRPC socket
	PublishBinary string
	Bundle        string
	Debug         bool
}

// Group is the id of the shim that serves the container in bundle: the
// group annotation's value, or the container's own id.
func Group(bundle, id string) string {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return id
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(data, &spec) != nil {
		return id
	}
	for _, a := range GroupAnnotations {
		if g := spec.Annotations[a]; g != "" {
			return g
		}
	}
	return id
}

// SocketPath is the shim's socket in dir for a group: unique per
// containerd address, namespace and group, short enough for a unix socket
// path.
func SocketPath(dir, address, namespace, group string) string {
	sum := sha256.Sum256([]byte(filepath.Join(address, namespace, group)))
	return filepath.Join(dir, hex.EncodeToString(sum[:])[:32])
}

// Start returns the address of the shim serving the container, spawning
// it if no shim of the container's group runs yet; p is what the manager
// sent besides the flags. self is this binary; serveArgs are the arguments
// that make it serve.
func Start(a Args, p *Params, self string, serveArgs []string) (string, error) {
	dir := p.SocketDir
	if dir == "" {
		dir = SocketDir
	}
	group := Group(a.Bundle, a.ID)
	sock := SocketPath(dir, a.Address, a.Namespace, group)
	addr := "unix://" + sock
	if group != a.ID {
		if conn, err := dial(sock); err == nil {
			conn.Close()
			return addr, writeAddress(a.Bundle, addr)
		}
	}
	cgroup, err := p.ShimCgroup()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	l, err := listen(sock)
	if err != nil {
		return "", err
	}
	f, err := l.File()
	// The server owns the socket from now on: closing our listener must not
	// unlink it.
	l.SetUnlinkOnClose(false)
	l.Close()
	if err != nil {
		os.Remove(sock)
		return "", err
	}
	defer f.Close()
	cmd := exec.Command(self, serveArgs...)
	cmd.Dir = a.Bundle
	cmd.ExtraFiles = []*os.File{f}
	cmd.Env = serverEnv(os.Environ())
	if p.TTRPCAddress != "" {
		// containerd 2.3 passes it in BootstrapParams (and, for now, in
		// the environment too); the server reads it from the environment.
		cmd.Env = append(cmd.Env, EnvTTRPCAddress+"="+p.TTRPCAddress)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.Remove(sock)
		return "", fmt.Errorf("spawn shim server: %w", err)
	}
	pid := cmd.Process.Pid
	if cgroup != "" {
		if err := joinCgroup(cgroupRoots(), cgroup, pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			os.Remove(sock)
			return "", err
		}
	}
	_ = cmd.Process.Release()
	if err := os.WriteFile(filepath.Join(a.Bundle, "shim.pid"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return "", err
	}
	return addr, writeAddress(a.Bundle, addr)
}

// savedProcs carries containerd's GOMAXPROCS (or "" for none) to the server,
// which puts it back (RestoreEnv) for the commands it runs.
const savedProcs = "BERTH_SHIM_GOMAXPROCS"

// serverEnv is the server's environment: containerd's, with one P. The
// server mostly waits; with one P instead of the two containerd gives its
// shims, it has one set of per-P caches and partly filled heap spans instead
// of two, about 300 KB less anonymous memory per shim. It has to be set
// before the server starts: runtime.GOMAXPROCS(1) once it runs saves less
// than a third of that.
func serverEnv(env []string) []string {
	return append(env, "GOMAXPROCS=1", savedProcs+"="+os.Getenv("GOMAXPROCS"))
}

// RestoreEnv gives the server's environment back the GOMAXPROCS containerd
// set, so that the commands the server runs (the OCI runtime, logging
// binaries) see containerd's environment. The server's own GOMAXPROCS stays
// as it started: Go reads the variable at start-up only.
func RestoreEnv() {
	v, ok := os.LookupEnv(savedProcs)
	if !ok {
		return
	}
	os.Unsetenv(savedProcs)
	if v == "" {
		os.Unsetenv("GOMAXPROCS")
	} else {
		os.Setenv("GOMAXPROCS", v)
	}
}

// listen binds the socket, replacing a stale one that nobody serves.
func listen(sock string) (*net.UnixListener, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	if conn, derr := dial(sock); derr == nil {
		conn.Close()
		return nil, fmt.Errorf("a shim already serves %s", sock)
	}
	os.Remove(sock)
	return net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
}

// dial connects to a shim's socket. Connecting to a unix socket never waits
// (a full backlog is an error at once), so it needs no timeout; and unlike
// net.Dial, net.DialUnix does not link in the DNS resolver, which would
// add about 200 KB to the binary that every shim maps.
func dial(sock string) (*net.UnixConn, error) {
	return net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
}

// writeAddress records the shim's address in the bundle, where containerd
// looks for it when it reconnects after a restart.
func writeAddress(bundle, addr string) error {
	tmp := filepath.Join(bundle, ".address")
	if err := os.WriteFile(tmp, []byte(addr), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, "address"))
}
