package builder

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/berth-project/berth/manager/containers"
)

// source is one COPY/ADD source in the context.
type source struct {
	rel   string // slash-separated, relative to the context's root
	isDir bool
}

func (s *state) copyStep(ctx context.Context, in Instruction) error {
	if err := in.checkFlags("chown", "chmod", "from"); err != nil {
		return err
	}
	if _, ok := in.flag("from"); ok {
		return lineError(in, fmt.Errorf("%s --from is not supported by berth's builder yet: %w", in.Cmd, errdefs.ErrNotImplemented))
	}
	uid, gid := 0, 0
	if v, ok := in.flag("chown"); ok {
		u, g, _ := strings.Cut(v, ":")
		if g == "" {
			g = u
		}
		var err1, err2 error
		uid, err1 = strconv.Atoi(u)
		gid, err2 = strconv.Atoi(g)
		if err1 != nil || err2 != nil {
			return lineError(in, fmt.Errorf("--chown=%s: only numeric UID[:GID] are supported: %w", v, errdefs.ErrNotImplemented))
		}
	}
	var chmod *fs.FileMode
	if v, ok := in.flag("chmod"); ok {
		m, err := strconv.ParseUint(v, 8, 32)
		if err != nil {
			return lineError(in, fmt.Errorf("--chmod=%s: want an octal mode", v))
		}
		fm := fs.FileMode(m)
		chmod = &fm
	}
	ws, err := s.words(in)
	if err != nil {
		return lineError(in, err)
	}
	if len(ws) < 2 {
		return lineError(in, fmt.Errorf("%s requires at least two arguments", in.Cmd))
	}
	srcs, dest := ws[:len(ws)-1], ws[len(ws)-1]
	for _, src := range srcs {
		if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") || strings.HasPrefix(src, "git@") {
			if in.Cmd == "COPY" {
				return fmt.Errorf("COPY failed: source can't be a URL for COPY: %w", errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("ADD failed: %s: ADD of a URL is not supported: berthd downloads nothing while building (fetch the file into the build context and COPY it): %w", src, errdefs.ErrNotImplemented)
		}
	}
	if s.ctx.root == nil {
		return fmt.Errorf("%s failed: no build context: a Dockerfile read from stdin (berth build -) has none to copy from: %w", in.Cmd, errdefs.ErrInvalidArgument)
	}
	var sources []source
	for _, src := range srcs {
		got, err := s.resolveSource(in, src)
		if err != nil {
			return err
		}
		sources = append(sources, got...)
	}

	destDir := strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.") || dest == "." || dest == ".."
	if !path.IsAbs(dest) {
		base := s.config.Config.WorkingDir
		if base == "" {
			base = "/"
		}
		dest = path.Join(base, dest)
	}
	dest = path.Clean(dest)
	if len(sources) > 1 {
		if !destDir {
			return fmt.Errorf("When using %s with more than one source file, the destination must be a directory and end with a /: %w", in.Cmd, errdefs.ErrInvalidArgument)
		}
	}

	id, err := s.container(ctx, []string{"/bin/sh", "-c", fmt.Sprintf("#(nop) %s %s in %s ", in.Cmd, strings.Join(srcs, " "), dest)}, "none", nil)
	if err != nil {
		return err
	}
	if !destDir {
		if len(sources) == 1 && sources[0].isDir {
			destDir = true
		} else if st, err := s.stat(ctx, id, dest); err != nil {
			return err
		} else if st != nil && st.Mode.IsDir() {
			destDir = true
		} else if len(sources) == 1 && in.Cmd == "ADD" && s.isArchive(sources[0]) {
			destDir = true
		}
	}
	parent := dest
	if !destDir {
		parent = path.Dir(dest)
	}
	var dirs bytes.Buffer
	dtw := tar.NewWriter(&dirs)
	if err := s.missingDirs(ctx, id, parent, dtw, uid, gid); err != nil {
		return fmt.Errorf("%s failed: %w", in.Cmd, err)
	}
	dtw.Flush() // no end blocks: the stream goes on

	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(func() error {
			if _, err := pw.Write(dirs.Bytes()); err != nil {
				return err
			}
			tw := tar.NewWriter(pw)
			for _, src := range sources {
				if err := s.writeSource(tw, in.Cmd == "ADD", src, dest, destDir, uid, gid, chmod); err != nil {
					return err
				}
			}
			return tw.Close()
		}())
	}()
	err = s.b.containers.CopyTo(ctx, id, containers.CopyToOptions{Path: "/", CopyUIDGID: true}, pr)
	pr.CloseWithError(errors.New("copy ended"))
	if err != nil {
		return fmt.Errorf("%s failed: %w", in.Cmd, err)
	}
	if err := s.commitContainer(ctx, id); err != nil {
		return err
	}
	return s.removeContainer(ctx, id)
}

