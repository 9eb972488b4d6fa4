package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/berth-project/berth/hack/testimage"
)

// soakShim is one shim under the soak: its container, its task client and
// what was measured.
type soakShim struct {
	name   string
	flags  []string
	id     string // the container
	bundle string
	pid    int // the shim's
	conn   *ttrpc.Client
	client taskapi.TTRPCTaskService
	spec   *anypb.Any // the exec's process spec
	done   int        // execs so far
	busy   time.Duration
	points []soakPoint
}

type soakPoint struct {
	execs     int
	rss, anon int64 // KiB
	files     int   // entries in the bundle: what a leak leaves on disk
}

// benchShimSoak starts a private containerd with one sleeping container per
// shim and drives many execs into it directly over the shim's ttrpc socket,
// as containerd does (Exec, Start, Wait, Delete), printing the shim's
// memory along the way: a leak shows as growth after the first tenth.
func benchShimSoak(args []string) error {
	fs := flag.NewFlagSet("bench shim-soak", flag.ExitOnError)
	shimDir := fs.String("shim-dir", "bin", "directory holding containerd-shim-berth-v2 and berth-runtime")
	execs := fs.Int("execs", 100000, "execs into the container per shim")
	ref := fs.Bool("ref", false, "also soak io.containerd.runc.v2 (running berth-runtime), alternating batches with ours")
	batch := fs.Int("batch", 1000, "execs per shim before switching to the other (with -ref)")
	settle := fs.Duration("settle", time.Second, "idle time before each measurement: long enough for a shim's idle trim, so that what is measured is what it keeps, not the garbage of the last execs")
	_ = fs.Parse(args)
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root")
	}
	if *execs < 1 || *batch < 1 {
		return fmt.Errorf("-execs and -batch must be positive")
	}
	dir, err := filepath.Abs(*shimDir)
	if err != nil {
		return err
	}
	// Interrupted, the soak stops between execs and cleans up as on failure.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	d, err := startContainerd(dir)
	if err != nil {
		return err
	}
	defer d.stop()
	shims := []*soakShim{{name: "berth", flags: []string{"--runtime", "io.containerd.berth.v2"}}}
	if *ref {
		shims = append(shims, &soakShim{name: "runc-v2", flags: []string{"--runtime", "io.containerd.runc.v2", "--runc-binary", filepath.Join(dir, "berth-runtime")}})
	}
	defer func() {
		for _, s := range shims {
			if s.conn != nil {
				s.conn.Close()
			}
		}
	}()
	for _, s := range shims {
		if err := d.soakSetup(s); err != nil {
			return err
		}
	}
	time.Sleep(time.Second) // let start-up garbage settle
	for _, s := range shims {
		rss, anon := rollup(s.pid)
		s.points = append(s.points, soakPoint{0, rss, anon, bundleFiles(s.bundle)})
		fmt.Printf("%s: container %s, shim pid %d, RSS %d KiB, anonymous %d KiB, bundle %s\n", s.name, s.id, s.pid, rss, anon, s.bundle)
	}

	checkpoints := soakCheckpoints(*execs)
	step := *execs
	if len(shims) > 1 {
		step = *batch
	}
	for shims[0].done < *execs {
		for _, s := range shims {
			end := min(s.done+step, *execs)
			for s.done < end {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("%s: stopped before exec %d: %w", s.name, s.done+1, err)
				}
				start := time.Now()
				if err := s.exec(ctx, s.done+1); err != nil {
					return err
				}
				s.busy += time.Since(start)
				s.done++
				if checkpoints[s.done] {
					time.Sleep(*settle)
					rss, anon := rollup(s.pid)
					if rss == 0 {
						return fmt.Errorf("%s: shim %d gone after exec %d", s.name, s.pid, s.done)
					}
					p := soakPoint{s.done, rss, anon, bundleFiles(s.bundle)}
					s.points = append(s.points, p)
					fmt.Printf("%-8s exec %7d  RSS %7d KiB  anon %7d KiB  bundle files %6d  %6.0f execs/s\n", s.name, s.done, rss, anon, p.files, float64(s.done)/s.busy.Seconds())
				}
			}
		}
	}

	fmt.Println()
	fmt.Printf("%-10s", "execs")
	for _, s := range shims {
		fmt.Printf(" %14s %14s %14s", s.name+" RSS", s.name+" anon", s.name+" files")
	}
	fmt.Println("   (KiB from /proc/PID/smaps_rollup; entries in the bundle)")
	for i := range shims[0].points {
		fmt.Printf("%-10d", shims[0].points[i].execs)
		for _, s := range shims {
			p := s.points[i]
			fmt.Printf(" %14d %14d %14d", p.rss, p.anon, p.files)
		}
		fmt.Println()
	}
	for _, s := range shims {
		var from soakPoint
		for _, p := range s.points {
			if p.execs == *execs/10 {
				from = p
			}
		}
		last := s.points[len(s.points)-1]
		fmt.Printf("%s: %.0f execs/s (Exec+Start+Wait+Delete); from exec %d to %d: RSS %+d KiB, anonymous %+d KiB, bundle entries %+d\n",
			s.name, float64(s.done)/s.busy.Seconds(), from.execs, last.execs, last.rss-from.rss, last.anon-from.anon, last.files-from.files)
	}
	return nil
}

