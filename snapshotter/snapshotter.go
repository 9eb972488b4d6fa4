// Package snapshotter defines berth's snapshot store: the contract every
// backend (overlay, native) and the remote proxy keep, shaped like
// containerd's snapshots API so that one conformance suite (testsuite)
// runs against each of them, in process or over the socket.
//
// A snapshot is a directory tree named by a key. Prepare makes an active
// (writable) snapshot on top of a committed parent, View a read-only one,
// and Commit turns an active snapshot into a committed one under a new
// name, which can then be the parent of others. Mounts describe how to
// see a snapshot's tree; the caller mounts them.
package snapshotter

import (
	"context"
	"fmt"
	"time"
)

// Kind is the kind of a snapshot.
type Kind uint8

// The kinds, numbered as containerd's snapshots API numbers them.
const (
	KindUnknown Kind = iota
	KindView
	KindActive
	KindCommitted
)

func (k Kind) String() string {
	switch k {
	case KindView:
		return "view"
	case KindActive:
		return "active"
	case KindCommitted:
		return "committed"
	}
	return "unknown"
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for _, k := range []Kind{KindView, KindActive, KindCommitted} {
		if k.String() == s {
			return k, nil
		}
	}
	return KindUnknown, fmt.Errorf("unknown snapshot kind %q: want view, active or committed", s)
}

// Info describes a snapshot.
type Info struct {
	Kind    Kind
	Name    string // the key of an active or view snapshot, the name of a committed one
	Parent  string // the name of the committed parent; empty for a base
	Labels  map[string]string
	Created time.Time
	Updated time.Time
}

// Usage is the disk a snapshot uses on its own, without its parents.
type Usage struct {
	Inodes int64
	Size   int64 // bytes
}

// Mount is one mount(2) call: the fields of containerd's types.Mount.
type Mount struct {
	Type    string
	Source  string
	Target  string // a path below the mount point; empty for the mount point itself
	Options []string
}

// WalkFunc is called for each snapshot Walk visits; an error stops the walk.
type WalkFunc func(context.Context, Info) error

// Opt adjusts the Info of a snapshot being made (Prepare, View, Commit).
type Opt func(*Info) error

// WithLabels adds labels to a snapshot being made.
func WithLabels(labels map[string]string) Opt {
	return func(info *Info) error {
		if info.Labels == nil {
			info.Labels = map[string]string{}
		}
		for k, v := range labels {
			info.Labels[k] = v
		}
		return nil
	}
}

// WithParent, given to Commit, rebases the snapshot onto parent as it is
// committed: layers can be unpacked in parallel, each into a snapshot
// without a parent, and chained as they are committed (containerd's
// "rebase" capability).
func WithParent(parent string) Opt {
	return func(info *Info) error {
		info.Parent = parent
		return nil
	}
}

// Snapshotter is a snapshot store. Errors carry the kinds of
// github.com/containerd/errdefs: NotFound for an unknown key, AlreadyExists
// for a taken key, FailedPrecondition for a parent that is not committed or
// a snapshot that still has children, InvalidArgument for bad input.
type Snapshotter interface {
	// Stat returns the Info of the snapshot named key.
	Stat(ctx context.Context, key string) (Info, error)
	// Update changes the labels of a snapshot: those named by fieldpaths
	// ("labels" for all of them, "labels.<key>" for one), or all when none
	// are named. Other fields cannot change.
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)
	// Usage returns the disk the snapshot uses on its own.
	Usage(ctx context.Context, key string) (Usage, error)
	// Mounts returns the mounts of an active or view snapshot.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Prepare makes an active snapshot named key on the committed parent
	// (none for an empty tree) and returns its mounts.
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	// View makes a read-only snapshot named key of the committed parent.
	View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	// Commit turns the active snapshot key into the committed snapshot name.
	// key is gone afterwards.
	Commit(ctx context.Context, name, key string, opts ...Opt) error
	// Remove removes a snapshot that has no children.
	Remove(ctx context.Context, key string) error
	// Walk calls fn for every snapshot that matches one of the filters
	// (containerd's filter syntax; none matches all).
	Walk(ctx context.Context, fn WalkFunc, filters ...string) error
	// Cleanup reclaims the disk of removed snapshots and of operations that
	// did not finish (a crash between steps).
	Cleanup(ctx context.Context) error
	// Close releases the store.
	Close() error
}
