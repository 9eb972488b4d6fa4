package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/hack/testimage"
)

// benchRun times `run --rm IMAGE true` (create, start, exit, remove) through
// berthd with berth, and with podman where installed, in one run: the
// latency a user feels for a short-lived container. Both run without a
// network, so that the container's own lifecycle is what is measured.
func benchRun(args []string) error {
	fs := flag.NewFlagSet("bench run", flag.ExitOnError)
	binDir := fs.String("bin", "bin", "directory holding berthd, berth and the rest")
	n := fs.Int("n", 20, "runs per engine")
	_ = fs.Parse(args)
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root")
	}
	dir, err := filepath.Abs(*binDir)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "berth-bench-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, "image.tar")
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	if err := testimage.WriteDockerArchive(f, testimage.Options{}); err != nil {
		f.Close()
		return err
	}
	f.Close()
	const image = "berth-test:latest"

	// berthd, private, without networking, its containers' cgroups under
	// a parent of its own.
	sock := filepath.Join(tmp, "b", "run", "berthd.sock")
	parent := fmt.Sprintf("/berth-bench-%d", os.Getpid())
	berthd := exec.Command(filepath.Join(dir, "berthd"), "--root", filepath.Join(tmp, "b", "root"), "--state", filepath.Join(tmp, "b", "run"),
		"-H", "unix://"+sock, "--no-network", "--cgroup-parent", parent)
	berthd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := berthd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = berthd.Process.Signal(syscall.SIGTERM)
		_ = berthd.Wait()
		removeCgroupDir(parent)
	}()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	berth := func(args ...string) *exec.Cmd {
		return exec.Command(filepath.Join(dir, "berth"), append([]string{"-H", "unix://" + sock}, args...)...)
	}
	if out, err := berth("load", "-q", "-i", archive).CombinedOutput(); err != nil {
		return fmt.Errorf("berth load: %v: %s", err, out)
	}
	engines := []struct {
		name string
		run  func() *exec.Cmd
	}{{"berth", func() *exec.Cmd { return berth("run", "--rm", image, "true") }}}

	if _, err := exec.LookPath("podman"); err == nil {
		base := []string{"--root", filepath.Join(tmp, "p", "root"), "--runroot", filepath.Join(tmp, "p", "run"),
			"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--runtime", "runc", "--log-level", "error"}
		defer func() {
			_ = exec.Command("podman", append(base, "system", "reset", "--force")...).Run()
		}()
		if out, err := exec.Command("podman", append(base, "load", "-q", "-i", archive)...).CombinedOutput(); err != nil {
			return fmt.Errorf("podman load: %v: %s", err, out)
		}
		// podman asks for rlimits above the hard ones root has here
		// unless told what to use.
		var nofile, nproc unix.Rlimit
		_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
		_ = unix.Getrlimit(unix.RLIMIT_NPROC, &nproc)
		// podman lowers its own nproc limit to kernel.pid_max, and the
		// runtime inherits that.
		if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
			var pidMax uint64
			if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pidMax); err == nil {
				nproc.Max = min(nproc.Max, pidMax)
			}
		}
		limit := func(v uint64) string {
			if v == unix.RLIM_INFINITY {
				return "-1"
			}
			return fmt.Sprint(v)
		}
		podmanArgs := append(slices.Clone(base), "run", "--rm", "--network", "none",
			"--ulimit", "nofile="+limit(nofile.Max)+":"+limit(nofile.Max), "--ulimit", "nproc="+limit(nproc.Max)+":"+limit(nproc.Max),
			image, "true")
		engines = append(engines, struct {
			name string
			run  func() *exec.Cmd
		}{"podman", func() *exec.Cmd { return exec.Command("podman", podmanArgs...) }})
	} else {
		fmt.Println("podman: not installed, skipped")
	}

	medians := map[string]time.Duration{}
	for _, e := range engines {
		// One run first: caches warm for both alike.
		if out, err := e.run().CombinedOutput(); err != nil {
			return fmt.Errorf("%s run: %v: %s", e.name, err, out)
		}
		var ds []time.Duration
		for range *n {
			start := time.Now()
			if out, err := e.run().CombinedOutput(); err != nil {
				return fmt.Errorf("%s run: %v: %s", e.name, err, out)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		medians[e.name] = ds[len(ds)/2]
	}
	fmt.Printf("%-34s %12s %12s %8s\n", "run --rm IMAGE true, median", "berth", "podman", "ratio")
	if p, ok := medians["podman"]; ok {
		fmt.Printf("%-34s %12s %12s %7.2fx\n", fmt.Sprintf("(%d runs, no network)", *n), medians["berth"].Round(time.Millisecond), p.Round(time.Millisecond), float64(medians["berth"])/float64(p))
	} else {
		fmt.Printf("%-34s %12s\n", fmt.Sprintf("(%d runs, no network)", *n), medians["berth"].Round(time.Millisecond))
	}
	return nil
}

// removeCgroupDir removes an empty cgroup in every hierarchy.
func removeCgroupDir(rel string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, r := range roots {
		p := filepath.Join(r, strings.TrimPrefix(rel, "/"))
		_ = os.Remove(p)
	}
}
