// Package cli is berth-runtime's command line: runc's commands, flags,
// output shapes and exit codes, so that containerd, podman and docker can run
// it in place of runc. Each command lives in its own file and only parses
// arguments; the work is done by the runner and state packages.
//
// The parser is spf13/pflag rather than a command framework: every container
// start executes this binary twice (the command, then `init` inside the new
// namespaces), so what runs before main is kept to a minimum.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	// The device-rule managers for cgroup v1 and v2 register themselves;
	// without them libcontainer refuses to set device rules.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	// nsenter's C constructor runs before the Go runtime in `init`: it joins
	// or creates the namespaces while the process is still single-threaded.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
)

// Name is how the runtime introduces itself.
const Name = "berth-runtime"

// Version is set at build time by the Makefile.
var Version = "dev"

// globals are the options given before the command.
type globals struct {
	root          string
	log           string
	logFormat     string
	debug         bool
	systemdCgroup bool
	rootless      string
	criu          string
}

// command is one subcommand: its usage line, its flags and what it does.
type command struct {
	name  string
	args  string // argument synopsis for help
	short string
	flags func(fs *pflag.FlagSet)
	run   func(ctx context.Context, g *globals, fs *pflag.FlagSet) error
}

// exitError carries a process's exit status out through the error path
// without printing anything.
type exitError struct{ status int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.status) }

// codedError is an error that exits with a status other than 1 (exec: 255).
type codedError struct {
	err    error
	status int
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

func commands() []*command {
	return []*command{
		checkpointCommand(), createCommand(), deleteCommand(), eventsCommand(), execCommand(),
		featuresCommand(), killCommand(), listCommand(), pauseCommand(), psCommand(),
		restoreCommand(), resumeCommand(), runCommand(), specCommand(), startCommand(),
		stateCommand(), updateCommand(),
	}
}

// Main runs the command line and returns the process exit status.
func Main(ctx context.Context, args []string) int {
	if len(args) > 1 && args[1] == "init" {
		// The container's first process, started by libcontainer from this
		// binary inside the new namespaces. Init does not return.
		libcontainer.Init()
	}
	g := &globals{}
	gfs := pflag.NewFlagSet(Name, pflag.ContinueOnError)
	gfs.SetInterspersed(false)
	gfs.SetOutput(io.Discard)
	gfs.StringVar(&g.root, "root", defaultRoot(), "root directory for storage of container state (this should be located in tmpfs)")
	gfs.StringVar(&g.log, "log", "", "set the log file to write berth-runtime logs to (default is '/dev/stderr')")
	gfs.StringVar(&g.logFormat, "log-format", "text", "set the log format ('text' (default), or 'json')")
	gfs.BoolVar(&g.debug, "debug", false, "enable debug logging")
	gfs.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "enable systemd cgroup support, expects cgroupsPath to be of form \"slice:prefix:name\"")
	gfs.StringVar(&g.rootless, "rootless", "auto", "ignore cgroup permission errors ('true', 'false', or 'auto')")
	gfs.StringVar(&g.criu, "criu", "criu", "path to the criu binary used for checkpoint and restore")
	showVersion := gfs.BoolP("version", "v", false, "print the version")
	help := gfs.BoolP("help", "h", false, "show help")
	if err := gfs.Parse(args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", Name, err)
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", Name)
		return 1
	}
	if *showVersion {
		printVersion(os.Stdout)
		return 0
	}
	rest := gfs.Args()
	if *help || len(rest) == 0 || rest[0] == "help" {
		mainHelp(os.Stdout, gfs)
		return 0
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == rest[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(os.Stderr, "%s: no such command %q; run '%s --help' for the list\n", Name, rest[0], Name)
		return 1
	}
	if err := setupLogging(g); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", Name, err)
		return 1
	}
	if err := reviseRoot(g); err != nil {
		return fail(err, 1)
	}
	fs := pflag.NewFlagSet(cmd.name, pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	cmdHelp := fs.BoolP("help", "h", false, "show help")
	if err := fs.Parse(rest[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n", Name, cmd.name, err)
		commandHelp(os.Stderr, cmd, fs)
		return 1
	}
	if *cmdHelp {
		commandHelp(os.Stdout, cmd, fs)
		return 0
	}
	err := cmd.run(ctx, g, fs)
	var exit exitError
	var coded codedError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.status
	case errors.As(err, &coded):
		return fail(coded.err, coded.status)
	}
	return fail(err, 1)
}

// fail reports err as runc does: to the log (which callers such as
// containerd read back from --log), and to stderr when the log is elsewhere.
func fail(err error, status int) int {
	logrus.Error(err)
	if f, ok := logrus.StandardLogger().Out.(*os.File); !ok || f.Fd() != os.Stderr.Fd() {
		fmt.Fprintln(os.Stderr, err)
	}
	return status
}

func setupLogging(g *globals) error {
	if g.debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	switch g.logFormat {
	case "text":
	case "json":
		logrus.SetFormatter(new(logrus.JSONFormatter))
	default:
		return fmt.Errorf("invalid --log-format %q: use 'text' or 'json'", g.logFormat)
	}
	if g.log != "" {
		f, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		logrus.SetOutput(f)
	}
	return nil
}

// defaultRoot keeps state in tmpfs: /run for root, XDG_RUNTIME_DIR otherwise.
func defaultRoot() string {
	if os.Geteuid() != 0 {
		if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
			return filepath.Join(dir, Name)
		}
	}
	return "/run/" + Name
}

func reviseRoot(g *globals) error {
	root, err := filepath.Abs(g.root)
	if err != nil {
		return fmt.Errorf("--root: %w", err)
	}
	if root == "/" {
		return errors.New("option --root argument should not be set to /")
	}
	g.root = root
	return nil
}

// container loads the container named by the command's first argument.
func loadContainer(g *globals, fs *pflag.FlagSet) (*libcontainer.Container, error) {
	id, err := containerID(fs)
	if err != nil {
		return nil, err
	}
	return libcontainer.Load(g.root, id)
}

func containerID(fs *pflag.FlagSet) (string, error) {
	id := fs.Arg(0)
	if id == "" {
		return "", errors.New("container id cannot be empty")
	}
	return id, nil
}

// checkArgs enforces a command's number of arguments.
func checkArgs(fs *pflag.FlagSet, min, max int) error {
	n := fs.NArg()
	switch {
	case min == max && n != min:
		return fmt.Errorf("%s: %q requires exactly %d argument(s)", Name, fs.Name(), min)
	case n < min:
		return fmt.Errorf("%s: %q requires a minimum of %d argument(s)", Name, fs.Name(), min)
	case max >= 0 && n > max:
		return fmt.Errorf("%s: %q requires a maximum of %d argument(s)", Name, fs.Name(), max)
	}
	return nil
}

func mainHelp(w io.Writer, gfs *pflag.FlagSet) {
	fmt.Fprintf(w, "%s: an OCI container runtime with runc's command line\n\nUsage: %s [global options] command [command options] [arguments...]\n\nCommands:\n", Name, Name)
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.short)
	}
	fmt.Fprintf(w, "\nGlobal options:\n%s", gfs.FlagUsages())
}

func commandHelp(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s %s [command options] %s\n\n%s\n", Name, c.name, c.args, c.short)
	if u := fs.FlagUsages(); strings.TrimSpace(u) != "" {
		fmt.Fprintf(w, "\nOptions:\n%s", u)
	}
}
