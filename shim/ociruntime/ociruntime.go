// Package ociruntime runs an OCI runtime binary (berth-runtime, runc, crun)
// with runc's command line, as containerd's runc shim does, and turns its
// failures into errors that carry the runtime's own message.
package ociruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-project/berth/shim/reaper"
)

// Runtime is one runtime binary with its state root.
type Runtime struct {
	Binary        string // name on PATH or absolute path
	Root          string // --root
	SystemdCgroup bool
	Reaper        *reaper.Reaper
}

// IO are the standard streams given to a runtime command.
type IO struct {
	Stdin, Stdout, Stderr *os.File
}

// CreateOpts are the flags of create and exec.
type CreateOpts struct {
	IO
	PidFile       string
	ConsoleSocket string
	NoPivot       bool
	NoNewKeyring  bool
	Detach        bool // exec
}

// Error is a failed runtime command with the message it logged.
type Error struct {
	Args   []string
	Status int
	Msg    string
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("%s: exit status %d", strings.Join(e.Args, " "), e.Status)
	}
	return e.Msg
}

// run runs the runtime with args, logging to logFile in JSON so that the
// last error can be reported.
func (r *Runtime) run(ctx context.Context, io IO, logFile string, args ...string) ([]byte, error) {
	full := []string{"--root", r.Root}
	if logFile != "" {
		full = append(full, "--log", logFile, "--log-format", "json")
	}
	if r.SystemdCgroup {
		full = append(full, "--systemd-cgroup")
	}
	full = append(full, args...)
	cmd := exec.Command(r.Binary, full...)
	cmd.Stdin, cmd.Stderr = io.Stdin, io.Stderr
	var out *os.File
	if io.Stdout != nil {
		cmd.Stdout = io.Stdout
	} else {
		f, err := os.CreateTemp("", "berth-shim-out-")
		if err != nil {
			return nil, err
		}
		os.Remove(f.Name())
		defer f.Close()
		out, cmd.Stdout = f, f
	}
	var errBuf *os.File
	if io.Stderr == nil {
		f, err := os.CreateTemp("", "berth-shim-err-")
		if err != nil {
			return nil, err
		}
		os.Remove(f.Name())
		defer f.Close()
		errBuf, cmd.Stderr = f, f
	}
	e, err := r.Reaper.Run(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", r.Binary, err)
	}
	var stdout []byte
	if out != nil {
		stdout, _ = readAll(out)
	}
	if e.Status != 0 {
		msg := lastError(logFile)
		if msg == "" && errBuf != nil {
			b, _ := readAll(errBuf)
			msg = strings.TrimSpace(string(b))
		}
		if msg == "" {
			msg = strings.TrimSpace(string(stdout))
		}
		return stdout, &Error{Args: append([]string{filepath.Base(r.Binary)}, args...), Status: e.Status, Msg: msg}
	}
	return stdout, nil
}

func readAll(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.Bytes(), err
}

// lastError is the message of the last error-level line of a JSON log.
func lastError(logFile string) string {
	data, err := os.ReadFile(logFile)
	if err != nil {
		return ""
	}
	var msg string
	for _, line := range bytes.Split(data, []byte("\n")) {
		var entry struct{ Level, Msg string }
		if json.Unmarshal(line, &entry) == nil && entry.Level == "error" {
			msg = entry.Msg
		}
	}
	return msg
}

// Create creates the container: its init waits for Start.
func (r *Runtime) Create(ctx context.Context, id, bundle string, o CreateOpts) error {
	args := []string{"create", "--bundle", bundle, "--pid-file", o.PidFile}
	args = appendConsole(args, o)
	args = append(args, id)
	_, err := r.run(ctx, o.IO, filepath.Join(bundle, "log.json"), args...)
	return err
}

func appendConsole(args []string, o CreateOpts) []string {
	if o.ConsoleSocket != "" {
		args = append(args, "--console-socket", o.ConsoleSocket)
	}
	if o.NoPivot {
		args = append(args, "--no-pivot")
	}
	if o.NoNewKeyring {
		args = append(args, "--no-new-keyring")
	}
	return args
}

// Start starts a created container.
func (r *Runtime) Start(ctx context.Context, id, bundle string) error {
	_, err := r.run(ctx, IO{}, filepath.Join(bundle, "log.json"), "start", id)
	return err
}

// Exec runs the process described by processFile (a spec process JSON).
func (r *Runtime) Exec(ctx context.Context, id, bundle, processFile string, o CreateOpts) error {
	args := []string{"exec", "--detach", "--process", processFile, "--pid-file", o.PidFile}
	if o.ConsoleSocket != "" {
		args = append(args, "--console-socket", o.ConsoleSocket)
	}
	args = append(args, id)
	_, err := r.run(ctx, o.IO, filepath.Join(bundle, "log.json"), args...)
	return err
}

// Kill signals the init (or, with all, every process) of the container.
func (r *Runtime) Kill(ctx context.Context, id, bundle string, sig int, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(ctx, IO{}, filepath.Join(bundle, "log.json"), append(args, id, strconv.Itoa(sig))...)
	return err
}

// Delete removes the container's resources; force kills it first.
func (r *Runtime) Delete(ctx context.Context, id, bundle string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(ctx, IO{}, filepath.Join(bundle, "log.json"), append(args, id)...)
	return err
}

// Pause freezes the container; Resume thaws it.
func (r *Runtime) Pause(ctx context.Context, id, bundle string) error {
	_, err := r.run(ctx, IO{}, filepath.Join(bundle, "log.json"), "pause", id)
	return err
}

func (r *Runtime) Resume(ctx context.Context, id, bundle string) error {
	_, err := r.run(ctx, IO{}, filepath.Join(bundle, "log.json"), "resume", id)
	return err
}

// Update applies resources (OCI LinuxResources JSON).
func (r *Runtime) Update(ctx context.Context, id, bundle string, resources []byte) error {
	f, err := os.CreateTemp("", "berth-shim-resources-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(resources); err != nil {
		return err
	}
	_, err = r.run(ctx, IO{}, filepath.Join(bundle, "log.json"), "update", "--resources", f.Name(), id)
	return err
}

// Ps lists the pids in the container.
func (r *Runtime) Ps(ctx context.Context, id, bundle string) ([]int, error) {
	out, err := r.run(ctx, IO{}, filepath.Join(bundle, "log.json"), "ps", "--format", "json", id)
	if err != nil {
		return nil, err
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		return nil, fmt.Errorf("%s ps: %w", r.Binary, err)
	}
	return pids, nil
}

// Stats returns the runtime's stats event data (runc's events --stats JSON).
func (r *Runtime) Stats(ctx context.Context, id, bundle string) (*Stats, error) {
	out, err := r.run(ctx, IO{}, filepath.Join(bundle, "log.json"), "events", "--stats", id)
	if err != nil {
		return nil, err
	}
	var ev struct {
		Type string `json:"type"`
		Data *Stats `json:"data"`
	}
	if err := json.Unmarshal(out, &ev); err != nil {
		return nil, fmt.Errorf("%s events --stats: %w", r.Binary, err)
	}
	if ev.Data == nil {
		return nil, errors.New("runtime printed no stats")
	}
	return ev.Data, nil
}
