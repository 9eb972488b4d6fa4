package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/berth-project/berth/manager/containers"
	"github.com/berth-project/berth/manager/images"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

var defaultShell = []string{"/bin/sh", "-c"}

func (s *state) step(ctx context.Context, in Instruction) error {
	switch in.Cmd {
	case "FROM", "RUN", "COPY", "ADD":
	default:
		if err := in.checkFlags(); err != nil {
			return err
		}
	}
	switch in.Cmd {
	case "FROM":
		return s.from(ctx, in)
	case "ARG":
		return s.arg(in)
	case "RUN":
		return s.runStep(ctx, in)
	case "COPY", "ADD":
		return s.copyStep(ctx, in)
	case "WORKDIR":
		return s.workdir(ctx, in)
	case "ENV", "LABEL":
		kvs, err := keyValues(in, s.df.Escape, s.lookup, true)
		if err != nil {
			return lineError(in, err)
		}
		c := &s.config.Config
		for _, kv := range kvs {
			if in.Cmd == "ENV" {
				c.Env = setEnv(c.Env, kv[0], kv[1])
				continue
			}
			if c.Labels == nil {
				c.Labels = map[string]string{}
			}
			c.Labels[kv[0]] = kv[1]
		}
		return s.commitConfig(ctx, nop(in))
	case "CMD", "ENTRYPOINT":
		args := in.Args
		if !in.JSON {
			args = append(append([]string(nil), s.shellArgs()...), in.Rest)
		}
		if in.Cmd == "CMD" {
			s.config.Config.Cmd = args
			s.cmdSet = true
		} else {
			s.config.Config.Entrypoint = args
			if !s.cmdSet {
				s.config.Config.Cmd = nil
			}
		}
		return s.commitConfig(ctx, nop(in))
	case "EXPOSE":
		ws, err := s.words(in)
		if err != nil {
			return lineError(in, err)
		}
		if len(ws) == 0 {
			return lineError(in, errors.New("EXPOSE requires at least one argument"))
		}
		if s.config.Config.ExposedPorts == nil {
			s.config.Config.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ws {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			s.config.Config.ExposedPorts[p] = struct{}{}
		}
		return s.commitConfig(ctx, nop(in))
	case "VOLUME":
		ws, err := s.words(in)
		if err != nil {
			return lineError(in, err)
		}
		if len(ws) == 0 {
			return lineError(in, errors.New("VOLUME requires at least one argument"))
		}
		if s.config.Config.Volumes == nil {
			s.config.Config.Volumes = map[string]struct{}{}
		}
		for _, v := range ws {
			if v == "" {
				return lineError(in, errors.New("VOLUME specified can not be an empty string"))
			}
			s.config.Config.Volumes[v] = struct{}{}
		}
		return s.commitConfig(ctx, nop(in))
	case "USER", "STOPSIGNAL":
		ws, err := s.words(in)
		if err != nil {
			return lineError(in, err)
		}
		if len(ws) != 1 {
			return lineError(in, fmt.Errorf("%s requires exactly one argument", in.Cmd))
		}
		if in.Cmd == "USER" {
			s.config.Config.User = ws[0]
		} else {
			s.config.Config.StopSignal = ws[0]
		}
		return s.commitConfig(ctx, nop(in))
	case "SHELL":
		if !in.JSON || len(in.Args) == 0 {
			return lineError(in, errors.New("SHELL requires the arguments to be in JSON form"))
		}
		s.shell = in.Args
		return s.commitConfig(ctx, nop(in))
	case "MAINTAINER":
		s.config.Author = in.Rest
		return s.commitConfig(ctx, nop(in))
	case "HEALTHCHECK", "ONBUILD":
		return lineError(in, fmt.Errorf("%s is not supported by berth's builder yet: %w", in.Cmd, errdefs.ErrNotImplemented))
	}
	return fmt.Errorf("dockerfile parse error line %d: unknown instruction: %s: %w", in.Line, in.Cmd, errdefs.ErrInvalidArgument)
}

func lineError(in Instruction, err error) error {
	if errdefs.IsNotImplemented(err) || errdefs.IsInvalidArgument(err) {
		return fmt.Errorf("Dockerfile line %d: %s: %w", in.Line, in.Cmd, err)
	}
	return fmt.Errorf("Dockerfile line %d: %s: %v: %w", in.Line, in.Cmd, err, errdefs.ErrInvalidArgument)
}

func setEnv(env []string, k, v string) []string {
	out := append([]string(nil), env...)
	for i, kv := range out {
		if ek, _, _ := strings.Cut(kv, "="); ek == k {
			out[i] = k + "=" + v
			return out
		}
	}
	return append(out, k+"="+v)
}

func (s *state) shellArgs() []string {
	if len(s.shell) > 0 {
		return s.shell
	}
	return defaultShell
}

func (s *state) from(ctx context.Context, in Instruction) error {
	if err := in.checkFlags("platform"); err != nil {
		return err
	}
	ws, err := shellWords(in.Rest, s.df.Escape, s.metaLookup)
	if err != nil {
		return lineError(in, err)
	}
	if len(ws) != 1 && !(len(ws) == 3 && strings.EqualFold(ws[1], "AS")) {
		return lineError(in, errors.New("FROM requires either one or three arguments"))
	}
	if s.image != "" && s.stage != "" {
		s.stages[s.stage] = s.image
	}
	s.stage = ""
	if len(ws) == 3 {
		s.stage = strings.ToLower(ws[2])
	}
	s.args = map[string]*string{}
	s.shell = nil
	s.cmdSet = false
	ref := ws[0]
	if img, ok := s.stages[strings.ToLower(ref)]; ok {
		ref = img
	}
	if ref == "scratch" {
		var empty bytes.Buffer
		tw := tar.NewWriter(&empty)
		tw.Close()
		img, err := s.b.images.Import(ctx, &empty, images.ImportOptions{Source: "scratch", Message: "FROM scratch"})
		if err != nil {
			return err
		}
		s.setImage(img)
		return nil
	}
	img, err := s.b.images.Get(ctx, ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("pull access: image %s is not held by berthd: pull it first (berth pull %s): %w", ref, ref, errdefs.ErrNotFound)
		}
		return err
	}
	s.image = img.ID.String()
	s.config = img.Config
	return nil
}

