// Package host reads the addresses berthd listens on and berth connects
// to, written as docker writes its -H/--host: "unix:///run/berth/berthd.sock".
// Only unix sockets are served: the API gives root's powers, and a socket's
// file mode and group are how access to it is granted.
package host

import (
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultState is berthd's default state directory, where its socket is.
const DefaultState = "/run/berth"

// SocketName is the socket's name in the state directory.
const SocketName = "berthd.sock"

// Default is the address berth uses when neither -H nor BERTH_HOST is
// given, and berthd's when neither -H nor --state is.
var Default = ForState(DefaultState)

// Env is the environment variable that gives berth the address, as
// DOCKER_HOST does docker.
const Env = "BERTH_HOST"

// ForState is the address of the socket in the state directory dir.
func ForState(dir string) string {
	return "unix://" + filepath.Join(dir, SocketName)
}

// Parse returns the socket path of a unix:// address. A bare absolute
// path is taken as a unix socket too.
func Parse(addr string) (string, error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		p := strings.TrimPrefix(addr, "unix://")
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("host %q: the socket path must be absolute (unix:///path)", addr)
		}
		return filepath.Clean(p), nil
	case strings.HasPrefix(addr, "/"):
		return filepath.Clean(addr), nil
	}
	if proto, _, ok := strings.Cut(addr, "://"); ok {
		return "", fmt.Errorf("host %q: berth speaks only unix:// sockets, not %s", addr, proto)
	}
	return "", fmt.Errorf("host %q: want unix:///path/to/socket", addr)
}

// Resolve picks the address berth connects to: the -H flag, else
// $BERTH_HOST, else Default.
func Resolve(flag, env string) string {
	switch {
	case flag != "":
		return flag
	case env != "":
		return env
	}
	return Default
}
