package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/manager/cli"
)

// TestCreateFlags checks that the flags of run and create reach their
// options, and that what follows the image is the command's.
func TestCreateFlags(t *testing.T) {
	var (
		opts cli.CreateOptions
		cf   *createFlags
		got  []string
	)
	cmd := &cobra.Command{Use: "run", RunE: func(cmd *cobra.Command, args []string) error {
		cf.finish(cmd)
		got = args
		return nil
	}}
	cf = addCreateFlags(cmd.Flags(), &opts)
	cmd.SetArgs([]string{
		"--name", "web", "-it", "--rm", "-e", "A=1,2", "--env", "B", "-w", "/app", "-u", "nobody",
		"--entrypoint", "", "-v", "/h:/c", "--mount", "type=bind,src=/a,dst=/b", "--tmpfs", "/run",
		"-p", "8080:80", "--network", "host", "--dns", "8.8.8.8", "-h", "box", "-l", "a=b",
		"--read-only", "--privileged", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "-m", "1g",
		"--memory-swap", "-1", "--cpus", "0.5", "-c", "256", "--pids-limit", "50", "--stop-signal", "INT",
		"--stop-timeout", "3", "--sysctl", "net.core.somaxconn=1024", "--shm-size", "64m",
		"--restart", "on-failure:2", "--pull", "never", "--rm=false",
		"busybox", "ls", "-l", "--name",
	})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"busybox", "ls", "-l", "--name"}) {
		t.Errorf("args %q", got)
	}
	if opts.Name != "web" || !opts.Interactive || !opts.TTY || opts.Rm || !slices.Equal(opts.Env, []string{"A=1,2", "B"}) ||
		opts.Workdir != "/app" || opts.User != "nobody" || opts.Entrypoint == nil || *opts.Entrypoint != "" ||
		!slices.Equal(opts.Volumes, []string{"/h:/c"}) || !slices.Equal(opts.Mounts, []string{"type=bind,src=/a,dst=/b"}) ||
		!slices.Equal(opts.Tmpfs, []string{"/run"}) || !slices.Equal(opts.Publish, []string{"8080:80"}) || opts.Network != "host" ||
		!slices.Equal(opts.DNS, []string{"8.8.8.8"}) || opts.Hostname != "box" || !slices.Equal(opts.Labels, []string{"a=b"}) ||
		!opts.ReadOnly || !opts.Privileged || !slices.Equal(opts.CapAdd, []string{"NET_ADMIN"}) || !slices.Equal(opts.CapDrop, []string{"ALL"}) ||
		opts.Memory != "1g" || opts.MemorySwap != "-1" || opts.CPUs != 0.5 || opts.CPUShares != 256 || opts.PidsLimit != 50 ||
		opts.StopSignal != "INT" || opts.StopTimeout == nil || *opts.StopTimeout != 3 ||
		!slices.Equal(opts.Sysctls, []string{"net.core.somaxconn=1024"}) || opts.ShmSize != "64m" || opts.Restart != "on-failure:2" || opts.Pull != "never" {
		t.Errorf("options %+v", opts)
	}
	req, err := opts.CreateRequest(got[0], got[1:], func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if c := req.GetConfig(); c.GetMemory() != 1<<30 || c.GetNanoCpus() != 5e8 || len(c.GetMounts()) != 3 || len(c.GetPorts()) != 1 || c.GetStopTimeout() != 3 {
		t.Errorf("request %v", c)
	}

	// Unset, --entrypoint and --stop-timeout stay the image's.
	opts = cli.CreateOptions{}
	cmd = &cobra.Command{Use: "create", RunE: func(cmd *cobra.Command, args []string) error { cf.finish(cmd); return nil }}
	cf = addCreateFlags(cmd.Flags(), &opts)
	cmd.SetArgs([]string{"alpine"})
	if err := cmd.Execute(); err != nil || opts.Entrypoint != nil || opts.StopTimeout != nil || opts.Network != "default" || opts.Pull != "missing" {
		t.Errorf("defaults %+v %v", opts, err)
	}
}

