//go:build linux

package berthd

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/hack/testimage"
	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/integration/testenv/netenv"
)

// image is the test image's name as berth shows it.
const image = "berth-test:latest"

// loadTestImage loads hack/testimage's image into d, offline.
func (d *daemon) loadTestImage() {
	d.t.Helper()
	archive := filepath.Join(d.dir, "berth-test.tar")
	f, err := os.Create(archive)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := testimage.WriteDockerArchive(f, testimage.Options{}); err != nil {
		d.t.Fatal(err)
	}
	f.Close()
	d.run("load", "-q", "-i", archive)
}

// containerDaemon starts a daemon with the test image loaded.
func containerDaemon(t *testing.T, o options) *daemon {
	d := startDaemon(t, o)
	d.loadTestImage()
	return d
}

func (d *daemon) status(name string) string {
	d.t.Helper()
	return strings.TrimSpace(d.run("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name))
}

// TestRunForeground runs containers as `docker run` does: output on the
// matching stream, the exit code as berth's, --rm leaving nothing, stdin
// with -i.
func TestRunForeground(t *testing.T) {
	d := containerDaemon(t, options{})
	r := d.berth("", "run", "--rm", image, "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("run --rm sh -c 'echo out; echo err >&2; exit 3': %v; want exit 3, out on stdout, err on stderr", r)
	}
	if out := d.run("ps", "-aq"); out != "" {
		t.Errorf("after run --rm, ps -a lists %q", out)
	}
	r = d.berth("hello stdin\n", "run", "-i", "--rm", image, "sh", "-c", "read x; echo got $x")
	if r.code != 0 || r.stdout != "got hello stdin\n" {
		t.Errorf("run -i with stdin: %v", r)
	}
	// Without --rm the container stays, exited, with its log.
	r = d.berth("", "run", "--name", "kept", "-e", "GREETING=hi", "-w", "/tmp", "-u", "1000:1000", image, "sh", "-c", "echo $GREETING; pwd; id -u; id -g")
	if want := "hi\n/tmp\n1000\n1000\n"; r.code != 0 || r.stdout != want {
		t.Errorf("run -e -w -u: %v; want stdout %q", r, want)
	}
	if st := d.status("kept"); st != "exited 0" {
		t.Errorf("status after the run: %q, want exited 0", st)
	}
	if out := d.run("logs", "kept"); out != "hi\n/tmp\n1000\n1000\n" {
		t.Errorf("logs: %q", out)
	}
	if out := d.run("ps", "-a", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(out, "kept Exited (0)") {
		t.Errorf("ps -a: %q", out)
	}
	d.run("rm", "kept")
}

// TestDetachedLifecycle runs a container in the background: exec, logs,
// stop, start again, wait, remove.
func TestDetachedLifecycle(t *testing.T) {
	d := containerDaemon(t, options{})
	id := strings.TrimSpace(d.run("run", "-d", "--name", "bg", image, "sh", "-c", "trap 'echo bye; exit 7' TERM; echo started; while true; do sleep 0.1; done"))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want a 64-digit ID", id)
	}
	if st := d.status("bg"); st != "running 0" {
		t.Fatalf("status = %q, want running", st)
	}
	if out := d.run("ps", "--format", "{{.ID}} {{.Names}}"); out != id[:12]+" bg\n" {
		t.Errorf("ps: %q", out)
	}
	r := d.berth("", "exec", "bg", "sh", "-c", "echo in-exec; echo to-err >&2; exit 5")
	if r.code != 5 || r.stdout != "in-exec\n" || r.stderr != "to-err\n" {
		t.Errorf("exec: %v; want exit 5 with its output", r)
	}
	r = d.berth("exec input\n", "exec", "-i", "bg", "cat")
	if r.code != 0 || r.stdout != "exec input\n" {
		t.Errorf("exec -i cat: %v", r)
	}
	waitFor(t, "the log to hold 'started'", func() bool { return d.run("logs", "bg") == "started\n" })
	if out := d.run("stop", "-t", "5", "bg"); out != "bg\n" {
		t.Errorf("stop printed %q", out)
	}
	if st := d.status("bg"); st != "exited 7" {
		t.Errorf("after stop: %q, want exited 7 (the trap's)", st)
	}
	if out := d.run("logs", "bg"); out != "started\nbye\n" {
		t.Errorf("logs after stop: %q", out)
	}
	if out := d.run("wait", "bg"); out != "7\n" {
		t.Errorf("wait on an exited container: %q", out)
	}
	// Started again, it runs with the same filesystem: a file written in
	// the first run is there.
	d.run("start", "bg")
	d.run("exec", "bg", "sh", "-c", "echo kept > /marker")
	d.run("kill", "bg")
	if out := d.run("wait", "bg"); out != "137\n" {
		t.Errorf("wait after kill: %q, want 137", out)
	}
	d.run("start", "bg")
	if out := d.run("exec", "bg", "cat", "/marker"); out != "kept\n" {
		t.Errorf("a file of the earlier run: %q", out)
	}
	r = d.berth("", "rm", "bg")
	if r.code == 0 || !strings.Contains(r.stderr, "container is running") {
		t.Errorf("rm of a running container: %v; want a refusal", r)
	}
	d.run("rm", "-f", "bg")
	if out := d.run("ps", "-aq"); out != "" {
		t.Errorf("after rm -f: ps -a lists %q", out)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.state, "containers")); len(entries) != 0 {
		t.Errorf("bundles left in the state directory: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.root, "containers")); len(entries) != 0 {
		t.Errorf("container directories left: %v", entries)
	}
	if out := d.run("ps", "-a"); strings.Count(out, "\n") != 1 {
		t.Errorf("ps -a after rm: %q", out)
	}
}

// TestContainerErrors: what a user gets wrong gets docker's error and exit
// code, and the daemon keeps serving.
func TestContainerErrors(t *testing.T) {
	d := containerDaemon(t, options{})
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"run", "--pull", "never", "no-such-image"}, 125, "No such image"},
		{[]string{"run", "--rm", image, "no-such-command"}, 127, "no-such-command"},
		{[]string{"run", "--rm", "-v", "/no/such/dir:/data", image, "true"}, 125, "does not exist"},
		{[]string{"run", "--rm", "--network", "nonet", image, "true"}, 125, "network nonet not found"},
		{[]string{"run", "--rm", "--network", "bridge", image, "true"}, 125, "not available"},
		{[]string{"run", "--rm", "--name", "bad/name", image, "true"}, 125, "Invalid container name"},
		{[]string{"stop", "no-such-container"}, 1, "No such container"},
		{[]string{"logs", "no-such-container"}, 1, "No such container"},
		{[]string{"exec", "no-such-container", "true"}, 1, "No such container"},
	} {
		r := d.berth("", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("berth %q: %v\nwant exit %d and %q", tc.args, r, tc.code, tc.msg)
		}
	}
	d.run("create", "--name", "taken", image, "true")
	if r := d.berth("", "create", "--name", "taken", image, "true"); r.code != 125 || !strings.Contains(r.stderr, "already in use") {
		t.Errorf("a second container named taken: %v", r)
	}
	if r := d.berth("", "exec", "taken", "true"); r.code == 0 || !strings.Contains(r.stderr, "is not running") {
		t.Errorf("exec in a created container: %v", r)
	}
	d.run("rm", "taken")
	// A failed start is recorded and nothing of it stays.
	if out := d.run("ps", "-aq"); out != "" {
		t.Errorf("containers left after the failures: %q", out)
	}
	if out := d.run("version", "--format", "{{.Server.Version}}"); out == "" {
		t.Error("the daemon stopped answering")
	}
}

