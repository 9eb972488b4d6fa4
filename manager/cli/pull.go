package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"github.com/docker/go-units"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"

	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
	typesv1 "github.com/berth-project/berth/proto/types/v1"
)

// PullOptions are the flags of `berth pull`.
type PullOptions struct {
	Quiet    bool
	Platform string
}

// isTerminal tells whether w is a terminal rather than a file or pipe.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// canDrawBars tells whether w is a terminal progress bars can be drawn on
// (else pull writes plain lines, as docker does on a file or pipe): one
// with a size (a pty nobody sized has none).
func canDrawBars(w io.Writer) bool {
	if !isTerminal(w) {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(w.(*os.File).Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Col > 0 && ws.Row > 0
}

// parsePlatform reads --platform "os/arch[/variant]".
func parsePlatform(s string) (*typesv1.Platform, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, &UsageError{Err: fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)}
	}
	p := &typesv1.Platform{Os: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// Pull pulls an image as `docker pull` does: a line per layer that
// follows its download and its extraction (progress bars on a terminal,
// a line per change of status otherwise), the digest, and the status.
func (cli *CLI) Pull(ctx context.Context, ref string, opts PullOptions) error {
	return cli.pull(ctx, cli.Out, ref, opts)
}

// pull is Pull writing its progress to out: `run` and `create` pull an
// image they miss as `pull` does, on stderr as docker does.
func (cli *CLI) pull(ctx context.Context, out io.Writer, ref string, opts PullOptions) error {
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return err
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	stream, err := c.Images().Pull(ctx, &imagesv1.PullRequest{Reference: ref, Platform: plat, Auth: authFor(ref)})
	if err != nil {
		return c.Error(err)
	}
	var view pullView = quietView{}
	if !opts.Quiet {
		if canDrawBars(out) {
			view = newBarView(out)
		} else {
			view = newLineView(out)
		}
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			view.close(false)
			if errors.Is(err, io.EOF) {
				return errors.New("the daemon ended the pull without saying it was done")
			}
			return c.Error(err)
		}
		switch ev := m.GetEvent().(type) {
		case *imagesv1.PullProgress_Started:
			view.started(ev.Started)
		case *imagesv1.PullProgress_Layer:
			view.layer(ev.Layer)
		case *imagesv1.PullProgress_Done:
			view.close(true)
			d := ev.Done
			name := familiar(d.GetName())
			if opts.Quiet {
				fmt.Fprintln(out, d.GetName())
				return nil
			}
			fmt.Fprintln(out, "Digest:", d.GetDigest())
			if d.GetUpdated() {
				fmt.Fprintln(out, "Status: Downloaded newer image for", name)
			} else {
				fmt.Fprintln(out, "Status: Image is up to date for", name)
			}
			fmt.Fprintln(out, d.GetName())
			return nil
		}
	}
}

// familiar shows a normalised name as docker does: without docker.io/
// and library/.
func familiar(name string) string {
	name = strings.TrimPrefix(name, "docker.io/")
	return strings.TrimPrefix(name, "library/")
}

// pullHeader is docker's first line: "latest: Pulling from library/busybox".
func pullHeader(name string) string {
	repo, tag := name, "latest"
	if i := strings.Index(name, "@"); i >= 0 {
		repo, tag = name[:i], name[i+1:]
	} else if i := strings.LastIndex(name, ":"); i >= 0 && !strings.Contains(name[i:], "/") {
		repo, tag = name[:i], name[i+1:]
	}
	repo = strings.TrimPrefix(repo, "docker.io/")
	return fmt.Sprintf("%s: Pulling from %s", tag, repo)
}

type pullView interface {
	started(*imagesv1.PullStarted)
	layer(*imagesv1.LayerProgress)
	close(ok bool)
}

type quietView struct{}

func (quietView) started(*imagesv1.PullStarted) {}
func (quietView) layer(*imagesv1.LayerProgress) {}
func (quietView) close(bool)                    {}

// statusText is docker's word for a layer's status.
func statusText(s imagesv1.LayerStatus) string {
	switch s {
	case imagesv1.LayerStatus_LAYER_STATUS_WAITING:
		return "Waiting"
	case imagesv1.LayerStatus_LAYER_STATUS_DOWNLOADING:
		return "Downloading"
	case imagesv1.LayerStatus_LAYER_STATUS_VERIFYING:
		return "Verifying Checksum"
	case imagesv1.LayerStatus_LAYER_STATUS_DOWNLOADED:
		return "Download complete"
	case imagesv1.LayerStatus_LAYER_STATUS_EXTRACTING:
		return "Extracting"
	case imagesv1.LayerStatus_LAYER_STATUS_COMPLETE:
		return "Pull complete"
	case imagesv1.LayerStatus_LAYER_STATUS_ALREADY_EXISTS:
		return "Already exists"
	}
	return "Pulling fs layer"
}

// lineView writes a line each time a layer changes status, as docker
// does when its output is not a terminal.
type lineView struct {
	out  io.Writer
	last map[string]imagesv1.LayerStatus
}

func newLineView(out io.Writer) *lineView {
	return &lineView{out: out, last: map[string]imagesv1.LayerStatus{}}
}

func (v *lineView) started(s *imagesv1.PullStarted) {
	fmt.Fprintln(v.out, pullHeader(s.GetName()))
}

func (v *lineView) layer(l *imagesv1.LayerProgress) {
	last, seen := v.last[l.GetDigest()]
	if seen && last == l.GetStatus() {
		return
	}
	v.last[l.GetDigest()] = l.GetStatus()
	fmt.Fprintf(v.out, "%s: %s\n", shortID(l.GetDigest()), statusText(l.GetStatus()))
}

func (v *lineView) close(bool) {}

// barView draws two bars per layer: its download and its extraction.
type barView struct {
	out    io.Writer
	p      *mpb.Progress
	layers map[string]*layerBars
	order  []*layerBars
}

// layerBars are a layer's bars; status and size are read by the
// decorators as the bars render.
type layerBars struct {
	status            atomic.Int32
	size              atomic.Int64
	download, extract *mpb.Bar
}

func newBarView(out io.Writer) *barView {
	return &barView{out: out, layers: map[string]*layerBars{}}
}

func (v *barView) started(s *imagesv1.PullStarted) {
	fmt.Fprintln(v.out, pullHeader(s.GetName()))
}

func (v *barView) bar(lb *layerBars, id, what string) *mpb.Bar {
	return v.p.New(0, mpb.BarStyle().Lbound("[").Filler("=").Tip(">").Padding(" ").Rbound("]"),
		mpb.BarWidth(40),
		mpb.PrependDecorators(decor.Name(fmt.Sprintf("%s %-8s", id, what), decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Any(func(st decor.Statistics) string {
			switch {
			case imagesv1.LayerStatus(lb.status.Load()) == imagesv1.LayerStatus_LAYER_STATUS_ALREADY_EXISTS:
				return "Already exists"
			case st.Aborted:
				return "Failed"
			case st.Completed:
				return units.HumanSizeWithPrecision(float64(lb.size.Load()), 3) + " done"
			}
			return fmt.Sprintf("%s/%s", units.HumanSizeWithPrecision(float64(st.Current), 3), units.HumanSizeWithPrecision(float64(lb.size.Load()), 3))
		})),
	)
}

func (v *barView) layer(l *imagesv1.LayerProgress) {
	if v.p == nil {
		v.p = mpb.New(mpb.WithOutput(v.out), mpb.WithWidth(100))
	}
	lb := v.layers[l.GetDigest()]
	id := shortID(l.GetDigest())
	if lb == nil {
		lb = &layerBars{}
		v.layers[l.GetDigest()] = lb
		v.order = append(v.order, lb)
		lb.download = v.bar(lb, id, "download")
		lb.extract = v.bar(lb, id, "extract")
	}
	status := l.GetStatus()
	lb.status.Store(int32(status))
	if l.GetSize() > 0 {
		lb.size.Store(l.GetSize())
	}
	total := max(lb.size.Load(), 1)
	switch status {
	case imagesv1.LayerStatus_LAYER_STATUS_ALREADY_EXISTS:
		finish(lb.download, total)
		finish(lb.extract, total)
		return
	case imagesv1.LayerStatus_LAYER_STATUS_COMPLETE:
		finish(lb.download, total)
		finish(lb.extract, total)
		return
	}
	if status >= imagesv1.LayerStatus_LAYER_STATUS_DOWNLOADED {
		finish(lb.download, total)
	} else if !lb.download.Completed() {
		lb.download.SetTotal(total, false)
		lb.download.SetCurrent(min(l.GetDownloaded(), total))
	}
	if !lb.extract.Completed() {
		lb.extract.SetTotal(total, false)
		lb.extract.SetCurrent(min(l.GetExtracted(), total))
	}
}

// finish completes a bar.
func finish(b *mpb.Bar, total int64) {
	if b.Completed() {
		return
	}
	b.SetTotal(total, false)
	b.SetCurrent(total)
	b.SetTotal(total, true)
}

func (v *barView) close(bool) {
	if v.p == nil {
		return
	}
	for _, lb := range v.order {
		for _, b := range []*mpb.Bar{lb.download, lb.extract} {
			if !b.Completed() {
				b.Abort(false)
			}
		}
	}
	v.p.Wait()
	v.p = nil
}
