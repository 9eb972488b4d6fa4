package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-project/berth/hack/testimage"
)

// shimUnderTest is one shim with the ctr flags that select it.
type shimUnderTest struct {
	name  string
	flags []string
	lat   []time.Duration
	rss   []int64 // KiB per shim process
	pss   []int64
	anon  []int64
	extra int64    // KiB of PSS each shim beyond the first half adds
	grow  [2]int64 // RSS before and after the execs
}

// benchShim starts a private containerd and compares containerd-shim-berth-v2
// with containerd-shim-runc-v2, both running berth-runtime: per-shim RSS and
// PSS with many containers up, run latency, and RSS growth over many execs.
func benchShim(args []string) error {
	fs := flag.NewFlagSet("bench shim", flag.ExitOnError)
	shimDir := fs.String("shim-dir", "bin", "directory holding containerd-shim-berth-v2 and berth-runtime")
	containers := fs.Int("containers", 20, "sleeping containers per shim for the memory measurement")
	n := fs.Int("n", 20, "alternating `ctr run --rm` rounds per shim for the latency")
	execs := fs.Int("execs", 1000, "execs into one container per shim, to see memory growth")
	_ = fs.Parse(args)
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root")
	}
	dir, err := filepath.Abs(*shimDir)
	if err != nil {
		return err
	}
	runtime := filepath.Join(dir, "berth-runtime")
	d, err := startContainerd(dir)
	if err != nil {
		return err
	}
	defer d.stop()
	shims := []*shimUnderTest{
		{name: "berth", flags: []string{"--runtime", "io.containerd.berth.v2"}},
		{name: "runc-v2", flags: []string{"--runtime", "io.containerd.runc.v2", "--runc-binary", runtime}},
	}
	const image = testimage.DefaultName
	for i := range *n + 1 {
		for _, s := range shims {
			id := fmt.Sprintf("lat-%s-%d", s.name, i)
			start := time.Now()
			if _, err := d.ctr(append(append([]string{"run", "--rm"}, s.flags...), image, id, "true")...); err != nil {
				return err
			}
			if i > 0 { // the first round warms up
				s.lat = append(s.lat, time.Since(start))
			}
		}
	}
	for _, s := range shims {
		var ids []string
		half := *containers / 2
		for i := range *containers {
			id := fmt.Sprintf("mem-%s-%d", s.name, i)
			if _, err := d.ctr(append(append([]string{"run", "-d"}, s.flags...), image, id, "sleep", "100000")...); err != nil {
				return err
			}
			ids = append(ids, id)
			if i+1 == half {
				time.Sleep(time.Second) // let start-up garbage settle
				total, err := d.totalPss(ids)
				if err != nil {
					return err
				}
				s.extra = -total
			}
		}
		time.Sleep(time.Second)
		for _, id := range ids {
			pid, err := d.shimPid(id)
			if err != nil {
				return err
			}
			m := smapsRollup(pid)
			s.rss, s.pss, s.anon = append(s.rss, m["Rss"]), append(s.pss, m["Pss"]), append(s.anon, m["Anonymous"])
		}
		// What each shim beyond the first half adds to the memory all of
		// them use: the slope of their PSS total, which counts the pages
		// they share (code, data of the binary) once.
		total, err := d.totalPss(ids)
		if err != nil {
			return err
		}
		s.extra = (s.extra + total) / int64(len(ids)-half)
		// Growth from a tenth of the execs to the end: a leak grows on, the
		// garbage collector's headroom is reached in the first tenth.
		pid, _ := d.shimPid(ids[0])
		for i := range *execs {
			if i == *execs/10 {
				s.grow[0], _ = smaps(pid)
			}
			if _, err := d.ctr("task", "exec", "--exec-id", fmt.Sprintf("x%d", i), ids[0], "true"); err != nil {
				return err
			}
		}
		s.grow[1], _ = smaps(pid)
		for _, id := range ids {
			d.remove(id)
		}
	}
	a, b := shims[0], shims[1]
	fmt.Printf("%-34s %12s %12s %8s\n", "shim (both run berth-runtime)", a.name, b.name, "ratio")
	row := func(what string, x, y float64, unit string) {
		fmt.Printf("%-34s %10.2f%s %10.2f%s %7.2fx\n", what, x, unit, y, unit, x/y)
	}
	row("run --rm true, median", ms(medianDur(a.lat)), ms(medianDur(b.lat)), "ms")
	row(fmt.Sprintf("RSS per shim (%d up), mean", *containers), mean(a.rss)/1024, mean(b.rss)/1024, "Mi")
	row(fmt.Sprintf("PSS per shim (%d up), mean", *containers), mean(a.pss)/1024, mean(b.pss)/1024, "Mi")
	row(fmt.Sprintf("anonymous per shim (%d up), mean", *containers), mean(a.anon)/1024, mean(b.anon)/1024, "Mi")
	row(fmt.Sprintf("PSS of each extra shim (%d to %d up)", *containers/2, *containers), float64(a.extra)/1024, float64(b.extra)/1024, "Mi")
	row(fmt.Sprintf("RSS after exec %d / after exec %d", *execs, *execs/10), float64(a.grow[1])/float64(a.grow[0]), float64(b.grow[1])/float64(b.grow[0]), " ")
	return nil
}

