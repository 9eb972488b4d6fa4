package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// The OCI whiteout names (image-spec layer.md, "Whiteouts").
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	// whiteoutMeta prefixes the names aufs kept for itself (.wh..wh.plnk,
	// .wh..wh.aufs), found in old docker layers. They stand for no file.
	whiteoutMeta = ".wh..wh."
)

// Apply reads a layer from r (a tar, plain or gzip or zstd compressed, told
// apart by its first bytes) and applies it to the directory root, storing
// deletions as opts.Format says. It verifies opts.Digest and opts.DiffID if
// they are set, and returns the digests and sizes it saw.
//
// No entry can make Apply write outside root: names that leave it, absolute
// names, hardlinks to outside, and entries whose parent path goes through a
// symlink (in the layer, in root or in a parent) are refused with an
// *UnsafeEntryError. A failed Apply may leave root half written; the caller
// throws it away. Apply returns only once it no longer reads r.
func Apply(ctx context.Context, root string, r io.Reader, opts ApplyOptions) (Result, error) {
	if opts.Format != Overlay && opts.Format != Plain {
		return Result{}, fmt.Errorf("apply layer: unknown format %v", opts.Format)
	}
	givenAlg, err := algorithmOf(opts.Digest)
	if err != nil {
		return Result{}, fmt.Errorf("apply layer: %w", err)
	}
	tarAlg, err := algorithmOf(opts.DiffID)
	if err != nil {
		return Result{}, fmt.Errorf("apply layer: %w", err)
	}
	a, err := newApplier(ctx, root, opts)
	if err != nil {
		return Result{}, err
	}
	defer a.close()

	s := newStream(ctx, r, newHashCounter(givenAlg), newHashCounter(tarAlg))
	err = a.applyTar(ctx, s)
	if err == nil {
		// Read to the end: the tar's end blocks and padding are part of
		// the digests.
		_, err = io.Copy(io.Discard, s)
	}
	s.close()
	if err == nil {
		err = a.finish()
	}
	if err != nil {
		return Result{}, err
	}

	var res Result
	res.Digest, res.DiffID, res.Size, res.UncompressedSize = s.digests()
	if opts.Digest != "" && res.Digest != opts.Digest {
		return res, &DigestMismatchError{What: "digest", Expected: opts.Digest, Actual: res.Digest}
	}
	if opts.DiffID != "" && res.DiffID != opts.DiffID {
		return res, &DigestMismatchError{What: "diff ID", Expected: opts.DiffID, Actual: res.DiffID}
	}
	return res, nil
}

// applier applies the entries of one layer to a root.
type applier struct {
	format Format
	// lowersUnknown: an Overlay root with no parents given, which may
	// yet be stacked on some (see copyUp).
	lowersUnknown bool
	rootDir       int // the root, opened O_RDONLY|O_DIRECTORY
	// Overlay: rootDir, then each parent (O_PATH); Plain: rootDir.
	stack
	log *log.Entry
	// ctx ends a long file early: a few bytes of tar can declare a
	// sparse file of terabytes, read as zeros.
	ctx context.Context

	// The directory the last entry was in: layers list their files
	// directory by directory, so most entries reuse it.
	cacheRel string
	cacheFd  int
	cacheGid int
	// The owner a file made in the last directory dir returned has, and
	// the umask, to skip the chown and chmod that would change nothing:
	// on ext4 each is a journal transaction.
	euid, egid, dirGid int
	umask              uint32

	// touched holds each name this layer made and their parents: a
	// whiteout or an opaque directory hides only what lower layers had
	// (image-spec), not what the same layer adds, whatever their order.
	touched map[string]struct{}
	// dirTimes are set at the end: entries made in a directory change its
	// times.
	dirTimes map[string][2]unix.Timespec
	buf      []byte
}

func newApplier(ctx context.Context, root string, opts ApplyOptions) (*applier, error) {
	a := &applier{
		format:        opts.Format,
		lowersUnknown: opts.Format == Overlay && len(opts.Parents) == 0,
		rootDir:       -1,
		cacheFd:       -1,
		log:           log.G(ctx),
		ctx:           ctx,
		euid:          os.Geteuid(),
		egid:          os.Getegid(),
		umask:         processUmask(),
		touched:       map[string]struct{}{},
		dirTimes:      map[string][2]unix.Timespec{},
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("apply layer: open root %s: %w", root, err)
	}
	a.rootDir = fd
	a.layers = append(a.layers, fd)
	if err := a.keepTimes(fd, "."); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("apply layer: %w", err)
	}
	a.names = append(a.names, root)
	if opts.Format == Overlay {
		for _, p := range opts.Parents {
			fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				a.close()
				return nil, fmt.Errorf("apply layer: open parent %s: %w", p, err)
			}
			a.layers = append(a.layers, fd)
			a.names = append(a.names, p)
		}
	}
	return a, nil
}