// TestContainersOutliveTheDaemon restarts berthd under a running
// container: the container keeps running, is listed and controllable, and
// its log goes on.
func TestContainersOutliveTheDaemon(t *testing.T) {
	d := containerDaemon(t, options{})
	d.run("run", "-d", "--name", "survivor", image, "sh", "-c", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done")
	pid := strings.TrimSpace(d.run("inspect", "-f", "{{.State.Pid}}", "survivor"))
	if err := d.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	d2 := startDaemon(t, options{root: d.root, state: d.state})
	if st := d2.status("survivor"); st != "running 0" {
		t.Fatalf("after berthd restarted: %q, want running", st)
	}
	if got := strings.TrimSpace(d2.run("inspect", "-f", "{{.State.Pid}}", "survivor")); got != pid {
		t.Errorf("pid after restart %s, want %s (the same process)", got, pid)
	}
	before := strings.Count(d2.run("logs", "survivor"), "\n")
	waitFor(t, "the log to grow after the restart", func() bool { return strings.Count(d2.run("logs", "survivor"), "\n") > before+2 })
	if out := d2.run("exec", "survivor", "echo", "still here"); out != "still here\n" {
		t.Errorf("exec after restart: %q", out)
	}
	d2.run("stop", "-t", "1", "survivor")
	if st := d2.status("survivor"); !strings.HasPrefix(st, "exited") {
		t.Errorf("after stop: %q", st)
	}
	d2.run("rm", "survivor")
}

// TestBridgeNetwork runs containers on the bridge network, in a network
// namespace of the test's own: they reach each other, a published port is
// reached from the host's side, and removal takes the veths and rules.
func TestBridgeNetwork(t *testing.T) {
	d := containerDaemon(t, options{network: true})
	if err := d.netns.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatal(err)
	}
	port := 18000 + time.Now().Nanosecond()%1000
	d.run("run", "-d", "--name", "web", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), image,
		"sh", "-c", "mkdir /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www")
	ip := strings.TrimSpace(d.run("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"))
	_, subnet, _ := net.ParseCIDR(d.subnet)
	if parsed := net.ParseIP(ip); parsed == nil || !subnet.Contains(parsed) {
		t.Fatalf("the container's address %q is not in the daemon's subnet %s", ip, d.subnet)
	}
	if out := d.run("ps", "--format", "{{.Ports}}"); out != fmt.Sprintf("127.0.0.1:%d->80/tcp\n", port) {
		t.Errorf("ps PORTS: %q", out)
	}
	var body string
	waitFor(t, "the published port to answer", func() bool {
		var err error
		body, err = netenv.Fetch(d.netns, fmt.Sprintf("127.0.0.1:%d", port))
		return err == nil
	})
	if body != "hello-web\n" {
		t.Errorf("GET through the published port: %q", body)
	}
	// Another container reaches it by address over the bridge.
	r := d.berth("", "run", "--rm", image, "wget", "-q", "-O", "-", "http://"+ip+"/")
	if r.code != 0 || r.stdout != "hello-web\n" {
		t.Errorf("wget from a second container: %v", r)
	}
	if out := d.run("exec", "web", "cat", "/etc/hosts"); !strings.Contains(out, ip+"\t") {
		t.Errorf("/etc/hosts lacks the container's address:\n%s", out)
	}
	if n := len(netenv.Veths(t, d.netns)); n != 1 {
		t.Errorf("%d veths with one container running, want 1", n)
	}
	d.run("rm", "-f", "web")
	if v := netenv.Veths(t, d.netns); len(v) != 0 {
		t.Errorf("veths left after rm: %v", v)
	}
	if _, err := netenv.Fetch(d.netns, fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		t.Error("the published port still answers after rm")
	}
	if rules := netenv.Ruleset(t, d.netns); strings.Contains(rules, ip+" ") || strings.Contains(rules, ip+":") {
		t.Errorf("rules naming %s left after rm:\n%s", ip, rules)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShutdownEndsWaitingCalls stops berthd while clients wait on a
// container (wait, logs -f, an attached run): the daemon does not wait for
// them, they end with an error, and the container runs on.
func TestShutdownEndsWaitingCalls(t *testing.T) {
	d := containerDaemon(t, options{})
	d.run("run", "-d", "--name", "long", image, "sh", "-c", "echo up; while true; do sleep 0.1; done")
	waitFor(t, "the container's first line", func() bool { return d.run("logs", "long") == "up\n" })
	type call struct {
		args []string
		cmd  *exec.Cmd
		out  strings.Builder
	}
	calls := []*call{{args: []string{"wait", "long"}}, {args: []string{"logs", "-f", "long"}}, {args: []string{"attach", "long"}}}
	for _, c := range calls {
		c.cmd = exec.Command(testenv.Binary(t, "berth"), append([]string{"-H", d.host}, c.args...)...)
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	}
	// The logs follower has printed the line: it is streaming.
	waitFor(t, "logs -f to stream", func() bool { return strings.Contains(calls[1].out.String(), "up") })
	// The shutdown timeout is the daemon's default (15 s); the calls are
	// ended at once rather than waited for.
	if err := d.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		c.cmd.Wait()
	}
	if code := calls[0].cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(calls[0].out.String(), "shutting down") {
		t.Errorf("berth wait across the shutdown: exit %d, %q; want a failure saying berthd is shutting down", code, calls[0].out.String())
	}
	if !strings.Contains(d.logTail(), "stopped") {
		t.Errorf("berthd did not stop cleanly:\n%s", d.logTail())
	}
	d2 := startDaemon(t, options{root: d.root, state: d.state})
	if st := d2.status("long"); st != "running 0" {
		t.Errorf("after the shutdown and a restart: %q, want running", st)
	}
}

