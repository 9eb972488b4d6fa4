package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// Diff writes to w an uncompressed OCI layer tar that turns the tree lower
// into the tree upper (two plain directories, such as a native snapshot and
// its parent, or two mounted snapshots): the entries that upper adds or
// changes, whole, and a whiteout for each name it lacks, or an opaque
// marker for a directory that keeps none of the two or more names lower had
// in it.
//
// An entry counts as changed when its type, mode, owner, mtime, xattrs,
// link count, size, symlink target or device differ, or, for a regular file
// whose mtime has no sub-second part (as tar gives them, so a same-second
// rewrite could hide), when its content does. Directories are listed before
// their contents, names in byte order; mtimes keep their nanoseconds (PAX).
// The root's own metadata is not part of a layer. Sockets are left out.
func Diff(ctx context.Context, w io.Writer, lower, upper string) error {
	lt, err := openTree(lower)
	if err != nil {
		return fmt.Errorf("diff %s against %s: %w", upper, lower, err)
	}
	defer lt.close()
	ut, err := openTree(upper)
	if err != nil {
		return fmt.Errorf("diff %s against %s: %w", upper, lower, err)
	}
	defer ut.close()
	d := &treeDiff{ctx: ctx, lower: lt, upper: ut, unchanged: map[inode]string{}}
	if err := d.dir(".", true); err != nil {
		return fmt.Errorf("diff %s against %s: %w", upper, lower, err)
	}
	tw := newTarWriter(ctx, w)
	for _, c := range d.changes {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch c.kind {
		case changeWrite:
			link := ""
			if c.st.Mode&unix.S_IFMT == unix.S_IFREG && c.st.Nlink > 1 {
				link = d.unchanged[inode{c.st.Dev, c.st.Ino}]
			}
			err = tw.file(ut, c.rel, &c.st, link)
		case changeDelete:
			err = tw.whiteout(c.rel)
		case changeOpaque:
			err = tw.opaque(c.rel)
		}
		if err != nil {
			return fmt.Errorf("diff %s against %s: %w", upper, lower, err)
		}
	}
	if err := tw.tw.Close(); err != nil {
		return fmt.Errorf("diff %s against %s: %w", upper, lower, err)
	}
	return nil
}

type inode struct{ dev, ino uint64 }

type changeKind int

const (
	changeWrite  changeKind = iota // upper's entry, whole
	changeDelete                   // a whiteout
	changeOpaque                   // the opaque marker of a directory
)

type change struct {
	kind changeKind
	rel  string
	st   unix.Stat_t // of upper's entry, for changeWrite
}

// treeDiff finds the changes first and writes them after, so that a new
// name of a file can be written as a hardlink to an unchanged name of it
// that comes later in the walk.
type treeDiff struct {
	ctx          context.Context
	lower, upper *tree
	changes      []change
	// unchanged has a name that the diff leaves out for each multiply
	// linked regular file: a new name of the file links to it.
	unchanged map[inode]string
}

