//go:build linux

package berthd

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/integration/testenv"
)

// TestStats: `berth stats` as docker's: a busy container shows CPU use
// and its memory limit, a web server the bytes it served, the no-argument form lists the running ones (all
// with -a), a stopped container shows zeros, an unknown one fails, and
// the stream prints a table each second.
func TestStats(t *testing.T) {
	d := containerDaemon(t, options{network: true})
	d.run("run", "-d", "--name", "busy", "-m", "64m", image, "sh", "-c", "while true; do :; done")
	d.run("create", "--name", "idle", image, "true")

	const format = "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}"
	out := strings.TrimSpace(d.run("stats", "--no-stream", "--format", format, "busy"))
	f := strings.Split(out, "|")
	if len(f) != 7 || f[0] != "busy" {
		t.Fatalf("stats busy: %q", out)
	}
	cpu, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
	if err != nil || cpu <= 10 {
		t.Errorf("a busy loop's CPU %%: %q (want well above 0)", f[1])
	}
	if !strings.HasSuffix(f[2], " / 64MiB") || strings.HasPrefix(f[2], "0B ") {
		t.Errorf("MEM USAGE / LIMIT: %q, want some usage of 64MiB", f[2])
	}
	if pids, err := strconv.Atoi(f[6]); err != nil || pids < 1 {
		t.Errorf("PIDS: %q", f[6])
	}

	// A paused container is sampled as well: no CPU, its memory held.
	d.run("pause", "busy")
	out = d.run("stats", "--no-stream", "--format", "{{.CPUPerc}} {{.MemUsage}}", "busy")
	if !strings.HasPrefix(out, "0.00% ") || strings.HasPrefix(out, "0.00% 0B") {
		t.Errorf("stats of a paused container: %q", out)
	}
	d.run("unpause", "busy")

	// Network I/O: its namespace's interfaces but lo.
	d.run("run", "-d", "--name", "web", image, "sh", "-c", "mkdir /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www")
	ip := strings.TrimSpace(d.run("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"))
	if r := d.berth("", "run", "--rm", image, "wget", "-q", "-O", "-", "http://"+ip+"/"); r.code != 0 {
		t.Fatalf("wget from a second container: %v", r)
	}
	netIO := strings.TrimSpace(d.run("stats", "--no-stream", "--format", "{{.NetIO}}", "web"))
	if rx, tx, ok := strings.Cut(netIO, " / "); !ok || rx == "0B" || tx == "0B" {
		t.Errorf("NET I/O of a web server that served a page: %q", netIO)
	}
	d.run("rm", "-f", "web")

	// The default table, and the containers listed without arguments.
	out = d.run("stats", "--no-stream")
	t.Logf("stats --no-stream:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID   NAME ") ||
		!strings.Contains(lines[0], "CPU %") || !strings.Contains(lines[0], "MEM USAGE / LIMIT") ||
		!strings.Contains(lines[0], "NET I/O") || !strings.Contains(lines[0], "BLOCK I/O") || !strings.HasSuffix(lines[0], "PIDS") ||
		!strings.Contains(lines[1], " busy ") {
		t.Errorf("stats --no-stream:\n%s", out)
	}
	if out := d.run("stats", "--no-stream", "-a", "--format", "{{.Name}}"); !strings.Contains(out, "busy\n") || !strings.Contains(out, "idle\n") {
		t.Errorf("stats -a: %q", out)
	}

	// A container that does not run: zeros, as docker shows it.
	if out, want := d.run("stats", "--no-stream", "--format", format, "idle"), "idle|0.00%|0B / 0B|0.00%|0B / 0B|0B / 0B|0\n"; out != want {
		t.Errorf("stats of a created container: %q, want %q", out, want)
	}
	if r := d.berth("", "stats", "--no-stream", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Errorf("stats of an unknown container: %v", r)
	}
	if r := d.berth("", "stats", "--no-stream", "--format", "{{.Nope", "busy"); r.code == 0 {
		t.Errorf("stats with a bad template: %v", r)
	}

	// Streaming (to a pipe, so without the terminal's redraw): a table a
	// second, the busy container's in each; when it stops, its row goes
	// to zeros.
	cmd, stream := statsStream(t, d, "--format", "table {{.Name}}\t{{.CPUPerc}}\t{{.PIDs}}", "busy")
	start := time.Now()
	headers, rows := 0, 0
	for rows < 3 {
		f := strings.Fields(next(t, stream))
		switch {
		case len(f) > 0 && f[0] == "NAME":
			headers++
		case len(f) == 3 && f[0] == "busy" && f[2] != "0":
			rows++
		default:
			t.Fatalf("stats stream line: %q", f)
		}
	}
	if headers < 3 {
		t.Errorf("stats stream: %d tables for %d rows", headers, rows)
	}
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("three tables in %v: want one a second", took)
	}
	d.run("stop", "-t", "0", "busy")
	for {
		if f := strings.Fields(next(t, stream)); len(f) == 3 && f[0] == "busy" && f[1] == "0.00%" && f[2] == "0" {
			break
		}
	}
	_ = cmd.Process.Kill()

	d.run("rm", "-f", "busy")
	d.run("rm", "idle")
}

// TestStatsEndsAtShutdown: a stats stream does not hold berthd's shutdown
// up (it would wait its 15 s timeout).
func TestStatsEndsAtShutdown(t *testing.T) {
	d := containerDaemon(t, options{})
	d.run("run", "-d", "--name", "long", image, "sh", "-c", "while true; do sleep 0.1; done")
	_, lines := statsStream(t, d, "--format", "{{.Name}}", "long")
	if l := next(t, lines); l != "long" {
		t.Fatalf("stats stream: %q", l)
	}
	start := time.Now()
	if err := d.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("berthd took %v to stop with a stats stream open", took)
	}
	// A daemon on the same root removes the container in its cleanup.
	d2 := startDaemon(t, options{root: d.root, state: d.state})
	d2.run("rm", "-f", "long")
}

// statsStream runs `berth stats` against d in the background and returns
// its output's lines; the process is killed when the test ends.
func statsStream(t *testing.T, d *daemon, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t, "berth"), append([]string{"-H", d.host, "stats"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}

// next is the stream's next line, failing the test after 10 s.
func next(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("stats stream ended")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no stats line in 10 s")
	}
	return ""
}