// soakCheckpoints are the exec counts at which memory is read: 1k, 10k and
// every tenth of n.
func soakCheckpoints(n int) map[int]bool {
	c := map[int]bool{}
	for _, v := range []int{1000, 10000} {
		if v <= n {
			c[v] = true
		}
	}
	for k := 1; k <= 10; k++ {
		if v := n * k / 10; v > 0 {
			c[v] = true
		}
	}
	return c
}

// soakSetup starts s's sleeping container through ctr and connects to its
// shim's ttrpc socket.
func (d *containerd) soakSetup(s *soakShim) error {
	s.id = "soak-" + s.name
	if _, err := d.ctr(append(append([]string{"run", "-d"}, s.flags...), testimage.DefaultName, s.id, "sleep", "100000")...); err != nil {
		return err
	}
	pid, err := d.shimPid(s.id)
	if err != nil {
		return err
	}
	s.pid = pid
	// containerd 1.6 to 2.x: the bundle is
	// <state>/io.containerd.runtime.v2.task/<namespace>/<id>, and the shim
	// writes its address there.
	bundle := filepath.Join(d.dir, "state", "io.containerd.runtime.v2.task", "bench", s.id)
	s.bundle = bundle
	addr, err := os.ReadFile(filepath.Join(bundle, "address"))
	if err != nil {
		return fmt.Errorf("%s: shim address: %w", s.name, err)
	}
	sock, ok := strings.CutPrefix(strings.TrimSpace(string(addr)), "unix://")
	if !ok {
		return fmt.Errorf("%s: shim address %q is not unix://", s.name, addr)
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return fmt.Errorf("%s: dial shim: %w", s.name, err)
	}
	s.conn = ttrpc.NewClient(conn)
	s.client = taskapi.NewTTRPCTaskClient(s.conn)

	// The exec runs as containerd's would: the container's process with
	// other arguments, no terminal, no stdio.
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("%s: config.json: %w", s.name, err)
	}
	if spec.Process == nil {
		return fmt.Errorf("%s: config.json has no process", s.name)
	}
	p := *spec.Process
	p.Args, p.Terminal, p.ConsoleSize = []string{"true"}, false, nil
	v, err := json.Marshal(&p)
	if err != nil {
		return err
	}
	s.spec = &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: v}
	return nil
}

// exec runs exec number n to its end and deletes it.
func (s *soakShim) exec(ctx context.Context, n int) error {
	ctx = ttrpc.WithMetadata(ctx, ttrpc.MD{"containerd-namespace-ttrpc": []string{"bench"}})
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	execID := "soak" + strconv.Itoa(n)
	fail := func(what string, err error) error {
		return fmt.Errorf("%s: exec %d (%s): %s: %w", s.name, n, execID, what, err)
	}
	if _, err := s.client.Exec(ctx, &taskapi.ExecProcessRequest{ID: s.id, ExecID: execID, Spec: s.spec}); err != nil {
		return fail("Exec", err)
	}
	if _, err := s.client.Start(ctx, &taskapi.StartRequest{ID: s.id, ExecID: execID}); err != nil {
		_, _ = s.client.Delete(ctx, &taskapi.DeleteRequest{ID: s.id, ExecID: execID})
		return fail("Start", err)
	}
	w, err := s.client.Wait(ctx, &taskapi.WaitRequest{ID: s.id, ExecID: execID})
	if err != nil {
		return fail("Wait", err)
	}
	if w.ExitStatus != 0 {
		return fail("Wait", fmt.Errorf("exit status %d", w.ExitStatus))
	}
	if _, err := s.client.Delete(ctx, &taskapi.DeleteRequest{ID: s.id, ExecID: execID}); err != nil {
		return fail("Delete", err)
	}
	return nil
}

// rollup reads a process's RSS and anonymous memory in KiB, 0 if it is gone.
func rollup(pid int) (rss, anon int64) {
	m := smapsRollup(pid)
	return m["Rss"], m["Anonymous"]
}

// bundleFiles counts the entries in a bundle directory, -1 if unreadable.
func bundleFiles(dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	return len(entries)
}
