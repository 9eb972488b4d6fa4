package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime/bundle"
	"github.com/berth-project/berth/runtime/runner"
)

// execFlags are exec's options; they override the process from config.json.
type execFlags struct {
	consoleSocket string
	cwd           string
	env           []string
	tty           bool
	user          string
	gids          []int
	processFile   string
	detach        bool
	pidFile       string
	label         string
	apparmor      string
	noNewPrivs    bool
	caps          []string
	preserveFDs   int
	ignorePaused  bool
}

func (f *execFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.consoleSocket, "console-socket", "", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal")
	fs.StringVar(&f.cwd, "cwd", "", "current working directory in the container")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set environment variables (repeatable)")
	fs.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-TTY")
	fs.StringVarP(&f.user, "user", "u", "", "UID (format: <uid>[:<gid>])")
	fs.IntSliceVarP(&f.gids, "additional-gids", "g", nil, "additional gids (repeatable)")
	fs.StringVarP(&f.processFile, "process", "p", "", "path to the process.json")
	fs.BoolVarP(&f.detach, "detach", "d", false, "detach from the container's process")
	fs.StringVar(&f.pidFile, "pid-file", "", "specify the file to write the process id to")
	fs.StringVar(&f.label, "process-label", "", "set the asm process label for the process commonly used with selinux")
	fs.StringVar(&f.apparmor, "apparmor", "", "set the apparmor profile for the process")
	fs.BoolVar(&f.noNewPrivs, "no-new-privs", false, "set the no new privileges value for the process")
	fs.StringArrayVarP(&f.caps, "cap", "c", nil, "add a capability to the bounding set for the process (repeatable)")
	fs.IntVar(&f.preserveFDs, "preserve-fds", 0, "pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)")
	fs.BoolVar(&f.ignorePaused, "ignore-paused", false, "allow exec in a paused container")
	fs.StringArray("cgroup", nil, "not supported yet: run the process in a sub-cgroup")
	fs.String("pidfd-socket", "", "not supported yet")
	_ = fs.MarkHidden("pidfd-socket")
}

func execCommand() *command {
	var f execFlags
	return &command{
		name:  "exec",
		args:  "<container-id> <command> [command options]  ||  -p process.json <container-id>",
		short: "run a new process inside a running container",
		flags: f.register,
		run: func(ctx context.Context, g *globals, fs *pflag.FlagSet) error {
			if err := checkArgs(fs, 1, -1); err != nil {
				return err
			}
			status, err := f.exec(ctx, g, fs)
			if err != nil {
				return codedError{fmt.Errorf("exec failed: %w", err), 255}
			}
			if status != 0 {
				return exitError{status}
			}
			return nil
		},
	}
}

func (f *execFlags) exec(ctx context.Context, g *globals, fs *pflag.FlagSet) (int, error) {
	if fs.Changed("cgroup") {
		return -1, errors.New("--cgroup is not supported by berth-runtime yet")
	}
	c, err := loadContainer(g, fs)
	if err != nil {
		return -1, err
	}
	status, err := c.Status()
	if err != nil {
		return -1, err
	}
	if status == libcontainer.Stopped {
		return -1, errors.New("cannot exec in a stopped container")
	}
	if status == libcontainer.Paused && !f.ignorePaused {
		return -1, errors.New("cannot exec in a paused container (use --ignore-paused to override)")
	}
	p, err := f.process(c, fs)
	if err != nil {
		return -1, err
	}
	pidFile := f.pidFile
	if pidFile != "" {
		if pidFile, err = filepath.Abs(pidFile); err != nil {
			return -1, fmt.Errorf("--pid-file: %w", err)
		}
	}
	return runner.Exec(ctx, c, p, runner.ProcessIO{
		ConsoleSocket: f.consoleSocket,
		PidFile:       pidFile,
		PreserveFDs:   f.preserveFDs,
		Detach:        f.detach,
	})
}

// process is --process's JSON as given, or config.json's process with the
// command line's arguments and overrides.
func (f *execFlags) process(c *libcontainer.Container, fs *pflag.FlagSet) (*specs.Process, error) {
	if f.processFile != "" {
		data, err := os.ReadFile(f.processFile)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		var p specs.Process
		if err := bundle.Decode(f.processFile, data, &p); err != nil {
			return nil, err
		}
		return &p, bundle.ValidateProcess(&p)
	}
	dir, ok := utils.SearchLabels(c.Config().Labels, "bundle")
	if !ok {
		return nil, errors.New("bundle not found in the container's labels")
	}
	spec, err := bundle.Load(dir)
	if err != nil {
		return nil, err
	}
	p := spec.Process
	if fs.NArg() < 2 {
		return nil, errors.New("exec args cannot be empty")
	}
	p.Args = fs.Args()[1:]
	if f.cwd != "" {
		p.Cwd = f.cwd
	}
	if f.apparmor != "" {
		p.ApparmorProfile = f.apparmor
	}
	if f.label != "" {
		p.SelinuxLabel = f.label
	}
	if len(f.caps) > 0 {
		if p.Capabilities == nil {
			p.Capabilities = &specs.LinuxCapabilities{}
		}
		for _, cp := range f.caps {
			cp = strings.ToUpper(cp)
			if !strings.HasPrefix(cp, "CAP_") {
				cp = "CAP_" + cp
			}
			p.Capabilities.Bounding = append(p.Capabilities.Bounding, cp)
			p.Capabilities.Effective = append(p.Capabilities.Effective, cp)
			p.Capabilities.Permitted = append(p.Capabilities.Permitted, cp)
			// Ambient needs the capability inheritable too; only add it
			// where the spec already uses inheritable capabilities.
			if p.Capabilities.Inheritable != nil {
				p.Capabilities.Ambient = append(p.Capabilities.Ambient, cp)
			}
		}
	}
	p.Env = append(p.Env, f.env...)
	p.Terminal = f.tty
	if fs.Changed("no-new-privs") {
		p.NoNewPrivileges = f.noNewPrivs
	}
	if f.user != "" {
		uid, gid, hasGID := strings.Cut(f.user, ":")
		n, err := strconv.ParseUint(uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--user %q: uid must be a number", f.user)
		}
		p.User.UID = uint32(n)
		if hasGID {
			n, err := strconv.ParseUint(gid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--user %q: gid must be a number", f.user)
			}
			p.User.GID = uint32(n)
		}
	}
	for _, gid := range f.gids {
		if gid < 0 {
			return nil, fmt.Errorf("--additional-gids: %d is not a valid gid", gid)
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
	}
	return p, nil
}
