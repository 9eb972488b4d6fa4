package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOptions adjust Import.
type ImportOptions struct {
	// Ref names the image; empty leaves it dangling (as docker import
	// without a repository).
	Ref string
	// Message is the history comment; empty: "Imported from " + Source.
	Message string
	// Source names where the tarball came from ("-" for a stream).
	Source string
	// Changes are Dockerfile instructions applied to the config, as docker
	// import -c takes them: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER,
	// VOLUME, WORKDIR, STOPSIGNAL.
	Changes []string
	// Platform of the image, "os/arch[/variant]"; empty: the service's.
	Platform string
}

// Import makes a one-layer image of a root filesystem tarball (plain, gzip,
// zstd or bzip2), stores it gzip-compressed, unpacks it and names it.
func (s *Service) Import(ctx context.Context, r io.Reader, opts ImportOptions) (_ Image, retErr error) {
	plat := s.platform
	if opts.Platform != "" {
		var err error
		if plat, err = ParsePlatform(opts.Platform); err != nil {
			return Image{}, err
		}
	}
	var name string
	if opts.Ref != "" {
		ref, err := ParseReference(opts.Ref)
		if err != nil {
			return Image{}, err
		}
		if ref.Digest != "" {
			return Image{}, fmt.Errorf("import as %s: name it by tag, not digest: %w", opts.Ref, errdefs.ErrInvalidArgument)
		}
		name = ref.WithDefaultTag().String()
	}
	created := time.Now().UTC()
	cfg := ocispec.Image{
		Created:  &created,
		Platform: plat,
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	if err := ApplyChanges(&cfg.Config, opts.Changes); err != nil {
		return Image{}, err
	}
	l := s.newLease()
	defer func() {
		if retErr != nil {
			l.abandon(ctx, retErr)
		} else {
			l.release()
		}
	}()

	layerDesc, diffID, err := s.importLayer(ctx, l, r)
	if err != nil {
		return Image{}, err
	}
	cfg.RootFS.DiffIDs = []digest.Digest{diffID}
	comment := opts.Message
	if comment == "" {
		src := opts.Source
		if src == "" {
			src = "-"
		}
		comment = "Imported from " + src
	}
	cfg.History = []ocispec.History{{Created: &created, Comment: comment}}
	rec, cfgDesc, err := s.storeImage(ctx, l, name, cfg, []ocispec.Descriptor{layerDesc})
	if err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	s.event(ctx, "import", opts.Ref, cfgDesc.Digest)
	return s.image(ctx, rec)
}

// importLayer stores the tarball r as a gzip layer and returns its
// descriptor and diff ID.
func (s *Service) importLayer(ctx context.Context, l *lease, r io.Reader) (ocispec.Descriptor, digest.Digest, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return ocispec.Descriptor{}, "", fmt.Errorf("import: read: %w", err)
	}
	var tarStream io.Reader = br
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return ocispec.Descriptor{}, "", fmt.Errorf("import: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		defer zr.Close()
		tarStream = zr
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return ocispec.Descriptor{}, "", fmt.Errorf("import: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		defer zr.Close()
		tarStream = zr
	case bytes.HasPrefix(head, []byte("BZh")):
		tarStream = bzip2.NewReader(br)
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return ocispec.Descriptor{}, "", fmt.Errorf("import: xz-compressed tarballs are not supported: decompress it first (xz -d): %w", errdefs.ErrNotImplemented)
	}
	// The tar is checked entry by entry as it passes, so that garbage is
	// refused here rather than by the unpack.
	pr, pw := io.Pipe()
	diff := digest.Canonical.Digester()
	go func() {
		tr := tar.NewReader(io.TeeReader(tarStream, io.MultiWriter(diff.Hash(), pw)))
		n := 0
		var err error
		for {
			if _, err = tr.Next(); err != nil {
				break
			}
			n++
		}
		if err == io.EOF && n == 0 {
			err = errors.New("the tarball has no files")
		}
		if err == io.EOF {
			// The rest (end blocks and padding) belongs to the tar too.
			_, err = io.Copy(io.MultiWriter(diff.Hash(), pw), tarStream)
		}
		if err != nil {
			err = fmt.Errorf("import: not a valid tarball: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		pw.CloseWithError(err)
	}()
	gzr, gzw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(gzw, gzip.BestSpeed)
		_, err := io.Copy(zw, pr)
		if err == nil {
			err = zw.Close()
		}
		pr.CloseWithError(err)
		gzw.CloseWithError(err)
	}()
	d, n, err := s.content.Add(ctx, gzr)
	gzr.CloseWithError(errors.New("import stopped"))
	if err != nil {
		if errdefs.IsInvalidArgument(err) {
			return ocispec.Descriptor{}, "", err
		}
		return ocispec.Descriptor{}, "", fmt.Errorf("import: %w", err)
	}
	l.addBlob(d)
	l.madeBlob(d)
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: n}, diff.Digest(), nil
}

// ApplyChanges applies Dockerfile instructions to an image config, as
// docker import and commit -c do.
func ApplyChanges(c *ocispec.ImageConfig, changes []string) error {
	for _, ch := range changes {
		ch = strings.TrimSpace(ch)
		if ch == "" {
			continue
		}
		instr, arg, _ := strings.Cut(ch, " ")
		arg = strings.TrimSpace(arg)
		bad := func(why string) error {
			return fmt.Errorf("change %q: %s: %w", ch, why, errdefs.ErrInvalidArgument)
		}
		switch strings.ToUpper(instr) {
		case "CMD":
			c.Cmd = commandForm(arg)
		case "ENTRYPOINT":
			c.Entrypoint = commandForm(arg)
		case "ENV":
			kvs, err := keyValues(arg)
			if err != nil {
				return bad(err.Error())
			}
			for _, kv := range kvs {
				k, _, _ := strings.Cut(kv, "=")
				c.Env = replaceEnv(c.Env, k, kv)
			}
		case "LABEL":
			kvs, err := keyValues(arg)
			if err != nil {
				return bad(err.Error())
			}
			if c.Labels == nil {
				c.Labels = map[string]string{}
			}
			for _, kv := range kvs {
				k, v, _ := strings.Cut(kv, "=")
				c.Labels[k] = v
			}
		case "EXPOSE":
			if c.ExposedPorts == nil {
				c.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range strings.Fields(arg) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				c.ExposedPorts[p] = struct{}{}
			}
		case "VOLUME":
			if c.Volumes == nil {
				c.Volumes = map[string]struct{}{}
			}
			for _, v := range listForm(arg) {
				c.Volumes[v] = struct{}{}
			}
		case "USER":
			c.User = arg
		case "WORKDIR":
			c.WorkingDir = arg
		case "STOPSIGNAL":
			c.StopSignal = arg
		default:
			return bad("only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR and STOPSIGNAL can be changed")
		}
	}
	return nil
}

// commandForm reads the JSON (exec) form or the shell form of CMD.
func commandForm(arg string) []string {
	var v []string
	if strings.HasPrefix(arg, "[") && json.Unmarshal([]byte(arg), &v) == nil {
		return v
	}
	return []string{"/bin/sh", "-c", arg}
}

func listForm(arg string) []string {
	var v []string
	if strings.HasPrefix(arg, "[") && json.Unmarshal([]byte(arg), &v) == nil {
		return v
	}
	return strings.Fields(arg)
}

// keyValues reads "k=v k2=\"v 2\"" or the legacy "k v".
func keyValues(arg string) ([]string, error) {
	if !strings.Contains(arg, "=") {
		k, v, ok := strings.Cut(arg, " ")
		if !ok || k == "" {
			return nil, errors.New("want KEY=VALUE")
		}
		return []string{k + "=" + strings.TrimSpace(v)}, nil
	}
	var out []string
	var cur strings.Builder
	quote := byte(0)
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(arg); i++ {
		ch := arg[i]
		switch {
		case quote != 0 && ch == quote:
			quote = 0
		case quote == 0 && (ch == '"' || ch == '\''):
			quote = ch
		case ch == '\\' && i+1 < len(arg) && quote != '\'':
			i++
			cur.WriteByte(arg[i])
		case quote == 0 && (ch == ' ' || ch == '\t'):
			flush()
		default:
			cur.WriteByte(ch)
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	flush()
	for _, kv := range out {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE", kv)
		}
	}
	return out, nil
}

func replaceEnv(env []string, key, kv string) []string {
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}
