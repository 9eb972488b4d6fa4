//go:build linux

package shim

import (
	"io"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/integration/internal/ctrd"
)

// onPty is ctr running on a terminal, as a user at a shell runs it.
type onPty struct {
	t    *testing.T
	ptmx console.Console
	bg   *bg
	out  *syncBuffer
	seen int // output before this is matched
}

// startOnPty starts cmd as the session leader of a new terminal of
// rows×cols, with the terminal as its controlling terminal and stdio.
func startOnPty(t *testing.T, cmd *exec.Cmd, rows, cols uint16) *onPty {
	t.Helper()
	ptmx, ptsName, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := ptmx.Resize(console.WinSize{Height: rows, Width: cols}); err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(ptsName, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	p := &onPty{t: t, ptmx: ptmx, out: &syncBuffer{}}
	p.bg = startBg(t, cmd)
	pts.Close()
	go io.Copy(p.out, ptmx) // ends with EIO once ctr, the last holder of the terminal, exits
	return p
}

// send types s on the terminal.
func (p *onPty) send(s string) {
	p.t.Helper()
	if _, err := p.ptmx.Write([]byte(s)); err != nil {
		p.t.Fatalf("write to the terminal: %v", err)
	}
}

// expect waits until the output not yet matched matches re, and returns
// the match.
func (p *onPty) expect(re string) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(ctrd.WaitTimeout)
	for {
		out := p.out.String()
		if loc := rx.FindStringIndex(out[p.seen:]); loc != nil {
			m := out[p.seen+loc[0] : p.seen+loc[1]]
			p.seen += loc[1]
			return m
		}
		select {
		case <-p.bg.done:
			p.t.Fatalf("ctr exited (%v) before printing %q; output:\n%q", p.bg.err, re, out)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q on the terminal within %v; output:\n%q", re, ctrd.WaitTimeout, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
