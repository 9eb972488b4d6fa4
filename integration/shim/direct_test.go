//go:build linux

package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/internal/ctrd"
	"github.com/berth-project/berth/integration/testenv"
)

// The tests in this file and taskv3_test.go drive the shim binary directly,
// as each containerd version starts it, without a containerd: they run
// `start` with that version's flags, environment and stdin, read the reply
// the way that version does, and talk to the shim over ttrpc. A fake
// containerd events service takes the events the shim forwards.

// manager is how one containerd version starts a shim.
type manager struct {
	name string
	// env is MAX_SHIM_VERSION, "" for none.
	maxShimVersion string
	// bootstrapParams: stdin is a BootstrapParams (containerd 2.3), not
	// the runtime options Any.
	bootstrapParams bool
}

var (
	containerd16 = manager{name: "containerd 1.6"}
	containerd17 = manager{name: "containerd 1.7 to 2.2", maxShimVersion: "2"}
	containerd23 = manager{name: "containerd 2.3", maxShimVersion: "2", bootstrapParams: true}
)

// parseReply reads start's output as m does: the task API version it will
// use and the address it dials (without unix://).
func (m manager) parseReply(out []byte) (version int, address string, err error) {
	switch {
	case m.bootstrapParams:
		var r bootapi.BootstrapResult
		if err := proto.Unmarshal(out, &r); err != nil {
			return 0, "", fmt.Errorf("%s: reply %q is no BootstrapResult: %w", m.name, out, err)
		}
		if r.Protocol != "ttrpc" {
			return 0, "", fmt.Errorf("%s: protocol %q", m.name, r.Protocol)
		}
		version, address = int(r.Version), r.Address
	case m.maxShimVersion != "":
		out = bytes.TrimSpace(out)
		var r struct {
			Version  int    `json:"version"`
			Address  string `json:"address"`
			Protocol string `json:"protocol"`
		}
		if json.Unmarshal(out, &r) != nil || r.Version < 2 {
			version, address = 2, string(out)
		} else {
			version, address = r.Version, r.Address
		}
		if version > 2 { // containerd 1.7 refuses more; 2.x would take 3
			return 0, "", fmt.Errorf("%s: unsupported shim version %d", m.name, version)
		}
	default:
		version, address = 2, string(bytes.TrimSpace(out))
	}
	sock, ok := strings.CutPrefix(address, "unix://")
	if !ok {
		return 0, "", fmt.Errorf("%s: address %q is not unix://", m.name, address)
	}
	return version, sock, nil
}

// direct is one test's shim environment without containerd: a namespace,
// a containerd address that only names the test, a fake events service on
// its ttrpc socket, and a runtime root of its own.
type direct struct {
	t       *testing.T
	shimBin string
	ociBin  string
	ns      string
	dir     string
	address string // containerd's gRPC address as the shim is told it
	root    string // the OCI runtime's --root (the shim adds the namespace)
	events  *eventSink
}

func newDirect(t *testing.T) *direct {
	t.Helper()
	testenv.RequireRoot(t)
	tg := selectTarget(t)
	if os.Getenv("SHIM") == "runc" {
		t.Skip("drives containerd-shim-berth-v2 directly: the protocols of containerd 1.7 and later, which containerd-shim-runc-v2 1.6 does not speak")
	}
	dir, err := os.MkdirTemp("", "berth-shim-") // short: socket paths must fit sun_path
	if err != nil {
		t.Fatal(err)
	}
	d := &direct{
		t: t, shimBin: tg.shim, ociBin: tg.ociBin, dir: dir,
		ns:      "berth-shim-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		address: filepath.Join(dir, "containerd.sock"),
		root:    filepath.Join(dir, "runtime"),
	}
	d.events = serveEvents(t, d.address+".ttrpc")
	t.Cleanup(func() {
		testenv.RemoveCgroups(t, d.ns)
		if left, _ := os.ReadDir(filepath.Join(d.root, d.ns)); len(left) > 0 {
			t.Errorf("runtime state left in %s: %v", filepath.Join(d.root, d.ns), left)
		}
		if err := ctrd.UnmountUnder(dir); err != nil {
			t.Errorf("unmount under %s: %v", dir, err)
		}
		os.RemoveAll(dir)
	})
	return d
}

// bundle writes the bundle of container id running args, in the test's
// cgroup parent, as containerd would lay it out (without rootfs mounts).
func (d *direct) bundle(id string, args ...string) string {
	d.t.Helper()
	b := filepath.Join(d.dir, id)
	if err := testimage.WriteBundle(b, testimage.Options{Args: args}); err != nil {
		d.t.Fatal(err)
	}
	spec := testimage.DefaultSpec(args...)
	spec.Linux.CgroupsPath = "/" + d.ns + "/" + id
	if err := testimage.WriteSpec(b, spec); err != nil {
		d.t.Fatal(err)
	}
	return b
}