// totalPss sums the PSS (KiB) of the shims of the containers ids.
func (d *containerd) totalPss(ids []string) (int64, error) {
	var total int64
	for _, id := range ids {
		pid, err := d.shimPid(id)
		if err != nil {
			return 0, err
		}
		_, pss := smaps(pid)
		total += pss
	}
	return total, nil
}

func medianDur(s []time.Duration) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := append([]time.Duration(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[len(c)/2]
}

func mean(s []int64) float64 {
	var t int64
	for _, v := range s {
		t += v
	}
	if len(s) == 0 {
		return 0
	}
	return float64(t) / float64(len(s))
}

// smaps reads a process's RSS and PSS in KiB.
func smaps(pid int) (rss, pss int64) {
	m := smapsRollup(pid)
	return m["Rss"], m["Pss"]
}

// smapsRollup reads /proc/PID/smaps_rollup: each field in KiB by name
// (Rss, Pss, Anonymous...); empty if the process is gone.
func smapsRollup(pid int) map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || !strings.HasSuffix(fields[0], ":") {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		out[strings.TrimSuffix(fields[0], ":")] = v
	}
	return out
}

// containerd is a private daemon in a temporary directory.
type containerd struct {
	dir string
	cmd *exec.Cmd
}

// startContainerd starts a private containerd with the test image imported.
func startContainerd(shimDir string) (*containerd, error) {
	d, err := startBareContainerd(shimDir)
	if err != nil {
		return nil, err
	}
	archive := filepath.Join(d.dir, "image.tar")
	f, err := os.Create(archive)
	if err != nil {
		d.stop()
		return nil, err
	}
	err = testimage.WriteOCIArchive(f, testimage.Options{})
	f.Close()
	if err == nil {
		_, err = d.ctr("image", "import", archive)
	}
	if err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// startBareContainerd starts a private containerd with nothing in it.
func startBareContainerd(shimDir string) (*containerd, error) {
	dir, err := os.MkdirTemp("", "berth-bench-ctrd-")
	if err != nil {
		return nil, err
	}
	d := &containerd{dir: dir}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), d.sock(), d.sock()+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o600); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	d.cmd = exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.Env = append(os.Environ(), "PATH="+shimDir+":"+os.Getenv("PATH"))
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := d.ctr("version"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("containerd did not come up (log in %s)", log.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d, nil
}

func (d *containerd) sock() string { return filepath.Join(d.dir, "containerd.sock") }

func (d *containerd) ctr(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"--address", d.sock(), "--namespace", "bench"}, args...)
	out, err := exec.CommandContext(ctx, "ctr", full...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// shimPid finds the shim serving container id: the process whose command
// line names the id and our containerd's address.
func (d *containerd) shimPid(id string) (int, error) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim-") {
			continue
		}
		if containsSeq(args, "-id", id) && containsSeq(args, "-address", d.sock()) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no shim found for %s", id)
}

func containsSeq(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

func (d *containerd) remove(id string) {
	_, _ = d.ctr("task", "kill", "-s", "SIGKILL", id)
	for range 100 {
		if _, err := d.ctr("task", "delete", id); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, _ = d.ctr("container", "rm", id)
}

// stop ends containerd and removes everything it made.
func (d *containerd) stop() {
	out, _ := d.ctr("task", "ls", "-q")
	for _, id := range strings.Fields(string(out)) {
		d.remove(id)
	}
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		_ = d.cmd.Wait()
	}
	// containerd mounts snapshots under its root; none must outlive it.
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], d.dir) {
				_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	}
	os.RemoveAll(d.dir)
}
