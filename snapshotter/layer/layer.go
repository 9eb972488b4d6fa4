// Package layer applies OCI and docker image layers (tar, plain or gzip or
// zstd compressed) into a snapshot directory, and writes layer diffs of a
// snapshot against its parent.
//
// Apply is the unpack half: it decompresses and hashes the stream in a
// goroutine of its own while the caller's goroutine writes the files, and
// resolves every entry beneath the root with openat2, so that no entry, however
// crafted, writes outside it. Diff and OverlayDiff are the commit half: they
// write the OCI layer that turns the parent into the snapshot, with whiteouts
// for what was deleted. See README.md for the rules each follows.
package layer

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// Format says how the root Apply writes into stores what a layer deletes.
type Format int

const (
	// Overlay: the root is an overlayfs upper directory. A deleted name
	// becomes a whiteout (a 0:0 character device) and an opaque directory
	// gets the xattr trusted.overlay.opaque=y. ApplyOptions.Parents are the
	// lower directories, consulted for the directories and hardlink targets
	// that must be copied up into the root.
	Overlay Format = iota
	// Plain: the root is a full tree (the native snapshotter's copy of the
	// parent). A deleted name is removed from it.
	Plain
)

func (f Format) String() string {
	switch f {
	case Overlay:
		return "overlay"
	case Plain:
		return "plain"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ApplyOptions tell Apply how to store the layer and what to expect of it.
type ApplyOptions struct {
	Format Format
	// Parents are the lower directories under the root, newest first
	// (Overlay only; Plain ignores them). With none, the root may later be
	// stacked on layers Apply does not see (a parallel unpack, rebased
	// when committed): whiteouts and opaque markers are then kept even in
	// directories no layer has, which are made 0755 like any implied
	// parent, and a hardlink can only link within the layer.
	Parents []string
	// Digest, if set, is the expected digest of the stream as given
	// (compressed); its algorithm is the one Apply computes.
	Digest digest.Digest
	// DiffID, if set, is the expected digest of the uncompressed tar.
	DiffID digest.Digest
}

// Result describes the stream Apply read.
type Result struct {
	Digest           digest.Digest // of the stream as given
	DiffID           digest.Digest // of the uncompressed tar
	Size             int64         // bytes of the stream as given
	UncompressedSize int64         // bytes of the uncompressed tar
}

// UnsafeEntryError is a layer entry that Apply refuses because it would
// write, link or look outside the root, or through a symlink. It is an
// errdefs.ErrInvalidArgument.
type UnsafeEntryError struct {
	Name   string // the entry's name as the tar has it
	Reason string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("refusing layer entry %q: %s", e.Name, e.Reason)
}

// Is makes the error an errdefs.ErrInvalidArgument.
func (e *UnsafeEntryError) Is(target error) bool { return target == errdefs.ErrInvalidArgument }

// DigestMismatchError is a stream whose digest is not the expected one. It is
// an errdefs.ErrInvalidArgument.
type DigestMismatchError struct {
	What     string // "digest" (the stream as given) or "diff ID" (the uncompressed tar)
	Expected digest.Digest
	Actual   digest.Digest
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("layer %s mismatch: expected %s, got %s", e.What, e.Expected, e.Actual)
}

// Is makes the error an errdefs.ErrInvalidArgument.
func (e *DigestMismatchError) Is(target error) bool { return target == errdefs.ErrInvalidArgument }

// errNotExist is what the lookups below return for a name that no layer has.
var errNotExist = errors.New("does not exist")