// TestContainerCommands checks the container commands' wiring: their
// names and aliases, and the exit codes of what fails before berthd is
// asked (run and create exit 125 as docker does).
func TestContainerCommands(t *testing.T) {
	root := newRootCommand(&cli.CLI{})
	for _, path := range [][]string{
		{"run"}, {"create"}, {"start"}, {"stop"}, {"restart"}, {"kill"}, {"rm"}, {"ps"}, {"inspect"}, {"wait"},
		{"logs"}, {"attach"}, {"exec"},
		{"container", "ls"}, {"container", "ps"}, {"container", "list"}, {"container", "create"}, {"container", "run"},
		{"container", "start"}, {"container", "stop"}, {"container", "restart"}, {"container", "kill"},
		{"container", "rm"}, {"container", "remove"}, {"container", "inspect"}, {"container", "wait"}, {"container", "logs"},
		{"container", "attach"}, {"container", "exec"}, {"container", "prune"},
	} {
		c, rest, err := root.Find(path)
		if err != nil || len(rest) != 0 || c == root {
			t.Errorf("berth %s: %v", strings.Join(path, " "), err)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"run", "--bogus", "busybox"}, 125, "unknown flag: --bogus"},
		{[]string{"run", "-m", "lots", "busybox"}, 125, "--memory"},
		{[]string{"run", "--restart", "always", "--rm", "busybox"}, 125, "--restart"},
		{[]string{"create", "-v", "rel:x", "busybox"}, 125, "rel:x"},
		{[]string{"run", "-p", "notaport", "busybox"}, 125, "notaport"},
		{[]string{"run", "--stop-signal", "NOPE", "busybox"}, 125, "invalid signal"},
		{[]string{"kill", "-s", "NOPE", "x"}, 125, "invalid signal"},
		{[]string{"stop", "--signal", "NOPE", "x"}, 125, "invalid signal"},
		{[]string{"logs", "--tail", "ten", "x"}, 125, "tail"},
		{[]string{"inspect", "--type", "volume", "x"}, 125, "--type"},
		{[]string{"ps", "extra"}, 1, `"berth ps" accepts no arguments.`},
		{[]string{"stop"}, 1, `"berth stop" requires at least 1 argument.`},
		{[]string{"exec", "x"}, 1, `"berth exec" requires at least 2 arguments.`},
		{[]string{"logs", "a", "b"}, 1, `"berth logs" requires exactly 1 argument.`},
	} {
		var out bytes.Buffer
		b := &cli.CLI{Out: &out, Err: &out, In: strings.NewReader(""), Host: "unix:///nonexistent/berthd.sock"}
		root := newRootCommand(b)
		root.SetArgs(tc.args)
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.ExecuteContext(context.Background())
		if got := cli.ExitCode(err); got != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("berth %q: %v (exit %d), want exit %d and %q", tc.args, err, got, tc.code, tc.msg)
		}
	}
	// -h is --hostname for run and create, yet --help still helps.
	var out bytes.Buffer
	root = newRootCommand(&cli.CLI{Out: &out, Err: &out})
	root.SetOut(&out)
	root.SetArgs([]string{"run", "--help"})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "--hostname") {
		t.Errorf("run --help: %v %q", err, out.String())
	}
}

func TestStopAndExecFlags(t *testing.T) {
	var opts cli.StopOptions
	var finish func()
	cmd := &cobra.Command{Use: "stop", RunE: func(*cobra.Command, []string) error { finish(); return nil }}
	finish = stopFlags(cmd, &opts)
	cmd.SetArgs([]string{"-t", "0", "-s", "KILL", "x"})
	if err := cmd.Execute(); err != nil || opts.Timeout == nil || *opts.Timeout != 0 || opts.Signal != "KILL" {
		t.Errorf("stop flags %+v %v", opts, err)
	}

	ec := newExecCommand(&cli.CLI{})
	if err := ec.ParseFlags([]string{"-it", "-e", "A=1", "-u", "0", "-w", "/tmp", "web", "ls", "-la"}); err != nil {
		t.Fatal(err)
	}
	if args := ec.Flags().Args(); !slices.Equal(args, []string{"web", "ls", "-la"}) {
		t.Errorf("exec args %q", args)
	}
}
