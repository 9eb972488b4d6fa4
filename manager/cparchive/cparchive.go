// Package cparchive holds what `berth cp` does to a tar on both sides of
// the API, in the CLI for the host and in berthd for a container: the top
// entry renamed to the destination's name, owners rewritten, whiteout names
// refused.
package cparchive

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/containerd/errdefs"
)

// RebaseName renames a tar entry whose top name is from to to (from "."
// for a directory's contents); others keep their names, for Apply to
// judge.
func RebaseName(name, from, to string) string {
	if to == "" || from == to {
		return name
	}
	trailing := strings.HasSuffix(name, "/")
	n := strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
	switch {
	case from == ".":
		if n == "." || n == "" {
			n = to
		} else {
			n = to + "/" + n
		}
	case n == from:
		n = to
	case strings.HasPrefix(n, from+"/"):
		n = to + n[len(from):]
	default:
		return name
	}
	if trailing {
		n += "/"
	}
	return n
}

// rewriteTar renames r's entries from → to (rebaseName) and, with uid and
// gid not -1, gives them that owner. Entries named as whiteouts
// (.wh.*) are refused: extracting them would delete files.
func RewriteTar(r io.Reader, from, to string, uid, gid int) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(func() error {
			tr := tar.NewReader(r)
			tw := tar.NewWriter(pw)
			for {
				hdr, err := tr.Next()
				if err == io.EOF {
					// The rest (end blocks, padding) is read, for the sender.
					_, _ = io.Copy(io.Discard, r)
					return tw.Close()
				}
				if err != nil {
					return fmt.Errorf("not a valid tar: %v: %w", err, errdefs.ErrInvalidArgument)
				}
				if strings.HasPrefix(path.Base(hdr.Name), ".wh.") {
					return fmt.Errorf("refusing %q: a name starting with .wh. would be read as a whiteout: %w", hdr.Name, errdefs.ErrNotImplemented)
				}
				hdr.Name = RebaseName(hdr.Name, from, to)
				if hdr.Typeflag == tar.TypeLink {
					hdr.Linkname = RebaseName(hdr.Linkname, from, to)
				}
				if uid >= 0 {
					hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = uid, gid, "", ""
				}
				if err := tw.WriteHeader(hdr); err != nil {
					return err
				}
				if _, err := io.Copy(tw, tr); err != nil {
					return err
				}
			}
		}())
	}()
	return pr
}