// copyPool holds writeData's buffers. Their size is a multiple of
// holeBlock, so that blocks align with the file.
var copyPool = sync.Pool{New: func() any { return make([]byte, 1<<20) }}

func (a *applier) close() {
	if a.buf != nil {
		copyPool.Put(a.buf)
		a.buf = nil
	}
	a.setCache("", -1)
	for _, fd := range a.layers {
		unix.Close(fd)
	}
	a.layers = nil
}

func (a *applier) applyTar(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			var unsafe *UnsafeEntryError
			if errors.As(err, &unsafe) {
				if unsafe.Name == "" {
					unsafe.Name = hdr.Name
				}
				return unsafe
			}
			return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
}

// unsafef makes the error for an entry Apply refuses; applyTar names it.
func unsafef(format string, args ...any) error {
	return &UnsafeEntryError{Reason: fmt.Sprintf(format, args...)}
}

// cleanName turns a tar name into a path relative to the root ("." for the
// root itself), refusing those that are absolute or leave the root.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", unsafef("empty name")
	}
	if name[0] == '/' {
		return "", unsafef("absolute name")
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", unsafef("name escapes the root")
	}
	return c, nil
}

// splitRel splits a clean relative path into its directory and last name.
func splitRel(rel string) (dir, base string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return ".", rel
	}
	return rel[:i], rel[i+1:]
}

func joinRel(dir, base string) string {
	if dir == "." {
		return base
	}
	return dir + "/" + base
}

func (a *applier) entry(hdr *tar.Header, data io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX defaults for the entries after it, merged by archive/tar
	}
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	dir, base := splitRel(rel)
	if strings.Contains(dir, whiteoutPrefix) {
		for _, c := range strings.Split(dir, "/") {
			if strings.HasPrefix(c, whiteoutPrefix) {
				return fmt.Errorf("whiteout name %q used as a directory", c)
			}
		}
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(dir, base)
	}
	m, err := metaFromHeader(hdr)
	if err != nil {
		return err
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return unsafef("names the root but is not a directory")
		}
		return a.setMeta(target{fd: a.rootDir, dir: true}, m, ".")
	}
	parent, err := a.dir(dir, create)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = a.mkdir(parent, dir, base, m)
	case tar.TypeReg, tar.TypeGNUSparse:
		// archive/tar reads a sparse file's holes as zeros; writeData
		// turns zero blocks back into holes.
		err = a.writeFile(parent, dir, base, m, data, hdr.Size)
	case tar.TypeSymlink:
		err = a.symlink(parent, dir, base, m, hdr.Linkname)
	case tar.TypeLink:
		err = a.hardlink(parent, dir, base, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = a.mknod(parent, dir, base, m, hdr)
	default:
		err = fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	if err != nil {
		return err
	}
	a.touch(rel)
	return nil
}

// touch records that the layer made rel, and so its parents.
func (a *applier) touch(rel string) {
	for p := rel; p != "."; p = path.Dir(p) {
		if _, ok := a.touched[p]; ok {
			return // and so are its parents
		}
		a.touched[p] = struct{}{}
	}
}

func (a *applier) isTouched(rel string) bool {
	_, ok := a.touched[rel]
	return ok
}

// finish sets the times of the directories the layer has, now that nothing
// more is made in them.
func (a *applier) finish() error {
	a.setCache("", -1)
	for rel, ts := range a.dirTimes {
		fd := a.rootDir
		if rel != "." {
			var err error
			fd, err = openBeneath(a.rootDir, rel, unix.O_RDONLY|unix.O_DIRECTORY)
			if errnoIs(err, unix.ENOENT, unix.ENOTDIR, unix.ELOOP) {
				continue // replaced by a later entry
			}
			if err != nil {
				return fmt.Errorf("directory %q: set times: %w", rel, err)
			}
		}
		err := futimens(fd, &ts)
		if fd != a.rootDir {
			unix.Close(fd)
		}
		if err != nil {
			return fmt.Errorf("directory %q: set times: %w", rel, err)
		}
	}
	return nil
}
