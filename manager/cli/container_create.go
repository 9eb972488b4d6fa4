package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/docker/go-units"

	"github.com/berth-project/berth/manager/client"
	"github.com/berth-project/berth/manager/signals"
	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

// ExitRunFailure is docker's exit status of `run` (and `create`) when the
// container could not be made or started: the daemon's errors, a bad
// option. 126 and 127 are for a command that cannot be invoked or is not
// found.
const (
	ExitRunFailure  = 125
	ExitCannotRun   = 126
	ExitCmdNotFound = 127
)

// CreateOptions are the flags `berth create` and `berth run` share.
type CreateOptions struct {
	Name        string
	Interactive bool
	TTY         bool
	Rm          bool
	Env         []string // KEY=VALUE, or KEY: its value here
	EnvFile     []string
	Workdir     string
	User        string
	Entrypoint  *string // nil: the image's; "" clears it
	Volumes     []string
	Mounts      []string
	Tmpfs       []string
	Publish     []string
	Network     string
	DNS         []string
	Hostname    string
	Labels      []string
	ReadOnly    bool
	Privileged  bool
	CapAdd      []string
	CapDrop     []string
	Memory      string
	MemorySwap  string
	CPUs        float64
	CPUShares   int64
	PidsLimit   int64
	StopSignal  string
	StopTimeout *int
	Sysctls     []string
	SecurityOpt []string
	LogDriver   string
	LogOpts     []string
	ShmSize     string
	Restart     string
	Pull        string // missing (default), always, never
	Platform    string

	// stdinOnce: `run` attaching stdin, which closes with the first
	// client's (docker sets StdinOnce for run only).
	stdinOnce bool
}

// createUsage marks an option error: `create` and `run` exit 125 on it as
// on the daemon's errors.
func createUsage(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// CreateRequest turns the options, image and command of `create` or
// `run` into what berthd is asked. lookupEnv reads the CLI's environment
// for -e KEY.
func (o *CreateOptions) CreateRequest(image string, cmd []string, lookupEnv func(string) (string, bool)) (*containersv1.CreateRequest, error) {
	cfg := &containersv1.Config{
		Image:         image,
		Cmd:           cmd,
		WorkingDir:    o.Workdir,
		User:          o.User,
		Hostname:      o.Hostname,
		Tty:           o.TTY,
		OpenStdin:     o.Interactive,
		StdinOnce:     o.Interactive && o.stdinOnce,
		Dns:           o.DNS,
		AutoRemove:    o.Rm,
		ReadOnly:      o.ReadOnly,
		Privileged:    o.Privileged,
		CapAdd:        o.CapAdd,
		CapDrop:       o.CapDrop,
		CpuShares:     o.CPUShares,
		PidsLimit:     o.PidsLimit,
		RestartPolicy: o.Restart,
		EntrypointSet: o.Entrypoint != nil,
		NetworkMode:   o.Network,
		NanoCpus:      int64(o.CPUs*1e9 + 0.5),
		Labels:        map[string]string{},
		Sysctls:       map[string]string{},
		SecurityOpt:   o.SecurityOpt,
		LogDriver:     o.LogDriver,
	}
	if o.Entrypoint != nil && *o.Entrypoint != "" {
		cfg.Entrypoint = []string{*o.Entrypoint}
	}
	if o.CPUs < 0 {
		return nil, createUsage("invalid argument %v for \"--cpus\" flag: value must be positive", o.CPUs)
	}
	if cfg.NetworkMode == "default" {
		// The daemon's default: bridge, or none when it runs without it.
		cfg.NetworkMode = ""
	}
	env, err := readEnv(o.EnvFile, o.Env, lookupEnv)
	if err != nil {
		return nil, err
	}
	cfg.Env = env
	for _, l := range o.Labels {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, createUsage("invalid label %q: empty name", l)
		}
		cfg.Labels[k] = v
	}
	for _, s := range o.LogOpts {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, createUsage("invalid argument %q for \"--log-opt\" flag: want key=value", s)
		}
		if cfg.LogOpts == nil {
			cfg.LogOpts = map[string]string{}
		}
		cfg.LogOpts[k] = v
	}
	for _, s := range o.Sysctls {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, createUsage("invalid argument %q for \"--sysctl\" flag: sysctl '%s' is not allowed", s, s)
		}
		cfg.Sysctls[k] = v
	}
	for _, sz := range []struct {
		flag, value string
		to          *int64
	}{{"--memory", o.Memory, &cfg.Memory}, {"--memory-swap", o.MemorySwap, &cfg.MemorySwap}, {"--shm-size", o.ShmSize, &cfg.ShmSize}} {
		if sz.value == "" {
			continue
		}
		if sz.flag == "--memory-swap" && sz.value == "-1" {
			*sz.to = -1
			continue
		}
		n, err := units.RAMInBytes(sz.value)
		if err != nil {
			return nil, createUsage("invalid argument %q for %q flag: %v", sz.value, sz.flag, err)
		}
		*sz.to = n
	}
	if o.StopSignal != "" {
		if _, err := ParseSignal(o.StopSignal); err != nil {
			return nil, &UsageError{Err: err}
		}
		cfg.StopSignal = o.StopSignal
	}
	if o.StopTimeout != nil {
		cfg.StopTimeout = int32(*o.StopTimeout)
	}
	if err := validRestart(o.Restart); err != nil {
		return nil, err
	}
	if o.Rm && o.Restart != "" && o.Restart != "no" {
		return nil, createUsage("conflicting options: cannot specify both --restart and --rm")
	}
	switch o.Pull {
	case "", "missing", "always", "never":
	default:
		return nil, createUsage("invalid pull option: '%s': must be one of \"always\", \"missing\" or \"never\"", o.Pull)
	}
	if cfg.Mounts, err = parseMounts(o.Volumes, o.Mounts, o.Tmpfs); err != nil {
		return nil, &UsageError{Err: err}
	}
	if cfg.Ports, err = parsePorts(o.Publish); err != nil {
		return nil, &UsageError{Err: err}
	}
	return &containersv1.CreateRequest{Name: o.Name, Config: cfg}, nil
}

