package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/client"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

func noEnv(string) (string, bool) { return "", false }

func TestCreateRequest(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	if err := os.WriteFile(envFile, []byte("\ufeff# comment\n\nFROM_FILE=1\n  SPACED=a b\nFROM_HOST\nMISSING\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ep := ""
	timeout := 30
	opts := CreateOptions{
		Name: "web", Interactive: true, TTY: true, Rm: true,
		Env:        []string{"A=1", "HOSTVAR", "UNSET", "B=x=y"},
		EnvFile:    []string{envFile},
		Workdir:    "/app",
		User:       "1000:1000",
		Entrypoint: &ep,
		Volumes:    []string{"/host:/ctr:ro", "data:/data", "/anon"},
		Mounts:     []string{"type=bind,source=/src,target=/dst,readonly"},
		Tmpfs:      []string{"/run:size=64m"},
		Publish:    []string{"127.0.0.1:8080:80", "9090:90/udp"},
		Network:    "host",
		DNS:        []string{"1.1.1.1"},
		Hostname:   "h1",
		Labels:     []string{"a=b", "flag"},
		ReadOnly:   true, Privileged: true,
		CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"MKNOD"},
		Memory: "512m", MemorySwap: "-1", CPUs: 1.5, CPUShares: 512, PidsLimit: 100,
		StopSignal: "SIGINT", StopTimeout: &timeout,
		Sysctls: []string{"net.ipv4.ip_forward=1"},
		ShmSize: "128m",
		Restart: "no",
	}
	lookup := func(k string) (string, bool) {
		switch k {
		case "HOSTVAR":
			return "fromhost", true
		case "FROM_HOST":
			return "h", true
		}
		return "", false
	}
	req, err := opts.CreateRequest("busybox", []string{"sh", "-c", "true"}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	cfg := req.GetConfig()
	if req.GetName() != "web" || cfg.GetImage() != "busybox" || !slices.Equal(cfg.GetCmd(), []string{"sh", "-c", "true"}) {
		t.Errorf("name/image/cmd: %v", req)
	}
	if want := []string{"FROM_FILE=1", "SPACED=a b", "FROM_HOST=h", "A=1", "HOSTVAR=fromhost", "B=x=y"}; !slices.Equal(cfg.GetEnv(), want) {
		t.Errorf("env %q, want %q", cfg.GetEnv(), want)
	}
	if !cfg.GetEntrypointSet() || len(cfg.GetEntrypoint()) != 0 {
		t.Errorf("--entrypoint '': %v %v", cfg.GetEntrypointSet(), cfg.GetEntrypoint())
	}
	if cfg.GetMemory() != 512<<20 || cfg.GetMemorySwap() != -1 || cfg.GetShmSize() != 128<<20 {
		t.Errorf("sizes: %d %d %d", cfg.GetMemory(), cfg.GetMemorySwap(), cfg.GetShmSize())
	}
	if cfg.GetNanoCpus() != 1_500_000_000 || cfg.GetCpuShares() != 512 || cfg.GetPidsLimit() != 100 {
		t.Errorf("cpu/pids: %d %d %d", cfg.GetNanoCpus(), cfg.GetCpuShares(), cfg.GetPidsLimit())
	}
	if cfg.GetStopSignal() != "SIGINT" || cfg.GetStopTimeout() != 30 || cfg.GetRestartPolicy() != "no" {
		t.Errorf("stop: %q %d %q", cfg.GetStopSignal(), cfg.GetStopTimeout(), cfg.GetRestartPolicy())
	}
	if cfg.GetLabels()["a"] != "b" || cfg.GetLabels()["flag"] != "" || len(cfg.GetLabels()) != 2 {
		t.Errorf("labels %v", cfg.GetLabels())
	}
	if cfg.GetSysctls()["net.ipv4.ip_forward"] != "1" {
		t.Errorf("sysctls %v", cfg.GetSysctls())
	}
	if !cfg.GetTty() || !cfg.GetOpenStdin() || cfg.GetStdinOnce() || !cfg.GetAutoRemove() || !cfg.GetReadOnly() || !cfg.GetPrivileged() {
		t.Errorf("booleans: %v", cfg)
	}
	if cfg.GetNetworkMode() != "host" || cfg.GetHostname() != "h1" || cfg.GetWorkingDir() != "/app" || cfg.GetUser() != "1000:1000" {
		t.Errorf("network/hostname/workdir/user: %v", cfg)
	}
	wantMounts := []*containersv1.Mount{
		{Type: "bind", Source: "/host", Destination: "/ctr", ReadOnly: true},
		{Type: "volume", Source: "data", Destination: "/data"},
		{Type: "volume", Destination: "/anon"},
		{Type: "bind", Source: "/src", Destination: "/dst", ReadOnly: true},
		{Type: "tmpfs", Destination: "/run"},
	}
	if len(cfg.GetMounts()) != len(wantMounts) {
		t.Fatalf("mounts %v", cfg.GetMounts())
	}
	for i, m := range cfg.GetMounts() {
		w := wantMounts[i]
		if m.GetType() != w.GetType() || m.GetSource() != w.GetSource() || m.GetDestination() != w.GetDestination() || m.GetReadOnly() != w.GetReadOnly() {
			t.Errorf("mount %d: %v, want %v", i, m, w)
		}
	}
	if o := cfg.GetMounts()[4].GetOptions(); !slices.Contains(o, "size=64m") && !slices.ContainsFunc(o, func(s string) bool { return strings.HasPrefix(s, "size=") }) {
		t.Errorf("tmpfs options %q", o)
	}
	wantPorts := []*containersv1.PortBinding{
		{HostIp: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostPort: 9090, ContainerPort: 90, Protocol: "udp"},
	}
	if len(cfg.GetPorts()) != 2 {
		t.Fatalf("ports %v", cfg.GetPorts())
	}
	for i, p := range cfg.GetPorts() {
		if !proto.Equal(p, wantPorts[i]) {
			t.Errorf("port %d: %v, want %v", i, p, wantPorts[i])
		}
	}

	// The defaults: the daemon's network, no entrypoint change; run sets
	// StdinOnce with -i.
	def := CreateOptions{Interactive: true, stdinOnce: true}
	req, err = def.CreateRequest("alpine", nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c := req.GetConfig(); c.GetNetworkMode() != "" || c.GetEntrypointSet() || !c.GetStdinOnce() || c.GetMemory() != 0 {
		t.Errorf("defaults: %v", c)
	}
	ep = "/bin/sh"
	req, _ = (&CreateOptions{Entrypoint: &ep}).CreateRequest("alpine", nil, noEnv)
	if !slices.Equal(req.GetConfig().GetEntrypoint(), []string{"/bin/sh"}) {
		t.Errorf("--entrypoint: %v", req.GetConfig().GetEntrypoint())
	}
}

func TestCreateRequestErrors(t *testing.T) {
	for _, o := range []CreateOptions{
		{Memory: "lots"},
		{ShmSize: "-"},
		{CPUs: -1},
		{Restart: "sometimes"},
		{Restart: "always:3"},
		{Restart: "on-failure:x"},
		{Restart: "always", Rm: true},
		{StopSignal: "SIGNOPE"},
		{Pull: "sometimes"},
		{Volumes: []string{"relative"}},
		{Tmpfs: []string{"rel"}},
		{Mounts: []string{"type=nope,target=/x"}},
		{Publish: []string{"http"}},
		{Env: []string{"=x"}},
		{Sysctls: []string{"novalue"}},
		{EnvFile: []string{"/nonexistent/env"}},
	} {
		_, err := o.CreateRequest("img", nil, noEnv)
		if err == nil {
			t.Errorf("%+v: no error", o)
			continue
		}
		if got := ExitCode(runError(err)); got != 125 {
			t.Errorf("%+v: exit %d, want 125", o, got)
		}
	}
	for _, r := range []string{"", "no", "always", "unless-stopped", "on-failure", "on-failure:5"} {
		if err := validRestart(r); err != nil {
			t.Errorf("--restart %q: %v", r, err)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for s, want := range map[string]int{"TERM": 15, "SIGKILL": 9, "sigint": 2, "hup": 1, "9": 9, "SIGRTMIN": 34} {
		got, err := ParseSignal(s)
		if s == "SIGRTMIN" {
			continue // not every libc names it; a number does
		}
		if err != nil || int(got) != want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "65", "NOPE", "-1"} {
		if _, err := ParseSignal(s); err == nil {
			t.Errorf("ParseSignal(%q): no error", s)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	daemon := func(msg string) error {
		return &client.ResponseError{Msg: msg, Err: errdefs.ErrUnknown}
	}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{startError(daemon(`exec: "nope": executable file not found in $PATH`)), 127},
		{startError(daemon("exec /bin/nope: no such file or directory")), 127},
		{startError(daemon("exec /etc/passwd: permission denied")), 126},
		{startError(daemon("failed to create shim task")), 125},
		{runError(daemon("No such image: nope:latest")), 125},
		{runError(&client.ConnectError{Addr: "unix:///x", Err: errors.New("refused")}), 125},
		{runError(&StatusError{Code: 3}), 3},
		{exitStatus(0), 0},
		{exitStatus(42), 42},
		{execError(daemon(`exec: "nope": executable file not found in $PATH`)), 127},
		{execError(daemon("container is not running")), 1},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.err, got, tc.want)
		}
	}
	if st := exitStatus(3).(*StatusError); st.Msg != "" {
		t.Errorf("a container's exit status prints %q", st.Msg)
	}
}

func TestImageRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                    "busybox:latest",
		"busybox:1.36":               "busybox:1.36",
		"127.0.0.1:5000/app":         "127.0.0.1:5000/app:latest",
		"127.0.0.1:5000/app:v1":      "127.0.0.1:5000/app:v1",
		"alpine@sha256:0123456789ab": "alpine@sha256:0123456789ab",
	} {
		if got := imageRef(in); got != want {
			t.Errorf("imageRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatusString(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-d)) }
	for _, tc := range []struct {
		st   *containersv1.State
		want string
	}{
		{&containersv1.State{Status: "running", StartedAt: ts(3 * time.Minute)}, "Up 3 minutes"},
		{&containersv1.State{Status: "paused", StartedAt: ts(time.Hour)}, "Up About an hour (Paused)"},
		{&containersv1.State{Status: "exited", ExitCode: 0, StartedAt: ts(time.Minute), FinishedAt: ts(2 * time.Second)}, "Exited (0) 2 seconds ago"},
		{&containersv1.State{Status: "exited", ExitCode: 137, StartedAt: ts(time.Hour), FinishedAt: ts(10 * time.Minute)}, "Exited (137) 10 minutes ago"},
		{&containersv1.State{Status: "created"}, "Created"},
		{&containersv1.State{Status: "dead"}, "Dead"},
		{&containersv1.State{Status: "removing"}, "Removal In Progress"},
		{&containersv1.State{Status: "restarting", ExitCode: 1, FinishedAt: ts(5 * time.Second)}, "Restarting (1) 5 seconds ago"},
	} {
		if got := statusString(tc.st, now); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestDisplayPorts(t *testing.T) {
	got := displayPorts([]*containersv1.PortBinding{
		{HostIp: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
		{HostIp: "::1", HostPort: 8443, ContainerPort: 443},
		{ContainerPort: 9000},
	})
	want := "0.0.0.0:5353->53/udp, 127.0.0.1:8080->80/tcp, 9000/tcp, [::1]:8443->443/tcp"
	if got != want {
		t.Errorf("ports %q, want %q", got, want)
	}
}

func testContainer(now time.Time) *containersv1.Container {
	return &containersv1.Container{
		Id:      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Name:    "/web",
		Image:   "nginx:latest",
		ImageId: "sha256:aaaa",
		Created: timestamppb.New(now.Add(-5 * time.Minute)),
		Command: "/docker-entrypoint.sh nginx -g 'daemon off;'",
		Config: &containersv1.Config{
			Image: "nginx:latest", Cmd: []string{"nginx", "-g", "daemon off;"}, Entrypoint: []string{"/docker-entrypoint.sh"},
			Env: []string{"A=1"}, Labels: map[string]string{"tier": "front", "app": "web"}, Hostname: "0123456789ab",
			Ports:         []*containersv1.PortBinding{{HostIp: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
			Mounts:        []*containersv1.Mount{{Type: "bind", Source: "/srv", Destination: "/usr/share/nginx/html", ReadOnly: true}, {Type: "volume", Source: "cache", Destination: "/cache"}, {Type: "tmpfs", Destination: "/tmp", Options: []string{"size=1m"}}},
			NetworkMode:   "bridge",
			RestartPolicy: "on-failure:3",
			StopSignal:    "SIGQUIT",
		},
		State: &containersv1.State{Status: "running", Pid: 4242, StartedAt: timestamppb.New(now.Add(-3 * time.Minute))},
		Network: &containersv1.NetworkSettings{
			Network: "bridge", IpAddress: "10.88.0.2", IpPrefixLen: 16, Gateway: "10.88.0.1", MacAddress: "02:42:0a:58:00:02",
			Ports:      []*containersv1.PortBinding{{HostIp: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
			SandboxKey: "/run/berth/netns/0123",
		},
		LogPath: "/var/lib/berth/containers/0123/0123-json.log",
	}
}

func TestPsTable(t *testing.T) {
	now := time.Now()
	ct := testContainer(now)
	r := containerRow(ct, true, now)
	if r.ID != "0123456789ab" || r.Command != `"/docker-entrypoint.…"` || r.Names != "web" || r.Status != "Up 3 minutes" ||
		r.Ports != "127.0.0.1:8080->80/tcp" || r.RunningFor != "5 minutes ago" || r.Labels != "app=web,tier=front" || r.Label("tier") != "front" {
		t.Errorf("row %+v", r)
	}
	full := containerRow(ct, false, now)
	if full.ID != ct.GetId() || full.Command != `"/docker-entrypoint.sh nginx -g 'daemon off;'"` {
		t.Errorf("--no-trunc row %+v", full)
	}
	var out bytes.Buffer
	if err := list(&out, "", psTable, psHeaders, []any{r}); err != nil {
		t.Fatal(err)
	}
	want := "CONTAINER ID   IMAGE          COMMAND                  CREATED         STATUS         PORTS                    NAMES\n" +
		"0123456789ab   nginx:latest   \"/docker-entrypoint.…\"   5 minutes ago   Up 3 minutes   127.0.0.1:8080->80/tcp   web\n"
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := list(&out, `{{.Names}} {{.Label "app"}} {{.State}}`, psTable, psHeaders, []any{r}); err != nil || out.String() != "web web running\n" {
		t.Errorf("template: %q %v", out.String(), err)
	}
	out.Reset()
	if err := list(&out, "table {{.ID}}\t{{.Status}}", psTable, psHeaders, []any{r}); err != nil || !strings.HasPrefix(out.String(), "CONTAINER ID   STATUS\n") {
		t.Errorf("table template: %q %v", out.String(), err)
	}
}

func TestContainerInspectJSON(t *testing.T) {
	ct := testContainer(time.Now())
	v := toContainerJSON(ct, true)
	var out bytes.Buffer
	for format, want := range map[string]string{
		"{{.State.Status}}":                 "running",
		"{{.NetworkSettings.IPAddress}}":    "10.88.0.2",
		"{{.Name}}":                         "/web",
		"{{.Path}} {{.Args}}":               "/docker-entrypoint.sh [nginx -g daemon off;]",
		"{{.State.Pid}} {{.State.Running}}": "4242 true",
		"{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}": "on-failure:3",
		`{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}`:                     "8080",
		"{{.Config.StopSignal}} {{.Config.Image}}":                                           "SIGQUIT nginx:latest",
		"{{range .Mounts}}{{.Type}}:{{.Destination}}:{{.RW}} {{end}}":                        "bind:/usr/share/nginx/html:false volume:/cache:true",
		"{{json .HostConfig.Tmpfs}}":                                                         `{"/tmp":"size=1m"}`,
	} {
		out.Reset()
		if err := one(&out, format, v); err != nil || strings.TrimSpace(out.String()) != want {
			t.Errorf("%s: %q %v, want %q", format, out.String(), err, want)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	json.Unmarshal(b, &raw)
	for _, k := range []string{"Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath", "LogPath", "Name", "RestartCount", "Mounts", "Config", "HostConfig", "NetworkSettings", "SizeRw"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("inspect JSON lacks %s: %s", k, b)
		}
	}
	state := raw["State"].(map[string]any)
	for _, k := range []string{"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error", "StartedAt", "FinishedAt"} {
		if _, ok := state[k]; !ok {
			t.Errorf("State lacks %s", k)
		}
	}
	if state["FinishedAt"] != "0001-01-01T00:00:00Z" {
		t.Errorf("unset FinishedAt %v", state["FinishedAt"])
	}
	ports := raw["NetworkSettings"].(map[string]any)["Ports"].(map[string]any)["80/tcp"].([]any)[0].(map[string]any)
	if ports["HostIp"] != "127.0.0.1" || ports["HostPort"] != "8080" {
		t.Errorf("ports %v", ports)
	}
	var cli CLI
	out.Reset()
	cli.Out = &out
	if err := cli.writeInspect(nil, ""); err != nil || out.String() != "[]\n" {
		t.Errorf("empty inspect %q %v", out.String(), err)
	}
}

func TestLogsRequest(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	req, err := LogsOptions{Follow: true, Tail: "10", Since: "10m", Until: "2026-01-01T11:59:00Z"}.LogsRequest("web", now)
	if err != nil {
		t.Fatal(err)
	}
	if !req.GetFollow() || req.GetTail() != 10 || !req.GetStdout() || !req.GetStderr() || req.GetId() != "web" ||
		!req.GetSince().AsTime().Equal(now.Add(-10*time.Minute)) || !req.GetUntil().AsTime().Equal(now.Add(-time.Minute)) {
		t.Errorf("request %v", req)
	}
	if req, _ := (LogsOptions{Tail: "all"}).LogsRequest("x", now); req.GetTail() != -1 || req.GetSince() != nil {
		t.Errorf("defaults %v", req)
	}
	for _, o := range []LogsOptions{{Tail: "ten"}, {Since: "yesterday"}} {
		if _, err := o.LogsRequest("x", now); ExitCode(err) != ExitUsage {
			t.Errorf("%+v: %v", o, err)
		}
	}
	var out, errOut bytes.Buffer
	cli := &CLI{Out: &out, Err: &errOut}
	at := timestamppb.New(time.Date(2026, 1, 1, 12, 0, 0, 5, time.UTC))
	cli.writeLogEntry(&containersv1.LogEntry{Stream: containersv1.Stream_STREAM_STDOUT, Time: at, Data: []byte("out\n")}, true)
	cli.writeLogEntry(&containersv1.LogEntry{Stream: containersv1.Stream_STREAM_STDERR, Time: at, Data: []byte("err\n")}, false)
	if out.String() != "2026-01-01T12:00:00.000000005Z out\n" || errOut.String() != "err\n" {
		t.Errorf("logs: %q %q", out.String(), errOut.String())
	}
}

// fakeStream is an attach or exec stream without a daemon.
type fakeStream struct {
	out  []*containersv1.AttachOutput
	sent chan string
}

func (f *fakeStream) ioStream() *ioStream {
	return &ioStream{
		send: func(stdin []byte, closeStdin bool, resize *containersv1.Resize) error {
			switch {
			case resize != nil:
				f.sent <- "resize"
			case closeStdin:
				f.sent <- "close"
			default:
				f.sent <- "stdin:" + string(stdin)
			}
			return nil
		},
		recv: func() (*containersv1.AttachOutput, error) {
			if len(f.out) == 0 {
				return nil, io.EOF
			}
			m := f.out[0]
			f.out = f.out[1:]
			return m, nil
		},
	}
}

func data(s containersv1.Stream, text string) *containersv1.AttachOutput {
	return &containersv1.AttachOutput{Output: &containersv1.AttachOutput_Data{Data: &containersv1.LogEntry{Stream: s, Data: []byte(text)}}}
}

func TestPipe(t *testing.T) {
	f := &fakeStream{sent: make(chan string, 10), out: []*containersv1.AttachOutput{
		{Output: &containersv1.AttachOutput_Attached{Attached: true}},
		data(containersv1.Stream_STREAM_STDOUT, "hello\n"),
		data(containersv1.Stream_STREAM_STDERR, "oops\n"),
		{Output: &containersv1.AttachOutput_ExitCode{ExitCode: 3}},
	}}
	s := f.ioStream()
	if err := s.waitAttached(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cli := &CLI{In: strings.NewReader("input"), Out: &out, Err: &errOut}
	code, err := cli.pipe(t.Context(), s, ioOptions{stdin: true})
	if err != nil || code != 3 {
		t.Fatalf("pipe: %d %v", code, err)
	}
	if out.String() != "hello\n" || errOut.String() != "oops\n" {
		t.Errorf("output %q %q", out.String(), errOut.String())
	}
	if got := <-f.sent; got != "stdin:input" {
		t.Errorf("sent %q", got)
	}
	if got := <-f.sent; got != "close" {
		t.Errorf("sent %q, want close_stdin", got)
	}

	// With a TTY there is one stream; a stream without an exit code says so.
	f = &fakeStream{sent: make(chan string, 10), out: []*containersv1.AttachOutput{data(containersv1.Stream_STREAM_STDERR, "tty")}}
	out.Reset()
	errOut.Reset()
	if _, err := cli.pipe(t.Context(), f.ioStream(), ioOptions{tty: true}); !errors.Is(err, errNoExitCode) {
		t.Errorf("no exit code: %v", err)
	}
	if out.String() != "tty" || errOut.Len() != 0 {
		t.Errorf("tty output %q %q", out.String(), errOut.String())
	}
}

func TestContainerPruneOutput(t *testing.T) {
	var out bytes.Buffer
	writePruned(&CLI{Out: &out}, &containersv1.PruneResponse{Deleted: []string{"aaa", "bbb"}, SpaceReclaimed: 2048})
	if want := "Deleted Containers:\naaa\nbbb\n\nTotal reclaimed space: 2.048kB\n"; out.String() != want {
		t.Errorf("prune:\n%q\nwant\n%q", out.String(), want)
	}
	out.Reset()
	writePruned(&CLI{Out: &out}, &containersv1.PruneResponse{})
	if out.String() != "Total reclaimed space: 0B\n" {
		t.Errorf("nothing pruned: %q", out.String())
	}
	// Without --force, a "no" prunes nothing and asks no daemon.
	out.Reset()
	if err := (&CLI{In: strings.NewReader("n\n"), Out: &out}).ContainerPrune(t.Context(), ContainerPruneOptions{}); err != nil ||
		!strings.Contains(out.String(), "WARNING! This will remove all stopped containers.") {
		t.Errorf("prune prompt: %q %v", out.String(), err)
	}
}
