//go:build linux

package berthd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/integration/testenv"
)

const notRunning = "Is berthd running? Start it with `berthd &` or `systemctl start berthd`"

func TestVersion(t *testing.T) {
	d := startDaemon(t, options{})
	out := d.run("version")
	for _, want := range []string{`^Client:\n Version: +\S+\n`, `\nServer: berth\n berthd:\n  Version: +\S+\n  API version: +1\.\d+\n`,
		`\n berth-snapshotter:\n  Version: +\S+\n  Address: +` + regexp.QuoteMeta(filepath.Join(d.state, "snapshotter.sock")) + `\n  Backend: +(overlay|native)\n`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("berth version does not match %s:\n%s", want, out)
		}
	}
	// The same build on both sides.
	if c, s := d.run("version", "--format", "{{.Client.Version}}"), d.run("version", "--format", "{{.Server.Version}}"); c != s || strings.TrimSpace(c) == "" {
		t.Errorf("client version %q, server version %q", c, s)
	}
	var v struct {
		Client struct{ Version, ApiVersion, GoVersion string }
		Server struct {
			ApiVersion, Os, Arch string
			Components           []struct{ Name, Version string }
		}
	}
	if err := json.Unmarshal([]byte(d.run("version", "--format", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Client.ApiVersion == "" || v.Server.ApiVersion != v.Client.ApiVersion || v.Server.Os != "linux" || len(v.Server.Components) != 2 {
		t.Errorf("version json: %+v", v)
	}
}

func TestInfo(t *testing.T) {
	d := startDaemon(t, options{})
	var info struct {
		ID, Name, Driver, DockerRootDir, StateDir, CgroupVersion, CgroupDriver, KernelVersion, OSType, ServerVersion string
		NCPU, MemTotal, Images                                                                                       int64
		DriverStatus                                                                                                 [][2]string
		RegistryConfig                                                                                               struct{ InsecureRegistries []string }
	}
	if err := json.Unmarshal([]byte(d.run("info", "--format", "{{json .}}")), &info); err != nil {
		t.Fatal(err)
	}
	if info.DockerRootDir != d.root || info.StateDir != d.state {
		t.Errorf("root %q, state %q; want %q, %q", info.DockerRootDir, info.StateDir, d.root, d.state)
	}
	if info.Driver != "overlay" && info.Driver != "native" {
		t.Errorf("storage driver %q", info.Driver)
	}
	if info.CgroupVersion != "1" && info.CgroupVersion != "2" {
		t.Errorf("cgroup version %q", info.CgroupVersion)
	}
	if info.ID == "" || info.NCPU < 1 || info.MemTotal <= 0 || info.KernelVersion == "" || info.OSType != "linux" || info.Images != 0 {
		t.Errorf("info: %+v", info)
	}
	if !strings.Contains(fmt.Sprint(info.DriverStatus), "Snapshotter "+filepath.Join(d.state, "snapshotter.sock")) {
		t.Errorf("driver status %v lacks the snapshotter", info.DriverStatus)
	}
	if !strings.Contains(fmt.Sprint(info.RegistryConfig.InsecureRegistries), "127.0.0.0/8") {
		t.Errorf("insecure registries %v", info.RegistryConfig.InsecureRegistries)
	}
	out := d.run("info")
	for _, want := range []string{"Server:\n Containers: 0\n  Running: 0\n  Paused: 0\n  Stopped: 0\n Images: 0\n", " Storage Driver: " + info.Driver + "\n", " Berth Root Dir: " + d.root + "\n", " ID: " + info.ID + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("berth info lacks %q:\n%s", want, out)
		}
	}
	// docker's scripts' idiom works.
	if got := d.run("info", "--format", "{{.DockerRootDir}}"); got != d.root+"\n" {
		t.Errorf("{{.DockerRootDir}} = %q", got)
	}
	// `system info` is `info`.
	if got := d.run("system", "info", "--format", "{{.ID}}"); got != info.ID+"\n" {
		t.Errorf("system info ID = %q", got)
	}
}

func TestSystemDF(t *testing.T) {
	d := startDaemon(t, options{})
	out := d.run("system", "df")
	if !regexp.MustCompile(`^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE\nImages\s+0\s+0\s+0B\s+0B\nContainers\s+0\s+0\s+0B\s+0B\n$`).MatchString(out) {
		t.Errorf("berth system df:\n%s", out)
	}
	if got := d.run("system", "df", "--format", "{{.Type}}:{{.TotalCount}}:{{.Size}}"); got != "Images:0:0B\nContainers:0:0B\n" {
		t.Errorf("--format template: %q", got)
	}
	var row map[string]string
	if err := json.Unmarshal([]byte(strings.SplitN(d.run("system", "df", "--format", "json"), "\n", 2)[0]), &row); err != nil || row["Type"] != "Images" {
		t.Errorf("--format json: %v, %v", row, err)
	}
	if got := d.run("system", "df", "--format", `table {{.Type}}\t{{.Reclaimable}}`); !regexp.MustCompile(`^TYPE\s+RECLAIMABLE\nImages\s+0B\nContainers\s+0B\n$`).MatchString(got) {
		t.Errorf("--format table: %q", got)
	}
	if got := d.run("system", "df", "-v"); !strings.HasPrefix(got, "Images space usage:\n\nREPOSITORY") {
		t.Errorf("-v: %q", got)
	}
}

func TestSystemPrune(t *testing.T) {
	d := startDaemon(t, options{})
	if got := d.run("system", "prune", "-f"); got != "Total reclaimed space: 0B\n" {
		t.Errorf("prune -f: %q", got)
	}
	if got := d.run("system", "prune", "-a", "-f", "--filter", "until=1h"); got != "Total reclaimed space: 0B\n" {
		t.Errorf("prune -a -f --filter until=1h: %q", got)
	}
	r := d.berth("n\n", "system", "prune")
	if r.code != 1 || !strings.Contains(r.stdout, "Are you sure you want to continue? [y/N]") || !strings.Contains(r.stderr, "cancelled") {
		t.Errorf("prune answered no: %v", r)
	}
	if r := d.berth("y\n", "system", "prune"); r.code != 0 || !strings.Contains(r.stdout, "Total reclaimed space: 0B") {
		t.Errorf("prune answered yes: %v", r)
	}
	// An error the daemon finds travels with its kind and docker's wording.
	r = d.berth("", "system", "prune", "-f", "--filter", "bogus=1")
	if r.code != 1 || r.stderr != "Error response from daemon: invalid filter 'bogus'\n" {
		t.Errorf("prune with a bad filter: %v", r)
	}
}

func TestEvents(t *testing.T) {
	d := startDaemon(t, options{})
	old := d.snapshotterPID()
	if old == 0 {
		t.Fatal("berthd has no snapshotter child")
	}
	t0 := time.Now()
	since := fmt.Sprintf("%d.%09d", t0.Unix(), t0.Nanosecond())

	// A live subscriber, started before anything happens; --since makes
	// sure nothing is missed between its start and its subscription.
	cmd := exec.Command(testenv.Binary(t, "berth"), "-H", d.host, "events", "--since", since,
		"--filter", "type=snapshotter", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.pid}} {{.Actor.ID}}")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	// Something happens: the snapshotter dies, and is started again.
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nu := d.waitSnapshotter(old)
	sock := filepath.Join(d.state, "snapshotter.sock")
	for _, want := range []string{
		fmt.Sprintf("snapshotter die %d %s", old, sock),
		fmt.Sprintf("snapshotter start %d %s", nu, sock),
	} {
		select {
		case got, ok := <-lines:
			if !ok {
				t.Fatalf("berth events ended: %s", stderr.String())
			}
			if got != want {
				t.Errorf("event %q, want %q", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no event %q within 30s", want)
		}
	}

	// The same events, asked for afterwards, with an end: the stream stops
	// by itself. docker's default line and JSON.
	until := time.Now().Add(time.Second).Format(time.RFC3339Nano)
	out := d.run("events", "--since", since, "--until", until, "--filter", "event=die")
	want := regexp.MustCompile(fmt.Sprintf(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\S+ snapshotter die %s \(pid=%d, signal=killed\)\n$`, regexp.QuoteMeta(sock), old))
	if !want.MatchString(out) {
		t.Errorf("berth events --until, default format:\n%q", out)
	}
	var msg struct {
		Type, Action string
		Actor        struct {
			ID         string
			Attributes map[string]string
		}
		TimeNano int64 `json:"timeNano"`
	}
	out = d.run("events", "--since", since, "--until", until, "--filter", "event=die", "--format", "json")
	if err := json.Unmarshal([]byte(out), &msg); err != nil || msg.Type != "snapshotter" || msg.Actor.Attributes["signal"] != "killed" || msg.TimeNano < t0.UnixNano() {
		t.Errorf("--format json: %q (%v)", out, err)
	}
	// A filter that matches nothing: no output, and the stream ends at --until.
	if out := d.run("events", "--since", since, "--until", until, "--filter", "type=image"); out != "" {
		t.Errorf("type=image: %q", out)
	}
	if r := d.berth("", "events", "--filter", "bogus=1"); r.code != 1 || !strings.Contains(r.stderr, "Error response from daemon: invalid filter 'bogus'") {
		t.Errorf("a bad filter: %v", r)
	}
	if r := d.berth("", "events", "--since", "yesterday"); r.code != 125 {
		t.Errorf("a bad --since: %v", r)
	}
}

func TestSnapshotterRestartedWhenKilled(t *testing.T) {
	d := startDaemon(t, options{})
	for range 2 {
		old := d.snapshotterPID()
		if old == 0 {
			t.Fatal("berthd has no snapshotter child")
		}
		syscall.Kill(old, syscall.SIGKILL)
		nu := d.waitSnapshotter(old)
		if !alive(nu) {
			t.Fatalf("the new snapshotter (pid %d) is not running", nu)
		}
		// berthd reaches the new one: its calls go through.
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := d.berth("", "system", "df")
			if r.code == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("berthd does not reach the restarted snapshotter: %v", r)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if d.exited() {
		t.Fatal("berthd exited")
	}
}

func TestNotRunning(t *testing.T) {
	testenv.RequireRoot(t)
	dir := newDir(t)
	host := "unix://" + filepath.Join(dir, "berthd.sock")
	want := "Cannot connect to the berth daemon at " + host + ". " + notRunning + "\n"
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"-H", host, "info"}},
		{nil, []string{"--host", host, "system", "df"}},
		{[]string{"BERTH_HOST=" + host}, []string{"events"}},
		{[]string{"BERTH_HOST=" + host}, []string{"system", "prune", "-f"}},
	} {
		r := berth(t, tc.env, "", tc.args...)
		if r.code != 1 || r.stderr != want {
			t.Errorf("berth %q with %q: %v\nwant exit 1 and %q", tc.args, tc.env, r, want)
		}
	}
	// version shows the client's side, then fails.
	r := berth(t, nil, "", "-H", host, "version")
	if r.code != 1 || r.stderr != want || !strings.HasPrefix(r.stdout, "Client:\n") || strings.Contains(r.stdout, "Server") {
		t.Errorf("berth version: %v", r)
	}
	// A socket left by a daemon that was killed: not running either.
	d := startDaemon(t, options{})
	d.cmd.Process.Kill()
	<-d.done
	r = d.berth("", "info")
	if r.code != 1 || !strings.Contains(r.stderr, notRunning) {
		t.Errorf("after the daemon was killed: %v", r)
	}
	// ...and the next berthd replaces the stale socket.
	d2 := newDaemon(t, options{root: d.root, state: d.state})
	if err := d2.start(); err != nil {
		t.Fatalf("berthd on the root of a killed one: %v", err)
	}
	d2.run("info")
}

func TestUsageErrors(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"version", "--bogus"}, 125, "unknown flag: --bogus\nSee 'berth version --help'.\n"},
		{[]string{"system", "df", "--bogus"}, 125, "unknown flag: --bogus\nSee 'berth system df --help'.\n"},
		{[]string{"bogus"}, 1, "berth: 'bogus' is not a berth command.\nSee 'berth --help'\n"},
		{[]string{"info", "extra"}, 1, "\"berth info\" accepts no arguments."},
		{[]string{"-H", "tcp://127.0.0.1:2375", "info"}, 1, "berth speaks only unix:// sockets"},
		{[]string{"version", "--format", "{{"}, 64, "template parsing error"},
	} {
		r := berth(t, nil, "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("berth %q: %v\nwant exit %d and %q", tc.args, r, tc.code, tc.stderr)
		}
	}
	if r := berth(t, nil, "", "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "berth version ") {
		t.Errorf("berth --version: %v", r)
	}
}

func TestTwoDaemonsSideBySide(t *testing.T) {
	a := startDaemon(t, options{})
	b := startDaemon(t, options{})
	idA, idB := a.run("info", "--format", "{{.ID}}"), b.run("info", "--format", "{{.ID}}")
	if idA == idB {
		t.Errorf("two daemons with one ID %q", idA)
	}
	if got := a.run("info", "--format", "{{.DockerRootDir}}"); got != a.root+"\n" {
		t.Errorf("a answers with root %q", got)
	}
	if got := b.run("info", "--format", "{{.DockerRootDir}}"); got != b.root+"\n" {
		t.Errorf("b answers with root %q", got)
	}
	if a.snapshotterPID() == b.snapshotterPID() {
		t.Error("the daemons share a snapshotter")
	}
	// Stopping one leaves the other serving.
	if err := a.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	b.run("system", "df")
	// The daemon ID stays with its root.
	a2 := newDaemon(t, options{root: a.root, state: a.state})
	if err := a2.start(); err != nil {
		t.Fatal(err)
	}
	if got := a2.run("info", "--format", "{{.ID}}"); got != idA {
		t.Errorf("ID after restart %q, want %q", got, idA)
	}
}

func TestSecondDaemonOnTheSameRootFails(t *testing.T) {
	first := startDaemon(t, options{})
	for _, tc := range []struct {
		name, flag string
		o          options
	}{
		{"same root", "--root " + first.root, options{root: first.root}},
		// Its own socket, so that the lock is what stops it.
		{"same state", "--state " + first.state, options{state: first.state, sock: filepath.Join(newDir(t), "other.sock")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			second := newDaemon(t, tc.o)
			err := second.start()
			if err == nil {
				t.Fatal("a second berthd started")
			}
			select {
			case <-second.done:
			case <-time.After(10 * time.Second):
				t.Fatal("the second berthd did not exit")
			}
			if second.cmd.ProcessState.ExitCode() != 1 {
				t.Errorf("exit %v, want 1", second.cmd.ProcessState)
			}
			want := fmt.Sprintf("berthd: %s is in use by another berthd (pid %d): stop it, or give this berthd another %s", tc.flag, first.pid(), strings.Fields(tc.flag)[0])
			if log := second.logTail(); !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		})
	}
	// The first one is undisturbed.
	first.run("info")
	if _, err := os.Stat(filepath.Join(first.state, "berthd.pid")); err != nil {
		t.Errorf("the first daemon's pid file: %v", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t0 := time.Now().Add(-time.Second)
	d := startDaemon(t, options{args: []string{"--group", "54321"}})
	fi, err := os.Stat(d.sock)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Uid != 0 || st.Gid != 54321 {
		t.Errorf("socket mode %v, owner %d:%d; want 0660 root:54321", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	pidFile, err := os.ReadFile(filepath.Join(d.state, "berthd.pid"))
	if err != nil || strings.TrimSpace(string(pidFile)) != strconv.Itoa(d.pid()) {
		t.Errorf("pid file %q, %v; want %d", pidFile, err, d.pid())
	}
	snap := d.snapshotterPID()
	if snap == 0 {
		t.Fatal("no snapshotter child")
	}

	// A subscriber stays connected: the shutdown must end it rather than
	// wait for it. Its --since replays the snapshotter's start, which
	// shows that it has subscribed.
	events := exec.Command(testenv.Binary(t, "berth"), "-H", d.host, "events", "--since", strconv.FormatInt(t0.Unix(), 10))
	var evErr strings.Builder
	evOut, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	events.Stderr = &evErr
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	evDone := make(chan error, 1)
	evExited := make(chan struct{})
	subscribed := make(chan struct{})
	go func() {
		r := bufio.NewReader(evOut)
		if _, err := r.ReadString('\n'); err == nil {
			close(subscribed)
		}
		io.Copy(io.Discard, r)
		evDone <- events.Wait()
		close(evExited)
	}()
	t.Cleanup(func() { events.Process.Kill(); <-evExited })
	select {
	case <-subscribed:
	case <-time.After(20 * time.Second):
		t.Fatalf("berth events showed nothing: %s", evErr.String())
	}

	start := time.Now()
	if err := d.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("shutdown took %s: it waited for the event stream", took)
	}
	if _, err := os.Lstat(d.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(d.state, "snapshotter.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("snapshotter socket left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.state, "berthd.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left: %v", err)
	}
	if alive(snap) {
		t.Errorf("the snapshotter (pid %d) is still running", snap)
	}
	if log := d.logTail(); !strings.Contains(log, "msg=\"shutting down\"") || !strings.Contains(log, "msg=stopped") {
		t.Errorf("log:\n%s", log)
	}
	select {
	case err := <-evDone:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(evErr.String(), "shutting down") {
			t.Errorf("berth events after the shutdown: %v, %q", err, evErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Error("berth events still running after the daemon stopped")
	}
}

func TestGivenSnapshotterAddress(t *testing.T) {
	testenv.RequireRoot(t)
	dir := newDir(t)
	sock := filepath.Join(dir, "snap.sock")
	snap := exec.Command(testenv.Binary(t, "berth-snapshotter"), "--root", filepath.Join(dir, "snap"), "--address", sock)
	snap.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := snap.Start(); err != nil {
		t.Fatal(err)
	}
	snapDone := make(chan struct{})
	go func() { snap.Wait(); close(snapDone) }()
	t.Cleanup(func() {
		snap.Process.Signal(syscall.SIGTERM)
		select {
		case <-snapDone:
		case <-time.After(20 * time.Second):
			snap.Process.Kill()
			<-snapDone
		}
	})

	d := newDaemon(t, options{args: []string{"--snapshotter-address", sock}})
	// The snapshotter may take a moment to serve: berthd refuses to start
	// on a socket that does not answer, so try until it does.
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, serr := os.Stat(sock); serr == nil {
			break
		}
	}
	if err = d.start(); err != nil {
		t.Fatal(err)
	}
	if d.snapshotterPID() != 0 {
		t.Error("berthd started a snapshotter of its own")
	}
	if got := d.run("info", "--format", "{{.Driver}} {{index .DriverStatus 0 1}}"); got != "remote "+sock+"\n" {
		t.Errorf("info: %q", got)
	}
	d.run("system", "df")
	if err := d.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// berthd leaves a snapshotter it did not start running.
	select {
	case <-snapDone:
		t.Error("berthd stopped a snapshotter it did not start")
	default:
	}
}
