package hostlocal

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// store keeps one network's allocations on disk, in the layout the
// reference host-local uses (so either plugin can take over a host's
// networks): a file per allocated address holding "containerID\r\nifname",
// and the last address handed out per range set. An exclusive lock on the
// directory serialises concurrent plugin invocations.
type store struct {
	dir  string
	lock *os.File
}

const (
	lockName     = "lock"
	lastReserved = "last_reserved_ip."
	lineBreak    = "\r\n"
)

// owner is who holds an address.
type owner struct{ id, ifname string }

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return &store{dir: dir, lock: f}, nil
}

// close releases the lock.
func (s *store) close() { s.lock.Close() }

// reserve claims ip for o; false means someone holds it already.
func (s *store) reserve(ip net.IP, o owner) (bool, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, ip.String()), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = f.WriteString(o.id + lineBreak + o.ifname)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return false, err
	}
	return true, nil
}

func (s *store) last(set int) net.IP {
	data, err := os.ReadFile(filepath.Join(s.dir, lastReserved+strconv.Itoa(set)))
	if err != nil {
		return nil
	}
	return net.ParseIP(strings.TrimSpace(string(data)))
}

func (s *store) setLast(set int, ip net.IP) error {
	return os.WriteFile(filepath.Join(s.dir, lastReserved+strconv.Itoa(set)), []byte(ip.String()), 0o644)
}

// entries lists every allocated address with its owner.
func (s *store) entries() (map[string]owner, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	out := map[string]owner{}
	for _, de := range des {
		name := de.Name()
		if de.IsDir() || net.ParseIP(name) == nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		id, ifname, _ := strings.Cut(string(data), lineBreak)
		out[name] = owner{id: strings.TrimSpace(id), ifname: strings.TrimSpace(ifname)}
	}
	return out, nil
}

// release frees the addresses for which keep answers false.
func (s *store) release(keep func(owner) bool) error {
	entries, err := s.entries()
	if err != nil {
		return err
	}
	var errs []error
	for ip, o := range entries {
		if keep(o) {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, ip)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// matches reports whether an allocation belongs to the attachment. An
// allocation written without an interface name (by old plugins) matches any.
func (o owner) matches(id, ifname string) bool {
	return o.id == id && (o.ifname == "" || o.ifname == ifname)
}
