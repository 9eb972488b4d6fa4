package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/hack/testimage"
)

type sample struct {
	d     time.Duration
	maxRS int64 // KiB, from rounds run under GNU time
}

type runtimeUnderTest struct {
	name, bin, root string
	samples         map[string][]sample
	rss             map[string]int64 // peak KiB per operation
}

// gnuTime reports a child's peak RSS (Debian package "time").
const gnuTime = "/usr/bin/time"

// benchRuntime measures berth-runtime against a reference OCI runtime on
// the same bundle.
func benchRuntime(args []string) error {
	fs := flag.NewFlagSet("bench runtime", flag.ExitOnError)
	bin := fs.String("runtime", "bin/berth-runtime", "the runtime under test")
	ref := fs.String("ref", "runc", "the reference runtime")
	n := fs.Int("n", 50, "iterations per operation and runtime")
	_ = fs.Parse(args)
	return runRuntimeBench(*bin, *ref, *n)
}

func runRuntimeBench(bin, ref string, n int) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root")
	}
	dir, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bundle := filepath.Join(dir, "bundle")
	if err := testimage.WriteBundle(bundle, testimage.Options{Args: []string{"true"}}); err != nil {
		return err
	}
	// Reap containers whose creator exited: their inits are reparented to us.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return err
	}
	var rts []*runtimeUnderTest
	for _, b := range []string{bin, ref} {
		p, err := exec.LookPath(b)
		if err != nil {
			return fmt.Errorf("runtime %s: %w", b, err)
		}
		p, _ = filepath.Abs(p)
		root := filepath.Join(dir, "root-"+filepath.Base(p))
		rts = append(rts, &runtimeUnderTest{name: filepath.Base(p), bin: p, root: root, samples: map[string][]sample{}, rss: map[string]int64{}})
	}
	for i := range n + 2 { // two warm-up rounds are discarded
		for _, rt := range rts {
			if err := rt.round(bundle, dir, i, i >= 2, false); err != nil {
				return err
			}
		}
	}
	// Peak RSS comes from separate rounds under GNU time: a process started
	// straight from this (large) Go process would report our own peak RSS,
	// which the kernel carries over exec.
	if _, err := exec.LookPath(gnuTime); err == nil {
		for i := range 5 {
			for _, rt := range rts {
				if err := rt.round(bundle, dir, n+2+i, true, true); err != nil {
					return err
				}
			}
		}
	}
	report(rts)
	return nil
}

// round runs each operation once: run of /bin/true, then create, start and
// delete of a container whose process is /bin/true.
func (rt *runtimeUnderTest) round(bundle, dir string, i int, keep, rss bool) error {
	id := fmt.Sprintf("bench-%d-%d", os.Getpid(), i)
	record := func(op string, s sample) {
		switch {
		case rss:
			rt.rss[op] = max(rt.rss[op], s.maxRS)
		case keep:
			rt.samples[op] = append(rt.samples[op], s)
		}
	}
	s, err := rt.exec(rss, "run", "--bundle", bundle, id+"-run")
	if err != nil {
		return err
	}
	record("run", s)

	pidFile := filepath.Join(dir, id+".pid")
	if s, err = rt.exec(rss, "create", "--bundle", bundle, "--pid-file", pidFile, id); err != nil {
		return err
	}
	record("create", s)
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return err
	}
	os.Remove(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if s, err = rt.exec(rss, "start", id); err != nil {
		return err
	}
	record("start", s)
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		return fmt.Errorf("wait for container init %d: %w", pid, err)
	}
	if s, err = rt.exec(rss, "delete", id); err != nil {
		return err
	}
	record("delete", s)
	return nil
}

func (rt *runtimeUnderTest) exec(rss bool, args ...string) (sample, error) {
	// A detached container inherits the runtime's stdio: give it a file,
	// not a pipe that would stay open for as long as the container runs.
	errs, err := os.CreateTemp("", "berth-bench-stderr-")
	if err != nil {
		return sample{}, err
	}
	defer os.Remove(errs.Name())
	defer errs.Close()
	argv := append([]string{rt.bin, "--root", rt.root}, args...)
	if rss {
		argv = append([]string{gnuTime, "-f", "%M", "-o", errs.Name() + ".rss"}, argv...)
		defer os.Remove(errs.Name() + ".rss")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = errs, errs
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	if err != nil {
		out, _ := os.ReadFile(errs.Name())
		return sample{}, fmt.Errorf("%s %s: %v: %s", rt.name, strings.Join(args, " "), err, out)
	}
	if !rss {
		return sample{d: d}, nil
	}
	data, err := os.ReadFile(errs.Name() + ".rss")
	if err != nil {
		return sample{}, err
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return sample{}, fmt.Errorf("GNU time output %q: %w", data, err)
	}
	return sample{d: d, maxRS: kib}, nil
}

func report(rts []*runtimeUnderTest) {
	a, b := rts[0], rts[1]
	fmt.Printf("%-8s %12s %12s %8s   %10s %10s %8s\n", "op", a.name, b.name, "ratio", "RSS "+short(a.name), "RSS "+short(b.name), "ratio")
	for _, op := range []string{"run", "create", "start", "delete"} {
		da, db := median(a.samples[op]), median(b.samples[op])
		ra, rb := a.rss[op], b.rss[op]
		fmt.Printf("%-8s %10.2fms %10.2fms %7.2fx   %8.1fMiB %8.1fMiB %7.2fx\n", op,
			ms(da), ms(db), float64(da)/float64(db), float64(ra)/1024, float64(rb)/1024, float64(ra)/float64(rb))
	}
	fmt.Printf("(latency: median of %d alternating rounds on a /bin/true bundle; RSS: peak of the runtime process over 5 rounds, 0 without %s)\n", len(a.samples["run"]), gnuTime)
}

func short(s string) string {
	if len(s) > 6 {
		return s[:6]
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(s []sample) time.Duration {
	if len(s) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(s))
	for i, x := range s {
		ds[i] = x.d
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}