func (s *state) arg(in Instruction) error {
	ws, err := shellWords(in.Rest, s.df.Escape, func(n string) (string, bool) {
		if s.image == "" {
			return s.metaLookup(n)
		}
		return s.lookup(n)
	})
	if err != nil {
		return lineError(in, err)
	}
	if len(ws) == 0 {
		return lineError(in, errors.New("ARG requires at least one argument"))
	}
	for _, w := range ws {
		k, v, hasDefault := strings.Cut(w, "=")
		if k == "" {
			return lineError(in, errors.New("ARG names can not be blank"))
		}
		var val *string
		if hasDefault {
			val = &v
		}
		if s.image == "" {
			if given, ok := s.opts.BuildArgs[k]; ok && given != nil {
				val = given
			}
			s.meta[k] = val
			s.used[k] = true
			continue
		}
		if !hasDefault {
			val = s.meta[k]
		}
		if given, ok := s.opts.BuildArgs[k]; ok && given != nil {
			val = given
		}
		s.args[k] = val
		s.used[k] = true
	}
	return nil
}

// argEnv is the ARGs with values that no ENV overrides, as KEY=VALUE.
func (s *state) argEnv() []string {
	var out []string
	for k, v := range s.args {
		if v == nil {
			continue
		}
		overridden := false
		for _, kv := range s.config.Config.Env {
			if ek, _, _ := strings.Cut(kv, "="); ek == k {
				overridden = true
			}
		}
		if !overridden {
			out = append(out, k+"="+*v)
		}
	}
	sortStrings(out)
	return out
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// container makes a container of the current image for a step.
func (s *state) container(ctx context.Context, cmd []string, network string, env []string) (string, error) {
	r, err := s.b.containers.Create(ctx, "", &containersv1.Config{
		Image:         s.image,
		Cmd:           cmd,
		EntrypointSet: true,
		Env:           env,
		WorkingDir:    s.config.Config.WorkingDir,
		User:          s.config.Config.User,
		NetworkMode:   network,
	})
	if err != nil {
		return "", err
	}
	s.ctrs = append(s.ctrs, r.GetId())
	return r.GetId(), nil
}

func (s *state) removeContainer(ctx context.Context, id string) error {
	if err := s.b.containers.Remove(ctx, id, true, true); err != nil {
		return err
	}
	for i, c := range s.ctrs {
		if c == id {
			s.ctrs = append(s.ctrs[:i], s.ctrs[i+1:]...)
			break
		}
	}
	return nil
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	return jsonString(v)
}

// commitContainer commits a step's container as the next image, with the
// build's command and entrypoint (not the step's).
func (s *state) commitContainer(ctx context.Context, id string) error {
	img, err := s.b.containers.Commit(ctx, id, containers.CommitOptions{
		Changes: []string{
			"ENTRYPOINT " + jsonList(s.config.Config.Entrypoint),
			"CMD " + jsonList(s.config.Config.Cmd),
		},
	})
	if err != nil {
		return err
	}
	s.setImage(img)
	return nil
}

func (s *state) runStep(ctx context.Context, in Instruction) (retErr error) {
	if err := in.checkFlags(); err != nil {
		return err
	}
	var args, env []string
	if in.JSON {
		args = in.Args
		env = s.argEnv()
	} else {
		script := in.Rest
		// Build args reach a shell-form command through the script, so
		// that they are not committed into the image's environment.
		if ae := s.argEnv(); len(ae) > 0 {
			var pre strings.Builder
			for _, kv := range ae {
				k, v, _ := strings.Cut(kv, "=")
				fmt.Fprintf(&pre, "%s=%s; export %s; ", k, shellQuote(v), k)
			}
			script = pre.String() + script
		}
		args = append(append([]string(nil), s.shellArgs()...), script)
	}
	network := s.opts.NetworkMode
	id, err := s.container(ctx, args, network, env)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, " ---> Running in %s\n", shortID(id))
	failed := true
	defer func() {
		if !failed || s.opts.Remove || s.opts.ForceRemove {
			return
		}
		// --rm=false: the container stays, as docker leaves it.
		for i, c := range s.ctrs {
			if c == id {
				s.ctrs = append(s.ctrs[:i], s.ctrs[i+1:]...)
			}
		}
	}()
	if err := s.b.containers.Start(ctx, id); err != nil {
		return err
	}
	logErr := s.b.containers.Logs(ctx, id, containers.LogsOptions{Follow: true, Stdout: true, Stderr: true, Tail: -1}, func(e *containersv1.LogEntry) error {
		_, err := s.out.Write(e.GetData())
		return err
	})
	code, err := s.b.containers.Wait(ctx, id, "not-running")
	if err != nil {
		return err
	}
	if logErr != nil && ctx.Err() != nil {
		return logErr
	}
	if code != 0 {
		shown := strings.Join(append(append([]string(nil), s.shellArgs()...), in.Rest), " ")
		if in.JSON {
			shown = jsonString(in.Args)
		}
		return fmt.Errorf("The command '%s' returned a non-zero code: %d", shown, code)
	}
	failed = false
	if err := s.commitContainer(ctx, id); err != nil {
		return err
	}
	if s.opts.Remove || s.opts.ForceRemove {
		fmt.Fprintf(s.out, "Removing intermediate container %s\n", shortID(id))
		return s.removeContainer(ctx, id)
	}
	s.dropContainer(id)
	return nil
}

