package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// epoch is the modification time of every entry and the creation time of
// the image (2025-01-01T00:00:00Z): a fixed time keeps the digests stable.
func epoch() time.Time { return time.Unix(1735689600, 0).UTC() }

// tree is the content of a tar archive, keyed by the entry's path without a
// trailing slash. Its tar form is sorted by path, so that parents come before
// their children and the bytes never depend on the order of insertion.
type tree map[string]entry

// entry is one file of a tar; data holds a regular file's content.
type entry struct {
	hdr  *tar.Header
	data []byte
}

func (t tree) dir(name string, mode int64) {
	t[name] = entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}}
}

func (t tree) file(name string, mode int64, data []byte) {
	t[name] = entry{&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data}
}

func (t tree) symlink(name, target string) {
	t[name] = entry{hdr: &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

// tarball returns the uncompressed tar of t: entries sorted, owned by 0:0,
// all with the same modification time.
func (t tree) tarball() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(t)) {
		e := t[name]
		hdr := *e.hdr
		hdr.ModTime, hdr.Format = epoch(), tar.FormatPAX
		if err := tw.WriteHeader(&hdr); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", hdr.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("tar data %s: %w", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}

// gzipBytes compresses b with an empty gzip header, so the result depends
// on b alone.
func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// readTar returns the entries of an uncompressed tar.
func readTar(b []byte) ([]entry, error) {
	var entries []entry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read tar %s: %w", hdr.Name, err)
		}
		entries = append(entries, entry{hdr, data})
	}
}

// OCI whiteouts: ".wh.NAME" deletes NAME from the lower layers and
// ".wh..wh..opq" empties its directory of what the lower layers put there.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// extract applies the uncompressed tar b on top of root. Whiteouts only
// concern lower layers, so all of them are applied before any other entry
// is written. Ownership is left to the caller's user: the test image is
// owned by 0:0 throughout and the tests do not run as root.
func extract(root *os.Root, b []byte) error {
	entries, err := readTar(b)
	if err != nil {
		return err
	}
	for _, e := range entries {
		dir, base := path.Split(path.Clean(e.hdr.Name))
		switch {
		case base == whiteoutOpaque:
			if err := clearDir(root, path.Clean(dir)); err != nil {
				return err
			}
		case strings.HasPrefix(base, whiteoutPrefix):
			name := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
			if err := root.RemoveAll(name); err != nil {
				return fmt.Errorf("whiteout %s: %w", name, err)
			}
		}
	}
	for _, e := range entries {
		name := path.Clean(e.hdr.Name)
		if strings.HasPrefix(path.Base(name), whiteoutPrefix) {
			continue
		}
		if err := extractEntry(root, name, e); err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
	}
	return nil
}

func extractEntry(root *os.Root, name string, e entry) error {
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	mode := e.hdr.FileInfo().Mode()
	switch e.hdr.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		return root.Chmod(name, mode)
	case tar.TypeReg:
		if err := root.RemoveAll(name); err != nil {
			return err
		}
		if err := root.WriteFile(name, e.data, 0o600); err != nil {
			return err
		}
		return root.Chmod(name, mode)
	case tar.TypeSymlink:
		if err := root.RemoveAll(name); err != nil {
			return err
		}
		return root.Symlink(e.hdr.Linkname, name)
	default:
		return fmt.Errorf("unsupported tar entry type %q", e.hdr.Typeflag)
	}
}

// clearDir removes everything inside dir, keeping dir itself.
func clearDir(root *os.Root, dir string) error {
	f, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opaque whiteout %s: %w", dir, err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("opaque whiteout %s: %w", dir, err)
	}
	for _, n := range names {
		if err := root.RemoveAll(path.Join(dir, n)); err != nil {
			return fmt.Errorf("opaque whiteout %s: %w", dir, err)
		}
	}
	return nil
}