// options are the runc options the tests send: the OCI runtime under test
// with the test's root.
func (d *direct) options(shimCgroup string) *anypb.Any {
	d.t.Helper()
	v, err := proto.Marshal(&options.Options{BinaryName: d.ociBin, Root: d.root, ShimCgroup: shimCgroup})
	if err != nil {
		d.t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: v} // as containerd names it
}

// shim is a running shim server.
type shim struct {
	bundle  string
	pid     int
	start   string // its start time, see startTime
	sock    string
	version int // the task API the reply announced
	client  *ttrpc.Client
}

// startShim runs `<shim> start` for container id in bundle as m does,
// with the runtime options opts (nil for none), and connects to the shim
// its reply names. The shim is shut down (or killed) when the test ends.
// socketDir is BootstrapParams' socket_dir (containerd 2.3 only).
func (d *direct) startShim(m manager, id, bundle string, opts *anypb.Any, socketDir string) *shim {
	d.t.Helper()
	cmd := exec.Command(d.shimBin, "-namespace", d.ns, "-address", d.address, "-publish-binary", "/bin/false", "-id", id, "start")
	cmd.Dir = bundle
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "MAX_SHIM_VERSION=") || strings.HasPrefix(kv, "TTRPC_ADDRESS=") || strings.HasPrefix(kv, "GRPC_ADDRESS=")
	})
	cmd.Env = append(cmd.Env, "GOMAXPROCS=2", "TTRPC_ADDRESS="+d.address+".ttrpc", "GRPC_ADDRESS="+d.address, "NAMESPACE="+d.ns)
	if m.maxShimVersion != "" {
		cmd.Env = append(cmd.Env, "MAX_SHIM_VERSION="+m.maxShimVersion)
	}
	var stdin proto.Message
	switch {
	case m.bootstrapParams:
		p := &bootapi.BootstrapParams{
			InstanceID: id, Namespace: d.ns, ContainerdVersion: "2.3.0",
			ContainerdTtrpcAddress: d.address + ".ttrpc", ContainerdGrpcAddress: d.address, ContainerdBinary: "/bin/false",
		}
		if socketDir != "" {
			p.SocketDir = &socketDir
		}
		if opts != nil {
			p.Extensions = []*bootapi.Extension{{Value: opts}}
		}
		stdin = p
	case opts != nil:
		stdin = opts
	}
	if stdin != nil {
		b, err := proto.Marshal(stdin)
		if err != nil {
			d.t.Fatal(err)
		}
		cmd.Stdin = bytes.NewReader(b)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		d.t.Fatalf("%s: shim start: %v\n%s", m.name, err, stderr.String())
	}
	s := &shim{bundle: bundle}
	if b, err := os.ReadFile(filepath.Join(bundle, "shim.pid")); err == nil {
		s.pid, _ = strconv.Atoi(string(b))
		s.start, _ = startTime(s.pid)
	}
	if s.pid == 0 {
		d.t.Fatalf("%s: shim start wrote no shim.pid in the bundle", m.name)
	}
	d.t.Cleanup(func() { d.stopShim(s) })
	s.version, s.sock, err = m.parseReply(out)
	if err != nil {
		d.t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(bundle, "address")); err != nil || string(b) != "unix://"+s.sock {
		d.t.Errorf("%s: the bundle's address file holds %q (%v), want unix://%s", m.name, b, err, s.sock)
	}
	conn, err := net.Dial("unix", s.sock)
	if err != nil {
		d.t.Fatalf("%s: dial the shim: %v", m.name, err)
	}
	s.client = ttrpc.NewClient(conn)
	return s
}

// stopShim asks the shim to exit, and kills it (by its pid) if it does not.
func (d *direct) stopShim(s *shim) {
	if s.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.client.Call(ctx, "containerd.task.v2.Task", "Shutdown", &taskapi.ShutdownRequest{Now: true}, &emptypb.Empty{})
		cancel()
		s.client.Close()
		if err != nil && !processGone(s.pid, s.start) {
			d.t.Logf("shutdown shim %d: %v", s.pid, err)
		}
	}
	killed := false
	if !waitUntil(10*time.Second, func() bool { return processGone(s.pid, s.start) }) {
		d.t.Errorf("shim %d still runs after Shutdown; killing it", s.pid)
		unix.Kill(s.pid, unix.SIGKILL)
		waitUntil(10*time.Second, func() bool { return processGone(s.pid, s.start) })
		killed = true
	}
	sock := s.sock
	if sock == "" { // the reply was not understood: the bundle has it too
		b, _ := os.ReadFile(filepath.Join(s.bundle, "address"))
		sock, _ = strings.CutPrefix(string(b), "unix://")
	}
	if sock != "" {
		if _, err := os.Stat(sock); err == nil {
			if !killed {
				d.t.Errorf("the shim left its socket %s", sock)
			}
			os.Remove(sock)
		}
	}
}

// eventSink is containerd's ttrpc events service, as much of it as the
// shim uses: it records what the shim forwards.
type eventSink struct {
	mu     sync.Mutex
	events []sunkEvent
}