// TestSystemSeesContainers: info counts containers, system df has their
// line, and system prune removes the stopped ones (but not a running one)
// before the images.
func TestSystemSeesContainers(t *testing.T) {
	d := containerDaemon(t, options{})
	d.run("run", "-d", "--name", "up", image, "sleep", "1000")
	d.run("run", "--name", "done", image, "sh", "-c", "head -c 100000 /dev/zero > /big")
	info := d.run("info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}}")
	if info != "2 1 1\n" {
		t.Errorf("info: containers, running, stopped = %q, want 2 1 1", info)
	}
	df := d.run("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")
	if !strings.Contains(df, "Containers 2 1\n") || !strings.Contains(df, "Images 1 1\n") {
		t.Errorf("system df:\n%s", df)
	}
	out := d.run("system", "prune", "-f")
	upID := strings.TrimSpace(d.run("inspect", "-f", "{{.Id}}", "up"))
	if !strings.Contains(out, "Deleted Containers:") || strings.Contains(out, upID) {
		t.Errorf("system prune:\n%s", out)
	}
	if names := d.run("ps", "-a", "--format", "{{.Names}}"); names != "up\n" {
		t.Errorf("containers after system prune: %q, want only the running one", names)
	}
	if r := d.berth("", "rmi", image); r.code == 0 || !strings.Contains(r.stderr, "container") {
		t.Errorf("rmi of an image a container uses: %v; want a refusal", r)
	}
}

