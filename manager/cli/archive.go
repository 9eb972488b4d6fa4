package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
)

// SaveOptions are the flags of `berth save`.
type SaveOptions struct {
	Output string // a file; empty: stdout
	Format string // docker-archive (default) or oci-archive
}

// Save writes images to a tar archive, as `docker save` does. The file
// appears only whole: it is written beside and renamed.
func (cli *CLI) Save(ctx context.Context, names []string, opts SaveOptions) error {
	format := imagesv1.ArchiveFormat_ARCHIVE_FORMAT_DOCKER
	switch opts.Format {
	case "", "docker-archive", "docker":
	case "oci-archive", "oci":
		format = imagesv1.ArchiveFormat_ARCHIVE_FORMAT_OCI
	default:
		return &UsageError{Err: fmt.Errorf("invalid --format %q: want docker-archive or oci-archive", opts.Format)}
	}
	if opts.Output == "" && isTerminal(cli.Out) {
		return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
	}
	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	stream, err := c.Images().Export(ctx, &imagesv1.ExportRequest{Names: names, Format: format})
	if err != nil {
		return c.Error(err)
	}
	var (
		w   io.Writer = cli.Out
		tmp *os.File
	)
	if opts.Output != "" {
		tmp, err = os.CreateTemp(filepath.Dir(opts.Output), "."+filepath.Base(opts.Output)+".*")
		if err != nil {
			return fmt.Errorf("failed to save image: %w", err)
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		w = tmp
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c.Error(err)
		}
		if _, err := w.Write(m.GetData()); err != nil {
			return fmt.Errorf("failed to save image: %w", err)
		}
	}
	if tmp == nil {
		return nil
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to save image: %w", err)
	}
	if err := os.Rename(tmp.Name(), opts.Output); err != nil {
		return fmt.Errorf("failed to save image: %w", err)
	}
	tmp = nil
	return nil
}

// LoadOptions are the flags of `berth load`.
type LoadOptions struct {
	Input string // a file; empty: stdin
	Quiet bool
}

// importChunk is the size of the pieces Load and Import send.
const importChunk = 256 << 10

// send streams the options then r's bytes to the daemon's Import.
func (cli *CLI) sendImport(ctx context.Context, r io.Reader, opts *imagesv1.ImportOptions) (*imagesv1.ImportResponse, error) {
	c, err := cli.client(ctx)
	if err != nil {
		return nil, err
	}
	stream, err := c.Images().Import(ctx)
	if err != nil {
		return nil, c.Error(err)
	}
	if err := stream.Send(&imagesv1.ImportRequest{Payload: &imagesv1.ImportRequest_Options{Options: opts}}); err != nil {
		return nil, c.Error(err)
	}
	buf := make([]byte, importChunk)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := stream.Send(&imagesv1.ImportRequest{Payload: &imagesv1.ImportRequest_Data{Data: buf[:n]}}); err != nil {
				// The daemon may have failed the call: its answer says why.
				if resp, rerr := stream.CloseAndRecv(); rerr != nil {
					return nil, c.Error(rerr)
				} else {
					return resp, nil
				}
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, rerr
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, c.Error(err)
	}
	return resp, nil
}

// Load loads images from a docker-archive or oci-archive, as `docker
// load` does.
func (cli *CLI) Load(ctx context.Context, opts LoadOptions) error {
	var r io.Reader = cli.In
	if opts.Input != "" {
		f, err := os.Open(opts.Input)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	} else if isTerminal(cli.In) {
		return errors.New("requested load from stdin, but stdin is empty")
	}
	resp, err := cli.sendImport(ctx, r, &imagesv1.ImportOptions{Kind: imagesv1.ImportKind_IMPORT_KIND_ARCHIVE})
	if err != nil {
		return err
	}
	for _, im := range resp.GetImages() {
		if im.GetName() != "" {
			fmt.Fprintln(cli.Out, "Loaded image:", im.GetName())
		} else {
			fmt.Fprintln(cli.Out, "Loaded image ID:", im.GetId())
		}
	}
	return nil
}

// ImportOptions are the flags of `berth import`.
type ImportOptions struct {
	Changes  []string
	Message  string
	Platform string
}

// Import makes an image of a root filesystem tarball (a file, or - for
// stdin), as `docker import` does, and prints its ID.
func (cli *CLI) Import(ctx context.Context, source, ref string, opts ImportOptions) error {
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return err
	}
	var r io.Reader = cli.In
	if source != "-" {
		f, err := os.Open(source)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	resp, err := cli.sendImport(ctx, r, &imagesv1.ImportOptions{
		Kind:      imagesv1.ImportKind_IMPORT_KIND_ROOTFS,
		Reference: ref,
		Changes:   opts.Changes,
		Message:   opts.Message,
		Platform:  plat,
	})
	if err != nil {
		return err
	}
	for _, im := range resp.GetImages() {
		fmt.Fprintln(cli.Out, im.GetId())
	}
	return nil
}