type sunkEvent struct {
	Topic, Namespace, Container string
	ExitStatus                  uint32 // of /tasks/exit
}

func serveEvents(t *testing.T, sock string) *eventSink {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	sink := &eventSink{}
	eventsapi.RegisterTTRPCEventsService(srv, sink)
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	return sink
}

func (s *eventSink) Forward(ctx context.Context, req *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	env := req.GetEnvelope()
	ev := sunkEvent{Topic: env.GetTopic(), Namespace: env.GetNamespace()}
	var msg interface {
		proto.Message
		GetContainerID() string
	}
	switch ev.Topic {
	case "/tasks/create":
		msg = &eventstypes.TaskCreate{}
	case "/tasks/start":
		msg = &eventstypes.TaskStart{}
	case "/tasks/exit":
		msg = &eventstypes.TaskExit{}
	case "/tasks/delete":
		msg = &eventstypes.TaskDelete{}
	}
	if msg != nil {
		if err := proto.Unmarshal(env.GetEvent().GetValue(), msg); err != nil {
			return nil, err
		}
		ev.Container = msg.GetContainerID()
		if exit, ok := msg.(*eventstypes.TaskExit); ok {
			ev.ExitStatus = exit.GetExitStatus()
		}
	}
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	return &emptypb.Empty{}, nil
}

// of returns container id's events once the last of them has topic last.
func (s *eventSink) of(t *testing.T, id, last string) []sunkEvent {
	t.Helper()
	var evs []sunkEvent
	ok := waitUntil(ctrd.WaitTimeout, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		evs = nil
		for _, ev := range s.events {
			if ev.Container == id {
				evs = append(evs, ev)
			}
		}
		return len(evs) > 0 && evs[len(evs)-1].Topic == last
	})
	if !ok {
		t.Fatalf("no %s event of %s; got %+v", last, id, evs)
	}
	return evs
}

// inCgroup tells whether pid is in cgroup path in some hierarchy.
func inCgroup(pid int, path string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	for l := range strings.Lines(string(b)) {
		if strings.HasSuffix(strings.TrimSpace(l), ":"+path) {
			return true
		}
	}
	return false
}

// TestBootstrapForms starts the shim as each containerd version does and
// reads the reply as that version does: the address as text for 1.6, JSON
// version 2 for 1.7 to 2.2 (1.7 refuses 3, and both send
// MAX_SHIM_VERSION=2), a protobuf BootstrapResult version 3 for 2.3. The
// runtime options reach the shim in each (its ShimCgroup option puts the
// shim in that cgroup), and the shim serves the task API the reply names,
// v2 and v3 alike.
func TestBootstrapForms(t *testing.T) {
	d := newDirect(t)
	for i, m := range []manager{containerd16, containerd17, containerd23} {
		t.Run(m.name, func(t *testing.T) {
			d := *d
			d.t = t
			id := fmt.Sprintf("bootstrap-%d", i)
			// The shim's cgroup, in every hierarchy but cpuset (v1), which
			// takes no process until its cpus and mems are set.
			cgroup := "/" + d.ns + "/shim-" + id
			roots := slices.DeleteFunc(testenv.CgroupRoots(), func(r string) bool { return strings.Contains(filepath.Base(r), "cpuset") })
			for _, root := range roots {
				if err := os.MkdirAll(filepath.Join(root, cgroup), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// Runs after the shim is stopped (cleanups run last first).
			t.Cleanup(func() {
				for _, root := range roots {
					unix.Rmdir(filepath.Join(root, cgroup))
				}
			})
			var socketDir string
			if m.bootstrapParams {
				socketDir = filepath.Join(d.dir, "s")
			}
			s := d.startShim(m, id, d.bundle(id, "true"), d.options(cgroup), socketDir)
			want := map[manager]int{containerd16: 2, containerd17: 2, containerd23: 3}[m]
			if s.version != want {
				t.Errorf("reply announces task API v%d, want v%d", s.version, want)
			}
			if socketDir != "" && filepath.Dir(s.sock) != socketDir {
				t.Errorf("socket %s, want it in BootstrapParams' socket_dir %s", s.sock, socketDir)
			}
			if !inCgroup(s.pid, cgroup) {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", s.pid))
				t.Errorf("the ShimCgroup runtime option %s did not reach the shim: it is in\n%s", cgroup, b)
			}
			for _, service := range []string{"containerd.task.v2.Task", "containerd.task.v3.Task"} {
				var resp taskapi.ConnectResponse
				if err := s.client.Call(context.Background(), service, "Connect", &taskapi.ConnectRequest{ID: id}, &resp); err != nil {
					t.Errorf("%s/Connect: %v", service, err)
				} else if int(resp.ShimPid) != s.pid {
					t.Errorf("%s/Connect: shim pid %d, want %d", service, resp.ShimPid, s.pid)
				}
			}
			d.stopShim(s)
			s.client = nil
		})
	}
}
