package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/unixsock"
)

// listen makes the API socket at path: mode 0660, owned by root and by
// group when one is given (a name or a numeric ID), so that only root and
// that group may use it. A socket left by a daemon that is gone is
// replaced; one that still answers is not.
func listen(path, group string) (net.Listener, error) {
	gid := -1
	if group != "" {
		var err error
		if gid, err = lookupGroup(group); err != nil {
			return nil, err
		}
	}
	l, err := unixsock.Listen(path)
	if err != nil {
		return nil, err
	}
	if gid >= 0 {
		if err := os.Chown(path, 0, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("give the socket to group %s: %w", group, err)
		}
	}
	return l, nil
}

func lookupGroup(group string) (int, error) {
	if gid, err := strconv.Atoi(group); err == nil {
		return gid, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, fmt.Errorf("--group %s: %w", group, err)
	}
	return strconv.Atoi(g.Gid)
}

var errWouldBlock = unix.EWOULDBLOCK

// flock takes an exclusive lock on f without waiting. The lock goes with
// the process, also when it is killed.
func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