// dropContainer forgets a container the build keeps (--rm=false).
func (s *state) dropContainer(id string) {
	for i, c := range s.ctrs {
		if c == id {
			s.ctrs = append(s.ctrs[:i], s.ctrs[i+1:]...)
			return
		}
	}
}

// stat returns a path's stat in a container, or nil when it does not
// exist.
func (s *state) stat(ctx context.Context, id, p string) (*containers.PathStat, error) {
	var got containers.PathStat
	errStop := errors.New("stat only")
	err := s.b.containers.CopyFrom(ctx, id, p, containers.CopyFromOptions{}, func(ps containers.PathStat) error {
		got = ps
		return errStop
	}, io.Discard)
	switch {
	case errors.Is(err, errStop):
		return &got, nil
	case errdefs.IsNotFound(err):
		return nil, nil
	default:
		if err == nil {
			return &got, nil
		}
		return nil, err
	}
}

// mkdirTar is a tar of the directories of p (absolute) that do not exist
// in the container yet, owned by uid:gid.
func (s *state) missingDirs(ctx context.Context, id, p string, tw *tar.Writer, uid, gid int) error {
	p = path.Clean(p)
	if p == "/" {
		return nil
	}
	var missing []string
	for d := p; d != "/"; d = path.Dir(d) {
		st, err := s.stat(ctx, id, d)
		if err != nil {
			return err
		}
		if st != nil {
			if !st.Mode.IsDir() {
				return fmt.Errorf("%s is not a directory", d)
			}
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(missing[i], "/") + "/", Mode: 0o755, Uid: uid, Gid: gid}); err != nil {
			return err
		}
	}
	return nil
}

func (s *state) workdir(ctx context.Context, in Instruction) error {
	ws, err := s.words(in)
	if err != nil {
		return lineError(in, err)
	}
	if len(ws) != 1 {
		return lineError(in, errors.New("WORKDIR requires exactly one argument"))
	}
	dir := ws[0]
	if !path.IsAbs(dir) {
		base := s.config.Config.WorkingDir
		if base == "" {
			base = "/"
		}
		dir = path.Join(base, dir)
	}
	dir = path.Clean(dir)
	s.config.Config.WorkingDir = dir
	id, err := s.container(ctx, []string{"/bin/sh", "-c", "#(nop) WORKDIR " + dir}, "none", nil)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := s.missingDirs(ctx, id, dir, tw, 0, 0); err != nil {
		return lineError(in, err)
	}
	tw.Close()
	if buf.Len() <= 1024 { // the end blocks only: nothing to make
		if err := s.removeContainer(ctx, id); err != nil {
			return err
		}
		return s.commitConfig(ctx, nop(in))
	}
	if err := s.b.containers.CopyTo(ctx, id, containers.CopyToOptions{Path: "/", CopyUIDGID: true}, &buf); err != nil {
		return err
	}
	// The container was made with the old working directory; the commit
	// takes the new one.
	if err := s.commitContainerWith(ctx, id, "WORKDIR "+dir); err != nil {
		return err
	}
	return s.removeContainer(ctx, id)
}

// commitContainerWith commits with one more change.
func (s *state) commitContainerWith(ctx context.Context, id string, change string) error {
	img, err := s.b.containers.Commit(ctx, id, containers.CommitOptions{
		Changes: []string{
			"ENTRYPOINT " + jsonList(s.config.Config.Entrypoint),
			"CMD " + jsonList(s.config.Config.Cmd),
			change,
		},
	})
	if err != nil {
		return err
	}
	s.setImage(img)
	return nil
}
