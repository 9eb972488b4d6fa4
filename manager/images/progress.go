package images

import (
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Phase is the part of a transfer a Progress report is about: a layer of a
// pull has a download bar and an unpack bar.
type Phase string

const (
	PhaseResolve  Phase = "resolve"  // finding the manifest (ID is the reference)
	PhaseDownload Phase = "download" // fetching a blob into the content store
	PhaseUnpack   Phase = "unpack"   // applying a layer into a snapshot
	PhaseUpload   Phase = "upload"   // pushing a blob
)

// The statuses of a Progress report, in docker's words where docker has one.
const (
	StatusWaiting       = "Waiting"
	StatusDownloading   = "Downloading"
	StatusDownloaded    = "Download complete"
	StatusExists        = "Already exists"
	StatusExtracting    = "Extracting"
	StatusPullComplete  = "Pull complete"
	StatusPushing       = "Pushing"
	StatusPushed        = "Pushed"
	StatusLayerExists   = "Layer already exists"
	StatusResolved      = "Resolved"
	StatusFailed        = "Failed"
	StatusRetrying      = "Retrying"
	StatusResumed       = "Resuming"
	StatusUnpackSkipped = "Not unpacked"
)

// Progress reports where one blob of a pull or push stands.
type Progress struct {
	ID      string        // the digest's first 12 hex characters, as docker shows it
	Digest  digest.Digest // the blob
	Kind    string        // "layer", "config", "manifest" or "index"
	Phase   Phase
	Status  string // one of the Status constants
	Current int64  // bytes done (of the compressed blob, for unpack too)
	Total   int64  // bytes in all; 0 if unknown
	Err     error  // why it failed, with StatusFailed or StatusRetrying
}

// ProgressFunc receives Progress reports. Calls are serialised (never two
// at once) and should return quickly: a slow one holds up the transfer.
type ProgressFunc func(Progress)

// shortID is the digest as docker shows it in progress lines.
func shortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

// progress serialises and throttles reports: a byte count at most every
// interval per blob and phase, every status change at once.
type progress struct {
	fn       ProgressFunc
	mu       sync.Mutex
	last     map[progressKey]progressState
	interval time.Duration
}

type progressKey struct {
	d     digest.Digest
	phase Phase
}

type progressState struct {
	status string
	at     time.Time
}

func newProgress(fn ProgressFunc) *progress {
	return &progress{fn: fn, last: map[progressKey]progressState{}, interval: 100 * time.Millisecond}
}

func (p *progress) report(pr Progress) {
	if p == nil || p.fn == nil {
		return
	}
	if pr.ID == "" {
		pr.ID = shortID(pr.Digest)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := progressKey{pr.Digest, pr.Phase}
	now := time.Now()
	if st, ok := p.last[k]; ok && st.status == pr.Status && now.Sub(st.at) < p.interval && pr.Current != pr.Total {
		return
	}
	p.last[k] = progressState{pr.Status, now}
	p.fn(pr)
}

// counter reports the bytes of one blob's phase as they pass.
type counter struct {
	p    *progress
	base Progress
	n    int64
}

func (c *counter) add(n int) {
	c.n += int64(n)
	pr := c.base
	pr.Current = c.n
	c.p.report(pr)
}
