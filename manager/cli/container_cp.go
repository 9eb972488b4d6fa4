package cli

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/berth-project/berth/manager/cparchive"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
	"github.com/berth-project/berth/snapshotter/layer"
)

// CopyOptions are `docker cp`'s flags.
type CopyOptions struct {
	Archive    bool // -a: keep the owners
	FollowLink bool // -L: copy what a source symlink points to
}

// copyChunk is the size of the tar chunks sent to the daemon.
const copyChunk = 256 << 10

// Copy copies between a container and the host as `docker cp` does:
// CONTAINER:SRC DEST|- or SRC|- CONTAINER:DEST, where "-" is a tar stream
// on stdout or stdin.
func (cli *CLI) Copy(ctx context.Context, src, dst string, opts CopyOptions) error {
	srcContainer, srcPath := splitCopyArg(src)
	dstContainer, dstPath := splitCopyArg(dst)
	switch {
	case srcContainer != "" && dstContainer != "":
		return &UsageError{Err: errors.New("copying between containers is not supported")}
	case srcContainer == "" && dstContainer == "":
		return &UsageError{Err: errors.New("must specify at least one container source")}
	case srcPath == "" || dstPath == "":
		return &UsageError{Err: errors.New("filepath can not be empty")}
	case srcContainer != "":
		return cli.copyFrom(ctx, srcContainer, srcPath, dstPath, opts)
	}
	return cli.copyTo(ctx, srcPath, dstContainer, dstPath, opts)
}

// splitCopyArg reads CONTAINER:PATH; a path that is absolute or starts
// with "." is the host's, whatever colons it has (docker's rule).
func splitCopyArg(arg string) (container, p string) {
	if filepath.IsAbs(arg) || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	c, p, ok := strings.Cut(arg, ":")
	if !ok {
		return "", arg
	}
	return c, p
}

func (cli *CLI) copyFrom(ctx context.Context, container, srcPath, dstPath string, opts CopyOptions) error {
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	stream, err := c.Containers().CopyFrom(ctx, &containersv1.CopyFromRequest{Id: container, Path: srcPath, FollowLink: opts.FollowLink})
	if err != nil {
		return c.Error(err)
	}
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the daemon sent no archive")
		}
		return c.Error(err)
	}
	st := first.GetStat()
	if st == nil {
		return errors.New("the daemon sent no stat of the path")
	}
	r := &chunkReader{recv: func() ([]byte, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, c.Error(err)
		}
		return m.GetData(), nil
	}, buf: first.GetData()}
	if dstPath == "-" {
		_, err := io.Copy(cli.Out, r)
		return err
	}
	srcIsDir := fs.FileMode(st.GetMode()).IsDir()
	exists, isDir, err := hostDestination(dstPath)
	if err != nil {
		return err
	}
	into, rebase, err := copyDestination(st.GetName(), srcIsDir, dstPath, exists, isDir)
	if err != nil {
		return err
	}
	dir := filepath.Dir(filepath.Clean(dstPath))
	if into {
		dir = dstPath
	}
	uid, gid := os.Getuid(), os.Getgid()
	if opts.Archive {
		uid, gid = -1, -1
	}
	tr := cparchive.RewriteTar(r, st.GetName(), rebase, uid, gid)
	defer tr.Close()
	if _, err := layer.Apply(ctx, dir, tr, layer.ApplyOptions{Format: layer.Plain}); err != nil {
		return fmt.Errorf("copy to %s: %w", dstPath, err)
	}
	return nil
}

// hostDestination tells whether the host path p exists and is a
// directory (following symlinks, as docker does).
func hostDestination(p string) (exists, isDir bool, err error) {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(filepath.Clean(p))
		if pfi, perr := os.Stat(parent); perr != nil || !pfi.IsDir() {
			return false, false, fmt.Errorf("destination directory %s does not exist", parent)
		}
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, fi.IsDir(), nil
}

func (cli *CLI) copyTo(ctx context.Context, srcPath, container, dstPath string, opts CopyOptions) error {
	var (
		r       io.Reader
		options = &containersv1.CopyToOptions{Id: container, Path: dstPath, CopyUidGid: opts.Archive}
	)
	if srcPath == "-" {
		r = cli.In
	} else {
		follow := opts.FollowLink || strings.HasSuffix(srcPath, "/") || strings.HasSuffix(srcPath, string(filepath.Separator)+".")
		stat := os.Lstat
		if follow {
			stat = os.Stat
		}
		fi, err := stat(srcPath)
		if err != nil {
			return err
		}
		if strings.HasSuffix(srcPath, "/") && !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", srcPath)
		}
		root := srcPath
		if follow {
			if root, err = filepath.EvalSymlinks(srcPath); err != nil {
				return err
			}
		}
		top := filepath.Base(filepath.Clean(srcPath))
		if top == "/" || strings.HasSuffix(srcPath, "/.") {
			top = "."
		}
		options.SourceBase, options.SourceIsDir = top, fi.IsDir()
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarHostPath(pw, root, top)) }()
		defer pr.Close()
		r = pr
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	stream, err := c.Containers().CopyTo(ctx)
	if err != nil {
		return c.Error(err)
	}
	if err := stream.Send(&containersv1.CopyToRequest{Payload: &containersv1.CopyToRequest_Options{Options: options}}); err != nil {
		return c.Error(err)
	}
	buf := make([]byte, copyChunk)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := stream.Send(&containersv1.CopyToRequest{Payload: &containersv1.CopyToRequest_Data{Data: buf[:n]}}); err != nil {
				// The daemon may have failed the call: its answer says why.
				_, err := stream.CloseAndRecv()
				return c.Error(err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	_, err = stream.CloseAndRecv()
	return c.Error(err)
}

// tarHostPath writes a tar of the host path root, its top entry named
// top: a file, a symlink, or a directory and all beneath it (symlinks
// copied as links). Sockets are left out.
func tarHostPath(w io.Writer, root, top string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		hdr, err := hostTarHeader(p, fi, path.Join(top, filepath.ToSlash(rel)))
		if err != nil {
			return err
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// copyDestination applies docker's rules for where a copied source goes
// (as the daemon's do for a container): into dst when it is a directory,
// else as dst in its parent, the top name renamed to dst's (rebase).
func copyDestination(srcBase string, srcIsDir bool, dst string, exists, isDir bool) (into bool, rebase string, err error) {
	wantDir := strings.HasSuffix(dst, "/") || strings.HasSuffix(dst, "/.")
	base := filepath.Base(filepath.Clean(dst))
	switch {
	case exists && isDir:
		return true, "", nil
	case exists && srcIsDir:
		return false, "", fmt.Errorf("cannot copy a directory to file %q", dst)
	case exists:
		return false, base, nil
	case wantDir && !srcIsDir:
		return false, "", fmt.Errorf("destination directory %q does not exist", dst)
	}
	return false, base, nil
}

// chunkReader reads a stream of byte chunks.
type chunkReader struct {
	recv func() ([]byte, error)
	buf  []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		b, err := r.recv()
		if err != nil {
			return 0, err
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// hostTarHeader is the tar header of the host file p (info fi) under
// name: a symlink's target read, a directory's name ending in "/".
func hostTarHeader(p string, fi fs.FileInfo, name string) (*tar.Header, error) {
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return nil, err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return nil, err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	return hdr, nil
}