// dir compares the directory rel of upper with lower's (lowerDir: lower has
// a directory there).
func (d *treeDiff) dir(rel string, lowerDir bool) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	un, err := d.upper.readDir(rel)
	if err != nil {
		return err
	}
	var ln []string
	if lowerDir {
		if ln, err = d.lower.readDir(rel); err != nil {
			return err
		}
	}
	inLower := make(map[string]bool, len(ln))
	for _, n := range ln {
		inLower[n] = true
	}
	var deleted []string
	common := 0
	inUpper := make(map[string]bool, len(un))
	for _, n := range un {
		inUpper[n] = true
		if inLower[n] {
			common++
		}
	}
	for _, n := range ln {
		if !inUpper[n] {
			deleted = append(deleted, n)
		}
	}
	if len(deleted) > 1 && common == 0 {
		// Nothing of lower's directory is left: one marker says so.
		if n := len(d.changes); rel != "." && (n == 0 || d.changes[n-1].rel != rel) {
			st, err := d.upper.lstat(rel)
			if err != nil {
				return err
			}
			d.changes = append(d.changes, change{kind: changeWrite, rel: rel, st: st})
		}
		d.changes = append(d.changes, change{kind: changeOpaque, rel: rel})
	} else {
		for _, n := range deleted {
			d.changes = append(d.changes, change{kind: changeDelete, rel: joinRel(rel, n)})
		}
	}
	for _, n := range un {
		p := joinRel(rel, n)
		ust, err := d.upper.lstat(p)
		if err != nil {
			return err
		}
		var lst unix.Stat_t
		inL := inLower[n]
		if inL {
			if lst, err = d.lower.lstat(p); err != nil {
				return err
			}
		}
		changed := !inL
		if inL {
			if changed, err = d.changed(p, &lst, &ust); err != nil {
				return err
			}
		}
		switch {
		case changed:
			d.changes = append(d.changes, change{kind: changeWrite, rel: p, st: ust})
		case ust.Mode&unix.S_IFMT == unix.S_IFREG && ust.Nlink > 1:
			in := inode{ust.Dev, ust.Ino}
			if _, ok := d.unchanged[in]; !ok {
				d.unchanged[in] = p
			}
		}
		if isDir(&ust) {
			if err := d.dir(p, inL && isDir(&lst)); err != nil {
				return err
			}
		}
	}
	return nil
}

