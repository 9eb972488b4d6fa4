// Package oom watches a container's memory cgroup for OOM kills: on cgroup
// v1 through memory.oom_control and an eventfd, on v2 through inotify on
// memory.events (its oom_kill counter).
package oom

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Watch calls notify each time a process in pid's memory cgroup is killed
// for lack of memory, until ctx ends or the cgroup goes away.
func Watch(ctx context.Context, pid int, notify func()) error {
	v1, v2, err := memoryCgroup(pid)
	if err != nil {
		return err
	}
	if v1 != "" {
		return watchV1(ctx, v1, notify)
	}
	return watchV2(ctx, v2, notify)
}

// memoryCgroup finds pid's memory cgroup directory: the v1 memory hierarchy
// if there is one, else the v2 (unified) hierarchy.
func memoryCgroup(pid int) (v1, v2 string, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", "", err
	}
	var unified string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				return filepath.Join("/sys/fs/cgroup/memory", parts[2]), "", nil
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
		}
	}
	for _, mnt := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		dir := filepath.Join(mnt, unified)
		if _, err := os.Stat(filepath.Join(dir, "memory.events")); err == nil {
			return "", dir, nil
		}
	}
	return "", "", fmt.Errorf("no memory cgroup for pid %d", pid)
}

func watchV1(ctx context.Context, dir string, notify func()) error {
	control, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return err
	}
	defer control.Close()
	// Non-blocking, so that os.File waits in the netpoller: a blocking read
	// would hold an OS thread for the container's whole life.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	ev := os.NewFile(uintptr(efd), "oom-eventfd")
	defer ev.Close()
	reg := fmt.Sprintf("%d %d", efd, control.Fd())
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		return fmt.Errorf("register OOM notification: %w", err)
	}
	// Closing the file ends the read below; AfterFunc needs no goroutine
	// until then.
	stop := context.AfterFunc(ctx, func() { ev.Close() })
	defer stop()
	buf := make([]byte, 8)
	for {
		if _, err := ev.Read(buf); err != nil {
			return nil
		}
		if binary.NativeEndian.Uint64(buf) == 0 {
			continue
		}
		// The eventfd also fires when the cgroup is removed.
		if _, err := os.Stat(filepath.Join(dir, "memory.oom_control")); err != nil {
			return nil
		}
		notify()
	}
}

func watchV2(ctx context.Context, dir string, notify func()) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK) // see watchV1
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	in := os.NewFile(uintptr(fd), "oom-inotify")
	defer in.Close()
	events := filepath.Join(dir, "memory.events")
	if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
		return fmt.Errorf("watch %s: %w", events, err)
	}
	stop := context.AfterFunc(ctx, func() { in.Close() })
	defer stop()
	last := oomKills(events)
	buf := make([]byte, 4096)
	for {
		if _, err := in.Read(buf); err != nil {
			return nil
		}
		n := oomKills(events)
		if n < 0 {
			return nil
		}
		if n > last {
			notify()
		}
		last = n
	}
}

// oomKills reads the oom_kill counter, or -1 when the cgroup is gone.
func oomKills(events string) int64 {
	data, err := os.ReadFile(events)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