// TestVolumes: a named volume outlives its containers and is filled from
// the image the first time; an anonymous one goes with rm -v; a volume in
// use cannot be removed.
func TestVolumes(t *testing.T) {
	d := containerDaemon(t, options{})
	// The image's /etc is copied into the new volume.
	if out := d.run("run", "--rm", "-v", "conf:/etc", image, "cat", "/etc/berth-release"); out == "" {
		t.Errorf("a new volume on /etc lacks the image's /etc/berth-release")
	}
	d.run("run", "--rm", "-v", "data:/data", image, "sh", "-c", "echo kept > /data/file")
	if out := d.run("run", "--rm", "-v", "data:/data:ro", image, "cat", "/data/file"); out != "kept\n" {
		t.Errorf("the named volume in a second container: %q", out)
	}
	if r := d.berth("", "run", "--rm", "-v", "data:/data:ro", image, "touch", "/data/other"); r.code == 0 {
		t.Errorf("writing to a read-only volume: %v", r)
	}
	if out := d.run("volume", "ls", "-q"); out != "conf\ndata\n" {
		t.Errorf("volume ls -q: %q", out)
	}
	mp := strings.TrimSpace(d.run("volume", "inspect", "-f", "{{.Mountpoint}}", "data"))
	if b, err := os.ReadFile(filepath.Join(mp, "file")); err != nil || string(b) != "kept\n" {
		t.Errorf("the volume's mountpoint %s: %q, %v", mp, b, err)
	}
	d.run("run", "-d", "--name", "user", "-v", "data:/data", "-v", "/anon", image, "sleep", "1000")
	if r := d.berth("", "volume", "rm", "data"); r.code == 0 || !strings.Contains(r.stderr, "in use") {
		t.Errorf("volume rm of a volume in use: %v", r)
	}
	vols := strings.Fields(d.run("volume", "ls", "-q"))
	if len(vols) != 3 {
		t.Fatalf("volumes with an anonymous one: %q", vols)
	}
	d.run("rm", "-f", "-v", "user")
	if out := d.run("volume", "ls", "-q"); out != "conf\ndata\n" {
		t.Errorf("after rm -v, the anonymous volume should be gone: %q", out)
	}
	d.run("volume", "rm", "conf", "data")
	if out := d.run("volume", "ls", "-q"); out != "" {
		t.Errorf("volumes left: %q", out)
	}
}