// changed compares rel in lower (lst) and upper (ust).
func (d *treeDiff) changed(rel string, lst, ust *unix.Stat_t) (bool, error) {
	typ := ust.Mode & unix.S_IFMT
	if lst.Mode&unix.S_IFMT != typ || lst.Mode&0o7777 != ust.Mode&0o7777 ||
		lst.Uid != ust.Uid || lst.Gid != ust.Gid || lst.Mtim != ust.Mtim {
		return true, nil
	}
	switch typ {
	case unix.S_IFREG:
		if lst.Size != ust.Size || lst.Nlink != ust.Nlink {
			return true, nil
		}
	case unix.S_IFLNK:
		lt, err := d.lower.readlink(rel)
		if err != nil {
			return false, err
		}
		ut, err := d.upper.readlink(rel)
		if err != nil {
			return false, err
		}
		if lt != ut {
			return true, nil
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if lst.Rdev != ust.Rdev {
			return true, nil
		}
	}
	lx, err := d.lower.layerXattrs(rel)
	if err != nil {
		return false, err
	}
	ux, err := d.upper.layerXattrs(rel)
	if err != nil {
		return false, err
	}
	if !sameXattrs(lx, ux) {
		return true, nil
	}
	if typ == unix.S_IFREG && ust.Mtim.Nsec == 0 {
		same, err := sameContent(d.lower, d.upper, rel)
		return !same, err
	}
	return false, nil
}

func sameXattrs(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func sameContent(a, b *tree, rel string) (bool, error) {
	fa, err := a.open(rel)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := b.open(rel)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 128<<10), make([]byte, 128<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// OverlayDiff writes to w an uncompressed OCI layer tar of the changes an
// overlayfs upper directory holds, reading it directly rather than
// comparing trees: whiteouts (0:0 character devices) become ".wh.<name>",
// opaque directories get ".wh..wh..opq", all else is written whole, in
// byte order with directories before their contents. lowerdirs, newest
// first, are the layers under upperdir: a whiteout that hides nothing in
// them is left out. overlayfs's own xattrs are not written.
//
// upperdir must come from a mount with redirect_dir and metacopy off (as
// berth mounts them): a renamed directory or a metadata-only copy-up keeps
// its data in a lower layer, and OverlayDiff refuses them rather than write
// a wrong layer; use Diff on the mounted trees then.
func OverlayDiff(ctx context.Context, w io.Writer, upperdir string, lowerdirs []string) error {
	ut, err := openTree(upperdir)
	if err != nil {
		return fmt.Errorf("overlay diff: %w", err)
	}
	o := &overlayDiff{ctx: ctx, upper: ut, tw: newTarWriter(ctx, w)}
	defer o.close()
	for _, p := range lowerdirs {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("overlay diff: open lower %s: %w", p, err)
		}
		o.lowers.layers = append(o.lowers.layers, fd)
		o.lowers.names = append(o.lowers.names, p)
	}
	x, err := ut.xattrs(".")
	if err != nil {
		return fmt.Errorf("overlay diff %s: %w", upperdir, err)
	}
	hidden := false
	if string(x[opaqueXattr]) == "y" {
		hidden = true
		if err := o.tw.opaque("."); err != nil {
			return fmt.Errorf("overlay diff %s: %w", upperdir, err)
		}
	}
	if err := o.dir(".", hidden); err != nil {
		return fmt.Errorf("overlay diff %s: %w", upperdir, err)
	}
	if err := o.tw.tw.Close(); err != nil {
		return fmt.Errorf("overlay diff %s: %w", upperdir, err)
	}
	return nil
}

type overlayDiff struct {
	ctx    context.Context
	upper  *tree
	lowers stack
	tw     *tarWriter
}

func (o *overlayDiff) close() {
	o.upper.close()
	for _, fd := range o.lowers.layers {
		unix.Close(fd)
	}
}

// dir writes the directory rel of the upper directory; hidden says an
// opaque directory above hides all lower layers have here.
func (o *overlayDiff) dir(rel string, hidden bool) error {
	names, err := o.upper.readDir(rel)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := o.ctx.Err(); err != nil {
			return err
		}
		p := joinRel(rel, n)
		st, err := o.upper.lstat(p)
		if err != nil {
			return err
		}
		if isWhiteout(&st) {
			if hidden {
				continue
			}
			if _, _, err := o.lowers.lookup(p); errors.Is(err, errNotExist) {
				continue // hides nothing
			} else if err != nil {
				var unsafe *UnsafeEntryError
				if !errors.As(err, &unsafe) {
					return err
				}
				// A lower path through a symlink: a whiteout is safe
				// to write either way.
			}
			if err := o.tw.whiteout(p); err != nil {
				return err
			}
			continue
		}
		x, err := o.upper.xattrs(p)
		if err != nil {
			return fmt.Errorf("read xattrs of %s: %w", p, err)
		}
		if _, ok := x["trusted.overlay.metacopy"]; ok {
			return fmt.Errorf("%s is a metadata-only copy-up (metacopy=on): not supported, use Diff", p)
		}
		if _, ok := x["trusted.overlay.redirect"]; ok {
			return fmt.Errorf("%s is a renamed directory (redirect_dir=on): not supported, use Diff", p)
		}
		if err := o.tw.file(o.upper, p, &st, ""); err != nil {
			return err
		}
		if isDir(&st) {
			opaque := string(x[opaqueXattr]) == "y"
			if opaque && !hidden {
				if err := o.tw.opaque(p); err != nil {
					return err
				}
			}
			if err := o.dir(p, hidden || opaque); err != nil {
				return err
			}
		}
	}
	return nil
}

// tarWriter writes layer entries from files on disk.
type tarWriter struct {
	ctx   context.Context
	tw    *tar.Writer
	links map[inode]string // the first name written of each multiply linked file
}

func newTarWriter(ctx context.Context, w io.Writer) *tarWriter {
	return &tarWriter{ctx: ctx, tw: tar.NewWriter(w), links: map[inode]string{}}
}

// file writes the entry rel of root, whose stat is st. A regular file with
// other names is written once and linked to after; linkTo, if set, is a
// name of it the layer need not carry (its parent has it unchanged).
func (t *tarWriter) file(root *tree, rel string, st *unix.Stat_t, linkTo string) error {
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Format:  tar.FormatPAX,
	}
	typ := st.Mode & unix.S_IFMT
	switch typ {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
		if st.Nlink > 1 {
			in := inode{st.Dev, st.Ino}
			if first, ok := t.links[in]; ok {
				linkTo = first
			}
			if linkTo != "" {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, linkTo, 0
			} else {
				t.links[in] = rel
			}
		}
	case unix.S_IFLNK:
		target, err := root.readlink(rel)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if typ == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		log.G(t.ctx).Debugf("layer diff: skip %s: a socket has no tar form", rel)
		return nil
	}
	if hdr.Typeflag != tar.TypeLink {
		x, err := root.layerXattrs(rel)
		if err != nil {
			return fmt.Errorf("read xattrs of %s: %w", rel, err)
		}
		for _, k := range sortedKeys(x) {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords[paxXattr+k] = string(x[k])
		}
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := root.open(rel)
	if err != nil {
		return err
	}
	defer f.Close()
	if n, err := io.CopyN(t.tw, f, hdr.Size); err != nil {
		if err == io.EOF {
			return fmt.Errorf("%s shrank from %d to %d bytes during the diff", rel, hdr.Size, n)
		}
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}

// whiteout writes the OCI whiteout that deletes rel.
func (t *tarWriter) whiteout(rel string) error {
	dir, base := splitRel(rel)
	return t.marker(joinRel(dir, whiteoutPrefix+base))
}

// opaque writes the OCI marker that makes the directory rel opaque.
func (t *tarWriter) opaque(rel string) error {
	return t.marker(joinRel(rel, whiteoutOpaque))
}

func (t *tarWriter) marker(name string) error {
	err := t.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// tree is a directory tree Diff reads. Every name in it is resolved from
// the tree's fd with openat2, as Apply does: a container that swaps a
// directory for a symlink while its snapshot is diffed gets an error, not
// the host's files in its layer.
type tree struct {
	path string
	fd   int
}

func openTree(path string) (*tree, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &tree{path: path, fd: fd}, nil
}

func (t *tree) close() { unix.Close(t.fd) }

func (t *tree) err(op, rel string, err error) error {
	return &os.PathError{Op: op, Path: filepath.Join(t.path, rel), Err: err}
}

func (t *tree) lstat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	var err error
	if rel == "." {
		err = unix.Fstat(t.fd, &st)
	} else {
		st, err = lstatBeneath(t.fd, rel)
	}
	if err != nil {
		return st, t.err("lstat", rel, err)
	}
	return st, nil
}

// readDir lists the directory rel in byte order.
func (t *tree) readDir(rel string) ([]string, error) {
	fd, err := openBeneath(t.fd, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, t.err("open", rel, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(t.path, rel))
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// open opens the regular file rel for reading.
func (t *tree) open(rel string) (*os.File, error) {
	fd, err := openBeneath(t.fd, rel, unix.O_RDONLY|unix.O_NOFOLLOW)
	if err != nil {
		return nil, t.err("open", rel, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(t.path, rel)), nil
}

func (t *tree) readlink(rel string) (string, error) {
	fd, err := openBeneath(t.fd, rel, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return "", t.err("readlink", rel, err)
	}
	defer unix.Close(fd)
	target, err := readlinkFd(fd)
	if err != nil {
		return "", t.err("readlink", rel, err)
	}
	return target, nil
}

// xattrs reads all the xattrs of rel, not following it if it is a symlink.
func (t *tree) xattrs(rel string) (map[string][]byte, error) {
	dir, base := splitRel(rel)
	if rel == "." {
		dir, base = ".", "."
	}
	dfd, err := openBeneath(t.fd, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, t.err("read xattrs", rel, err)
	}
	defer unix.Close(dfd)
	// The l* calls through the directory's /proc link, which pins it.
	x, err := lxattrs(procPath(dfd) + "/" + base)
	if err != nil {
		return nil, t.err("read xattrs", rel, err)
	}
	return x, nil
}

// layerXattrs reads the xattrs of rel that a layer carries: all but
// overlayfs's own and the host's SELinux label (security.selinux names a
// policy of the host where the file was made, not of where it will run).
func (t *tree) layerXattrs(rel string) (map[string][]byte, error) {
	x, err := t.xattrs(rel)
	if err != nil {
		return nil, err
	}
	for k := range x {
		if overlayXattr(k) || k == "security.selinux" {
			delete(x, k)
		}
	}
	return x, nil
}