// resolveSource finds a source (or the sources a wildcard matches) in the
// context.
func (s *state) resolveSource(in Instruction, src string) ([]source, error) {
	rel := filepath.ToSlash(filepath.Clean(src))
	rel = strings.TrimPrefix(rel, "/")
	if !filepath.IsLocal(rel) && rel != "." {
		return nil, fmt.Errorf("%s failed: forbidden path outside the build context: %s (): %w", in.Cmd, src, errdefs.ErrInvalidArgument)
	}
	notFound := func() error {
		return fmt.Errorf("%s failed: file not found in build context or excluded by .dockerignore: stat %s: file does not exist: %w", in.Cmd, src, errdefs.ErrNotFound)
	}
	if strings.ContainsAny(rel, "*?[") {
		var out []source
		err := fs.WalkDir(s.ctx.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == "." {
				return nil
			}
			if ok, _ := path.Match(rel, p); ok {
				out = append(out, source{rel: p, isDir: d.IsDir()})
				if d.IsDir() {
					return fs.SkipDir
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(out) == 0 {
			return nil, notFound()
		}
		return out, nil
	}
	fi, err := s.ctx.root.Stat(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, notFound()
		}
		return nil, fmt.Errorf("%s failed: %s: %v: %w", in.Cmd, src, err, errdefs.ErrInvalidArgument)
	}
	return []source{{rel: rel, isDir: fi.IsDir()}}, nil
}

// isArchive tells whether a source file is a tar, plain or compressed.
func (s *state) isArchive(src source) bool {
	if src.isDir {
		return false
	}
	f, err := s.ctx.root.Open(src.rel)
	if err != nil {
		return false
	}
	defer f.Close()
	r, err := decompress(bufio.NewReader(f))
	if err != nil {
		return false
	}
	_, err = tar.NewReader(r).Next()
	return err == nil
}

// decompress undoes gzip, bzip2 or zstd compression, by the magic bytes.
func decompress(br *bufio.Reader) (io.Reader, error) {
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return br, nil
}

// writeSource writes a source's entries to tw, named relative to the
// container's root.
func (s *state) writeSource(tw *tar.Writer, add bool, src source, dest string, destDir bool, uid, gid int, chmod *fs.FileMode) error {
	root := s.ctx.root
	target := func(rel string) string { // the entry name for a path under src
		var p string
		switch {
		case src.isDir:
			p = path.Join(dest, rel)
		case destDir:
			p = path.Join(dest, path.Base(src.rel))
		default:
			p = dest
		}
		return strings.TrimPrefix(p, "/")
	}
	if !src.isDir {
		if add && s.isArchive(src) {
			return s.writeArchive(tw, src, dest)
		}
		fi, err := root.Stat(src.rel)
		if err != nil {
			return err
		}
		return s.writeFile(tw, src.rel, target(""), fi, uid, gid, chmod)
	}
	return fs.WalkDir(root.FS(), src.rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := ""
		switch {
		case p == src.rel:
		case src.rel == ".":
			rel = p
		default:
			rel = strings.TrimPrefix(p, src.rel+"/")
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if rel == "" {
			// The destination directory exists or is made (missingDirs):
			// its mode and owner stay.
			return nil
		}
		return s.writeFile(tw, p, target(rel), fi, uid, gid, chmod)
	})
}

func (s *state) writeFile(tw *tar.Writer, p, name string, fi fs.FileInfo, uid, gid int, chmod *fs.FileMode) error {
	hdr := &tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), Uid: uid, Gid: gid, ModTime: fi.ModTime()}
	if chmod != nil {
		hdr.Mode = int64(*chmod)
	}
	switch {
	case fi.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		return tw.WriteHeader(hdr)
	case fi.Mode()&fs.ModeSymlink != 0:
		link, err := s.ctx.root.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, link
		return tw.WriteHeader(hdr)
	case fi.Mode().IsRegular():
		f, err := s.ctx.root.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = io.CopyN(tw, f, fi.Size())
		return err
	}
	return nil // sockets, devices: not copied
}

// writeArchive writes the entries of a local tar (ADD) under dest.
func (s *state) writeArchive(tw *tar.Writer, src source, dest string) error {
	f, err := s.ctx.root.Open(src.rel)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := decompress(bufio.NewReader(f))
	if err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ADD %s: %v: %w", src.rel, err, errdefs.ErrInvalidArgument)
		}
		name := path.Clean("/" + hdr.Name)
		if name == "/" {
			continue
		}
		hdr.Name = strings.TrimPrefix(path.Join(dest, name), "/")
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = strings.TrimPrefix(path.Join(dest, path.Clean("/"+hdr.Linkname)), "/")
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}
