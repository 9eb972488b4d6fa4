package cli

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-project/berth/manager/builder/dockerignore"
	"github.com/berth-project/berth/manager/client"
	buildv1 "github.com/berth-project/berth/proto/services/build/v1"
)

// BuildOptions are the flags of `berth build`.
type BuildOptions struct {
	Tags      []string // -t
	File      string   // -f
	BuildArgs []string // --build-arg KEY[=VALUE]
	Quiet     bool     // -q
	NoCache   bool
	Remove    bool // --rm (default true)
	ForceRm   bool
	Network   string
}

// buildChunk is the size of the pieces of the context sent.
const buildChunk = 256 << 10

// Build builds an image from a Dockerfile and a context (a directory, or
// "-" for a Dockerfile on stdin and no context), as docker's classic
// builder does, printing its output.
func (cli *CLI) Build(ctx context.Context, contextPath string, opts BuildOptions) error {
	o := &buildv1.BuildOptions{
		Tags:        opts.Tags,
		NoCache:     opts.NoCache,
		Remove:      opts.Remove,
		ForceRemove: opts.ForceRm,
		NetworkMode: opts.Network,
		Quiet:       opts.Quiet,
		BuildArgs:   map[string]string{},
	}
	for _, a := range opts.BuildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			if v, set := os.LookupEnv(k); set {
				o.BuildArgs[k] = v
			} else {
				o.UnsetBuildArgs = append(o.UnsetBuildArgs, k)
			}
			continue
		}
		o.BuildArgs[k] = v
	}
	var dir string
	if contextPath == "-" {
		df, err := io.ReadAll(cli.In)
		if err != nil {
			return err
		}
		if o.DockerfileContent = df; df == nil {
			o.DockerfileContent = []byte{}
		}
	} else {
		fi, err := os.Stat(contextPath)
		if err != nil {
			return fmt.Errorf("unable to prepare context: path %q not found", contextPath)
		}
		if !fi.IsDir() {
			return fmt.Errorf("unable to prepare context: context must be a directory: %s", contextPath)
		}
		dir = contextPath
		df, content, err := dockerfileIn(dir, opts.File)
		if err != nil {
			return err
		}
		o.Dockerfile, o.DockerfileContent = df, content
	}

	c, err := cli.client(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Build().Build(ctx)
	if err != nil {
		return c.Error(err)
	}
	if err := stream.Send(&buildv1.BuildRequest{Payload: &buildv1.BuildRequest_Options{Options: o}}); err != nil {
		return c.Error(err)
	}
	sendErr := make(chan error, 1)
	go func() {
		sendErr <- func() error {
			if dir != "" {
				if err := sendContext(dir, o.GetDockerfile(), stream); err != nil {
					return err
				}
			}
			return stream.CloseSend()
		}()
	}()
	var id string
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return buildFailed(c, err)
		}
		switch p := m.GetPayload().(type) {
		case *buildv1.BuildProgress_Stream:
			io.WriteString(cli.Out, p.Stream)
		case *buildv1.BuildProgress_ImageId:
			id = p.ImageId
		}
	}
	if err := <-sendErr; err != nil {
		return err
	}
	if id == "" {
		return errors.New("the daemon ended the build without an image")
	}
	if opts.Quiet {
		fmt.Fprintln(cli.Out, id)
	}
	return nil
}

// buildFailed is a build's error as docker's CLI prints it: the
// daemon's message, without "Error response from daemon".
func buildFailed(c *client.Client, err error) error {
	err = c.Error(err)
	var re *client.ResponseError
	if errors.As(err, &re) {
		return &buildError{re}
	}
	return err
}

type buildError struct{ re *client.ResponseError }

func (e *buildError) Error() string { return e.re.Msg }
func (e *buildError) Unwrap() error { return e.re }

// dockerfileIn finds the Dockerfile: -f relative to the working directory
// (else to the context), by default the context's Dockerfile. It returns
// its path in the context, or its content when it lies outside.
func dockerfileIn(dir, file string) (string, []byte, error) {
	if file == "" {
		return "", nil, nil
	}
	if file == "-" {
		return "", nil, errors.New("-f - (the Dockerfile on stdin with a context directory) is not supported yet")
	}
	p := file
	if _, err := os.Stat(p); err != nil {
		p = filepath.Join(dir, file)
		if _, err := os.Stat(p); err != nil {
			return "", nil, fmt.Errorf("unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat %s: no such file or directory", file)
		}
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	absP, err := filepath.Abs(p)
	if err != nil {
		return "", nil, err
	}
	if rel, err := filepath.Rel(absDir, absP); err == nil && filepath.IsLocal(rel) {
		return filepath.ToSlash(rel), nil, nil
	}
	content, err := os.ReadFile(p)
	return "", content, err
}

// sendContext streams a tar of dir, leaving out what its .dockerignore
// excludes (the Dockerfile and .dockerignore go anyway: the daemon needs
// them, and COPY will not see them).
func sendContext(dir, dockerfile string, stream buildv1.Build_BuildClient) error {
	var ig *dockerignore.Ignore
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		ig, err = dockerignore.Read(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	w := &chunkWriter{send: func(b []byte) error {
		return stream.Send(&buildv1.BuildRequest{Payload: &buildv1.BuildRequest_Context{Context: b}})
	}}
	if err := writeContext(w, dir, dockerfile, ig); err != nil {
		return err
	}
	return w.flush()
}

type chunkWriter struct {
	buf  []byte
	send func([]byte) error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for len(w.buf) >= buildChunk {
		if err := w.send(w.buf[:buildChunk]); err != nil {
			return 0, err
		}
		w.buf = append([]byte(nil), w.buf[buildChunk:]...)
	}
	return len(p), nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(w.buf)
	w.buf = nil
	return err
}

// writeContext writes the tar of a build context directory, without what
// ig excludes but the Dockerfile ("" is "Dockerfile") and .dockerignore.
func writeContext(w io.Writer, dir, dockerfile string, ig *dockerignore.Ignore) error {
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != ".dockerignore" && rel != dockerfile && ig.Excluded(rel) {
			if d.IsDir() && !ig.HasExceptions() && !strings.HasPrefix(dockerfile, rel+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := hostTarHeader(p, fi, rel)
		if err != nil {
			return nil // sockets and the like are not sent
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
