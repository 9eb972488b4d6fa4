package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchIdle starts a private berthd (with its berth-snapshotter) and a
// private containerd, both idle, and prints their resident memory side by
// side: what a daemon costs a machine while nothing happens.
func benchIdle(args []string) error {
	fs := flag.NewFlagSet("bench idle", flag.ExitOnError)
	binDir := fs.String("bin", "bin", "directory holding berthd and berth-snapshotter")
	settle := fs.Duration("settle", 3*time.Second, "how long each daemon idles before it is measured")
	_ = fs.Parse(args)
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root")
	}
	dir, err := filepath.Abs(*binDir)
	if err != nil {
		return err
	}

	tmp, err := os.MkdirTemp("", "berth-bench-idle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	sock := filepath.Join(tmp, "run", "berthd.sock")
	berthd := exec.Command(filepath.Join(dir, "berthd"), "--root", filepath.Join(tmp, "root"), "--state", filepath.Join(tmp, "run"),
		"-H", "unix://"+sock, "--no-network")
	berthd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := berthd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = berthd.Process.Signal(syscall.SIGTERM)
		_ = berthd.Wait()
	}()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(*settle)
	berthdRSS, _ := rollup(berthd.Process.Pid)
	var snapRSS int64
	for _, pid := range childPids(berthd.Process.Pid) {
		r, _ := rollup(pid)
		snapRSS += r
	}

	d, err := startBareContainerd(dir)
	if err != nil {
		return err
	}
	defer d.stop()
	time.Sleep(*settle)
	ctrdRSS, _ := rollup(d.cmd.Process.Pid)

	mib := func(kib int64) string { return fmt.Sprintf("%.1fMi", float64(kib)/1024) }
	fmt.Printf("%-34s %12s %12s %8s\n", "idle daemon RSS", "berth", "containerd", "ratio")
	fmt.Printf("%-34s %12s %12s %7.2fx\n", "berthd alone", mib(berthdRSS), mib(ctrdRSS), float64(berthdRSS)/float64(ctrdRSS))
	fmt.Printf("%-34s %12s %12s %7.2fx\n", "berthd + berth-snapshotter", mib(berthdRSS+snapRSS), mib(ctrdRSS), float64(berthdRSS+snapRSS)/float64(ctrdRSS))
	return nil
}

// childPids are the children of pid, whichever of its threads started
// them.
func childPids(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