// TestUserNetworks: a network made with `network create` gets its own
// bridge and subnet; containers join it by name; it cannot go while one
// is attached; removing it takes its bridge.
func TestUserNetworks(t *testing.T) {
	d := containerDaemon(t, options{network: true})
	if out := d.run("network", "ls", "--format", "{{.Name}} {{.Driver}}"); out != "bridge bridge\nhost host\nnone null\n" {
		t.Errorf("network ls of a new daemon: %q", out)
	}
	d.run("network", "create", "--subnet", "10.214.7.0/24", "backend")
	bridge := strings.TrimSpace(d.run("network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "backend"))
	d.run("run", "-d", "--name", "db", "--network", "backend", image, "sh", "-c", "mkdir /www && echo on-backend > /www/index.html && exec httpd -f -p 80 -h /www")
	ip := strings.TrimSpace(d.run("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db"))
	if !strings.HasPrefix(ip, "10.214.7.") {
		t.Errorf("a container on backend has address %q, want one in 10.214.7.0/24", ip)
	}
	var r result
	deadline := time.Now().Add(15 * time.Second)
	for {
		r = d.berth("", "run", "--rm", "--network", "backend", image, "busybox", "timeout", "5", "wget", "-q", "-O", "-", "http://"+ip+"/")
		if r.code == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.stdout != "on-backend\n" {
		t.Errorf("wget between two containers on backend: %v", r)
	}
	if out := d.run("network", "inspect", "-f", "{{len .Containers}}", "backend"); out != "1\n" {
		t.Errorf("backend's containers: %q, want 1", out)
	}
	if r = d.berth("", "network", "rm", "backend"); r.code == 0 || !strings.Contains(r.stderr, "active endpoints") {
		t.Errorf("network rm while a container is on it: %v", r)
	}
	if r = d.berth("", "network", "rm", "bridge"); r.code == 0 || !strings.Contains(r.stderr, "pre-defined") {
		t.Errorf("network rm bridge: %v", r)
	}
	d.run("rm", "-f", "db")
	d.run("network", "rm", "backend")
	if err := d.netns.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName(bridge); err == nil {
			return fmt.Errorf("bridge %s still there", bridge)
		}
		return nil
	}); err != nil || bridge == "" {
		t.Errorf("after network rm: %v (bridge %q)", err, bridge)
	}
	if r = d.berth("", "run", "--rm", "--network", "backend", image, "true"); r.code != 125 || !strings.Contains(r.stderr, "not found") || strings.Contains(r.stderr, "Unable to find image") {
		t.Errorf("run on a removed network: %v", r)
	}
}

// TestPauseRenameTop: pause freezes the container (its log stops
// growing), unpause thaws it, stop works on a paused one; rename moves the
// name; top lists its processes.
func TestPauseRenameTop(t *testing.T) {
	d := containerDaemon(t, options{})
	d.run("run", "-d", "--name", "ticker", image, "sh", "-c", "while true; do echo tick; sleep 0.05; done")
	if out := d.run("top", "ticker"); !strings.Contains(out, "PID") || !strings.Contains(out, "while true") {
		t.Errorf("top:\n%s", out)
	}
	d.run("pause", "ticker")
	if st := d.status("ticker"); st != "paused 0" {
		t.Errorf("after pause: %q", st)
	}
	if out := d.run("ps", "--format", "{{.Status}}"); !strings.HasSuffix(out, "(Paused)\n") {
		t.Errorf("ps of a paused container: %q", out)
	}
	frozen := d.run("logs", "ticker")
	time.Sleep(300 * time.Millisecond) // the container would log about six lines meanwhile
	if again := d.run("logs", "ticker"); again != frozen {
		t.Errorf("the log grew while paused: %d lines, then %d", strings.Count(frozen, "\n"), strings.Count(again, "\n"))
	}
	if r := d.berth("", "exec", "ticker", "true"); r.code == 0 || !strings.Contains(r.stderr, "paused") {
		t.Errorf("exec in a paused container: %v", r)
	}
	d.run("unpause", "ticker")
	waitFor(t, "the log to grow after unpause", func() bool { return len(d.run("logs", "ticker")) > len(frozen) })
	d.run("rename", "ticker", "tocker")
	if r := d.berth("", "inspect", "ticker"); r.code == 0 {
		t.Errorf("the old name still resolves: %v", r)
	}
	d.run("pause", "tocker")
	d.run("stop", "-t", "1", "tocker")
	if st := d.status("tocker"); !strings.HasPrefix(st, "exited") {
		t.Errorf("stop of a paused container: %q", st)
	}
	d.run("rm", "tocker")
}

// TestRestartPolicies: on-failure restarts up to its count, always until
// the user stops it; when berthd starts, it starts the always containers
// and the unless-stopped ones the user did not stop.
func TestRestartPolicies(t *testing.T) {
	d := containerDaemon(t, options{})
	d.run("run", "-d", "--name", "failing", "--restart", "on-failure:2", image, "sh", "-c", "exit 3")
	waitFor(t, "on-failure:2 to give up", func() bool {
		return d.run("inspect", "-f", "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}", "failing") == "2 exited 3\n"
	})
	d.run("run", "-d", "--name", "bouncing", "--restart", "always", image, "sh", "-c", "sleep 0.2")
	waitFor(t, "always to restart twice", func() bool {
		n, _ := strconv.Atoi(strings.TrimSpace(d.run("inspect", "-f", "{{.RestartCount}}", "bouncing")))
		return n >= 2
	})
	d.run("stop", "bouncing")
	if st := d.status("bouncing"); !strings.HasPrefix(st, "exited") {
		t.Errorf("always after stop: %q, want exited", st)
	}
	d.run("run", "-d", "--name", "always", "--restart", "always", image, "sleep", "1000")
	d.run("run", "-d", "--name", "unless", "--restart", "unless-stopped", image, "sleep", "1000")
	d.run("run", "-d", "--name", "unless-stopped-by-user", "--restart", "unless-stopped", image, "sleep", "1000")
	d.run("stop", "-t", "0", "always", "unless-stopped-by-user")
	// The running ones are killed behind berthd's back while it is down,
	// as a reboot would.
	pid := strings.TrimSpace(d.run("inspect", "-f", "{{.State.Pid}}", "unless"))
	if err := d.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n, err := strconv.Atoi(pid); err == nil {
		syscall.Kill(n, syscall.SIGKILL)
	}
	d2 := startDaemon(t, options{root: d.root, state: d.state})
	waitFor(t, "always and unless-stopped to be started by berthd", func() bool {
		return d2.status("always") == "running 0" && d2.status("unless") == "running 0"
	})
	if st := d2.status("unless-stopped-by-user"); !strings.HasPrefix(st, "exited") {
		t.Errorf("unless-stopped that the user stopped: %q after berthd started, want exited", st)
	}
	if st := d2.status("failing"); st != "exited 3" {
		t.Errorf("on-failure after berthd started: %q, want it left exited", st)
	}
}

// TestShimKilled: when a container's shim is killed, berthd cleans up
// after it as containerd does: the container's processes end, it shows as
// exited, and it starts again.
func TestShimKilled(t *testing.T) {
	d := containerDaemon(t, options{})
	id := strings.TrimSpace(d.run("run", "-d", "--name", "orphan", image, "sleep", "1000"))
	pid, _ := strconv.Atoi(strings.TrimSpace(d.run("inspect", "-f", "{{.State.Pid}}", "orphan")))
	b, err := os.ReadFile(filepath.Join(d.state, "containers", id, "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	shim, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "berthd to see the container end", func() bool { return strings.HasPrefix(d.status("orphan"), "exited") })
	waitFor(t, "the container's process to end", func() bool { return !alive(pid) })
	d.run("start", "orphan")
	if st := d.status("orphan"); st != "running 0" {
		t.Errorf("started again after its shim was killed: %q", st)
	}
	d.run("rm", "-f", "orphan")
}

// TestNamesOnUserNetworks: containers on a user-defined network reach each
// other by name (through the /etc/hosts berthd keeps), and a container that
// stops is dropped from the others'.
func TestNamesOnUserNetworks(t *testing.T) {
	d := containerDaemon(t, options{network: true})
	d.run("network", "create", "app")
	d.run("run", "-d", "--name", "db", "--network", "app", image, "sh", "-c", "mkdir /www && echo from-db > /www/index.html && exec httpd -f -p 80 -h /www")
	d.run("run", "-d", "--name", "web", "--network", "app", image, "sleep", "1000")
	var r result
	deadline := time.Now().Add(15 * time.Second)
	for {
		r = d.berth("", "exec", "web", "busybox", "timeout", "5", "wget", "-q", "-O", "-", "http://db/")
		if r.code == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.stdout != "from-db\n" {
		t.Errorf("web fetching http://db/ by name: %v", r)
	}
	if out := d.run("exec", "db", "cat", "/etc/hosts"); !strings.Contains(out, "\tweb ") {
		t.Errorf("db's /etc/hosts lacks web:\n%s", out)
	}
	d.run("stop", "-t", "1", "db")
	if out := d.run("exec", "web", "cat", "/etc/hosts"); strings.Contains(out, "\tdb ") {
		t.Errorf("web's /etc/hosts still names db after it stopped:\n%s", out)
	}
	// The default bridge network has no names, as docker's.
	d.run("run", "-d", "--name", "plain", image, "sleep", "1000")
	if out := d.run("exec", "plain", "cat", "/etc/hosts"); strings.Contains(out, "berth: other containers") {
		t.Errorf("a container on the default bridge got peers:\n%s", out)
	}
}

// TestSecurityOpts: containers run under docker's seccomp profile unless
// privileged or seccomp=unconfined; no-new-privileges reaches the process.
func TestSecurityOpts(t *testing.T) {
	d := containerDaemon(t, options{})
	status := func(args ...string) string {
		return d.run(append(append([]string{"run", "--rm"}, args...), image, "grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status")...)
	}
	if out := status(); out != "NoNewPrivs:\t0\nSeccomp:\t2\n" {
		t.Errorf("default: %q, want a seccomp filter (2)", out)
	}
	if out := status("--security-opt", "seccomp=unconfined", "--security-opt", "no-new-privileges"); out != "NoNewPrivs:\t1\nSeccomp:\t0\n" {
		t.Errorf("seccomp=unconfined, no-new-privileges: %q", out)
	}
	if out := status("--privileged"); out != "NoNewPrivs:\t0\nSeccomp:\t0\n" {
		t.Errorf("--privileged: %q, want no filter", out)
	}
	if r := d.berth("", "run", "--rm", "--security-opt", "apparmor=x", image, "true"); r.code != 125 || !strings.Contains(r.stderr, "security-opt") {
		t.Errorf("an unsupported --security-opt: %v", r)
	}
}

// TestLogRotation: with --log-opt max-size and max-file the log rotates
// as docker's json-file does, and berth logs reads across the files;
// --log-driver none keeps no log.
func TestLogRotation(t *testing.T) {
	d := containerDaemon(t, options{})
	// 600 lines of about 80 bytes of JSON each: some 48 kB, more than three
	// files of 10k hold.
	d.run("run", "--name", "chatty", "--log-opt", "max-size=10k", "--log-opt", "max-file=3", image, "sh", "-c", "for i in $(seq 1 600); do echo line$i; done")
	logPath := strings.TrimSpace(d.run("inspect", "-f", "{{.LogPath}}", "chatty"))
	for _, p := range []string{logPath, logPath + ".1", logPath + ".2"} {
		st, err := os.Stat(p)
		if err != nil || st.Size() > 10000 {
			t.Errorf("log file %s: %v, size %v; want it there and at most 10k", p, err, st)
		}
	}
	if _, err := os.Stat(logPath + ".3"); err == nil {
		t.Errorf("a fourth log file with max-file=3")
	}
	lines := strings.Split(strings.TrimSpace(d.run("logs", "chatty")), "\n")
	if last := lines[len(lines)-1]; last != "line600" || len(lines) >= 600 || len(lines) < 200 {
		t.Errorf("logs across the rotated files: %d lines, last %q; want the newest ones, in order, ending with line600", len(lines), last)
	}
	for i := 1; i < len(lines); i++ {
		a, _ := strconv.Atoi(strings.TrimPrefix(lines[i-1], "line"))
		b, _ := strconv.Atoi(strings.TrimPrefix(lines[i], "line"))
		if b != a+1 {
			t.Fatalf("logs out of order at %q, %q", lines[i-1], lines[i])
		}
	}
	d.run("run", "--name", "silent", "--log-driver", "none", image, "echo", "nothing kept")
	if r := d.berth("", "logs", "silent"); r.code == 0 || !strings.Contains(r.stderr, "does not support reading") {
		t.Errorf("logs of a container with --log-driver none: %v", r)
	}
	if r := d.berth("", "run", "--rm", "--log-opt", "max-files=3", image, "true"); r.code != 125 || !strings.Contains(r.stderr, "unknown log opt") {
		t.Errorf("an unknown --log-opt: %v", r)
	}
}

// TestUpdate: update changes a running container's memory and pids limits
// in its cgroup at once, and its restart policy.
func TestUpdate(t *testing.T) {
	d := containerDaemon(t, options{})
	d.run("run", "-d", "--name", "limited", "-m", "64m", image, "sleep", "1000")
	limit := func() string {
		return strings.TrimSpace(d.run("exec", "limited", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"))
	}
	if got := limit(); got != "67108864" {
		t.Fatalf("memory limit before update: %s", got)
	}
	if out := d.run("update", "-m", "128m", "--restart", "always", "limited"); out != "limited\n" {
		t.Errorf("update printed %q", out)
	}
	if got := limit(); got != "134217728" {
		t.Errorf("memory limit after update: %s, want 134217728", got)
	}
	if out := d.run("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}", "limited"); out != "134217728 always\n" {
		t.Errorf("inspect after update: %q", out)
	}
	if r := d.berth("", "update", "-m", "1k", "limited"); r.code == 0 || !strings.Contains(r.stderr, "too small") {
		t.Errorf("update to 1k: %v", r)
	}

	// A pids limit is set, and lifted again with docker's -1.
	pids := func() string {
		return strings.TrimSpace(d.run("exec", "limited", "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"))
	}
	d.run("update", "--pids-limit", "50", "limited")
	if got := pids(); got != "50" {
		t.Errorf("pids.max after update --pids-limit 50: %s", got)
	}
	d.run("update", "--pids-limit", "-1", "limited")
	if got := pids(); got != "max" {
		t.Errorf("pids.max after update --pids-limit -1: %s, want max", got)
	}
	if out := d.run("inspect", "-f", "{{.HostConfig.PidsLimit}}", "limited"); out != "<nil>\n" {
		t.Errorf("inspect after the pids limit was lifted: %q, want <nil>", out)
	}
}

// TestContainerEvents: a container's life shows in berth events as
// docker's: create, attach, start, die and destroy for a run --rm.
func TestContainerEvents(t *testing.T) {
	d := containerDaemon(t, options{})
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	id := strings.TrimSpace(d.run("create", "--name", "evented", "--rm", image, "true"))
	d.run("start", "-a", "evented")
	waitFor(t, "--rm to remove it", func() bool { return d.run("ps", "-aq") == "" })
	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	out := d.run("events", "--since", since, "--until", until, "--filter", "container="+id, "--format", "{{.Action}}")
	if got := strings.Fields(out); !slices.Equal(got, []string{"create", "attach", "start", "die", "destroy"}) {
		t.Errorf("events of a run --rm: %q, want create attach start die destroy", got)
	}
}

// TestOrphanedBundle: what a berthd that died in the middle of a start
// left (a bundle with a mounted root filesystem, for a container it never
// recorded as running) is cleaned up when berthd starts again.
func TestOrphanedBundle(t *testing.T) {
	d := containerDaemon(t, options{})
	if err := d.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(d.state, "containers", strings.Repeat("ab", 32))
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", rootfs, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(rootfs, syscall.MNT_DETACH) })
	startDaemon(t, options{root: d.root, state: d.state})
	if _, err := os.Stat(bundle); err == nil {
		t.Errorf("the orphaned bundle %s is still there after berthd started", bundle)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), rootfs) {
		t.Errorf("the orphaned root filesystem %s is still mounted", rootfs)
	}
}