// validRestart checks a --restart policy as docker does.
func validRestart(p string) error {
	name, count, hasCount := strings.Cut(p, ":")
	switch name {
	case "", "no", "always", "unless-stopped":
		if hasCount {
			return createUsage("invalid restart policy format: maximum retry count can only be used with 'on-failure'")
		}
		return nil
	case "on-failure":
		if hasCount {
			if n, err := strconv.Atoi(count); err != nil || n < 0 {
				return createUsage("invalid restart policy format: maximum retry count must be an integer")
			}
		}
		return nil
	}
	return createUsage("invalid restart policy format: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", name)
}

// readEnv gathers the environment as docker does: the --env-file lines
// first, then -e; a KEY without "=" takes its value from the CLI's
// environment and is left out when that has none.
func readEnv(files, vars []string, lookupEnv func(string) (string, bool)) ([]string, error) {
	var env []string
	add := func(kv string) error {
		k, _, hasValue := strings.Cut(kv, "=")
		if k == "" {
			return createUsage("invalid environment variable: %s", kv)
		}
		if hasValue {
			env = append(env, kv)
		} else if v, ok := lookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
		return nil
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, createUsage("open %s: %v", name, errors.Unwrap(err))
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimLeft(sc.Text(), " \t")
			if n == 1 {
				line = strings.TrimPrefix(line, "\ufeff")
			}
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, _, _ := strings.Cut(line, "=")
			if strings.ContainsAny(k, " \t") {
				f.Close()
				return nil, createUsage("variable '%s' contains whitespaces", k)
			}
			if err := add(line); err != nil {
				f.Close()
				return nil, err
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	for _, kv := range vars {
		if err := add(kv); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// ParseSignal reads a signal as docker's command line does (see
// manager/signals), its error worded as docker's.
func ParseSignal(s string) (syscall.Signal, error) {
	sig, err := signals.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("invalid signal: %s", s)
	}
	return sig, nil
}

// runError is how `run` and `create` fail before the container runs:
// with 125, for the daemon's errors and bad options as docker does.
func runError(err error) error {
	if err == nil {
		return nil
	}
	var st *StatusError
	if errors.As(err, &st) {
		return err
	}
	return &StatusError{Code: ExitRunFailure, Msg: err.Error()}
}

// startError is how `run` fails when the daemon cannot start the
// container: 127 when its command is not found, 126 when it cannot be
// invoked, 125 otherwise, by the words of the error as docker tells them.
func startError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
		return &StatusError{Code: ExitCmdNotFound, Msg: msg}
	case strings.Contains(msg, "permission denied"):
		return &StatusError{Code: ExitCannotRun, Msg: msg}
	}
	return runError(err)
}

// imageRef is the image as docker names it in "Unable to find image":
// with ":latest" when it has neither tag nor digest.
func imageRef(image string) string {
	if strings.Contains(image, "@") {
		return image
	}
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		return image
	}
	return image + ":latest"
}

// create makes the container, pulling its image first as --pull says
// (missing: when Create answers that it is not there).
func (cli *CLI) create(ctx context.Context, c *client.Client, req *containersv1.CreateRequest, opts *CreateOptions) (string, error) {
	image := req.GetConfig().GetImage()
	pull := func() error {
		return cli.pull(ctx, cli.Err, image, PullOptions{Platform: opts.Platform})
	}
	if opts.Pull == "always" {
		if err := pull(); err != nil {
			return "", err
		}
	}
	resp, err := c.Containers().Create(ctx, req)
	// Only a missing image is pulled: a network or volume that is not
	// found is the user's to fix.
	if err != nil && errdefs.IsNotFound(err) && strings.Contains(strings.ToLower(err.Error()), "no such image") && (opts.Pull == "" || opts.Pull == "missing") {
		fmt.Fprintf(cli.Err, "Unable to find image '%s' locally\n", imageRef(image))
		if err := pull(); err != nil {
			return "", err
		}
		resp, err = c.Containers().Create(ctx, req)
	}
	if err != nil {
		return "", err
	}
	for _, w := range resp.GetWarnings() {
		fmt.Fprintln(cli.Err, "WARNING:", w)
	}
	return resp.GetId(), nil
}

// Create makes a container as `docker create` does and prints its ID.
func (cli *CLI) Create(ctx context.Context, image string, cmd []string, opts CreateOptions) error {
	req, err := opts.CreateRequest(image, cmd, os.LookupEnv)
	if err != nil {
		return runError(err)
	}
	c, err := cli.client(ctx)
	if err != nil {
		return runError(err)
	}
	id, err := cli.create(ctx, c, req, &opts)
	if err != nil {
		return runError(err)
	}
	fmt.Fprintln(cli.Out, id)
	return nil
}
