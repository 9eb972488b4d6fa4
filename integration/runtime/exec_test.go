package runtime_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/integration/testenv"
)

// capSysAdmin is CAP_SYS_ADMIN's bit, which the default spec does not grant.
const capSysAdmin = 21

// TestExec runs processes in a running container with exec's options.
func TestExec(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRuntime(t)
	id := r.detached(newBundle(t, nil, sleeper...))

	for _, tc := range []struct {
		name  string
		flags []string // exec's options
		cmd   []string // the process
		out   string   // its exact stdout
		code  int
	}{
		{"args", nil, []string{"echo", "hello", "world"}, "hello world\n", 0},
		{"env", []string{"-e", "FOO=bar", "-e", "BAZ=qux"}, []string{"sh", "-c", `echo "$FOO $BAZ $PATH"`}, "bar qux /bin:/usr/bin\n", 0},
		{"env override", []string{"-e", "TERM=dumb"}, []string{"sh", "-c", `echo "$TERM"; env | grep -c ^TERM=`}, "dumb\n1\n", 0},
		{"cwd", []string{"--cwd", "/opt/old"}, []string{"pwd"}, "/opt/old\n", 0},
		{"user", []string{"-u", "1000:1000"}, []string{"sh", "-c", "id -u; id -g"}, "1000\n1000\n", 0},
		{"additional gids", []string{"-u", "1000:1000", "--additional-gids", "1001"}, []string{"id", "-G"}, "1000 1001\n", 0},
		{"exit status", nil, []string{"sh", "-c", "echo bye; exit 7"}, "bye\n", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := slices.Concat([]string{"exec"}, tc.flags, []string{id}, tc.cmd)
			stdout, stderr, code := r.run(args...)
			if code != tc.code || stdout != tc.out {
				t.Errorf("%s: exit %d, stdout %q; want exit %d, stdout %q (stderr: %s)", strings.Join(args, " "), code, stdout, tc.code, tc.out, stderr)
			}
		})
	}

	t.Run("cap", func(t *testing.T) {
		capEff := func(args ...string) uint64 {
			out := r.ok(append(append([]string{"exec"}, args...), id, "grep", "CapEff", "/proc/self/status")...)
			v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(out, "CapEff:")), 16, 64)
			if err != nil {
				t.Fatalf("CapEff: %v", err)
			}
			return v
		}
		if v := capEff(); v&(1<<capSysAdmin) != 0 {
			t.Fatalf("CapEff %x has CAP_SYS_ADMIN without --cap", v)
		}
		if v := capEff("--cap", "CAP_SYS_ADMIN"); v&(1<<capSysAdmin) == 0 {
			t.Errorf("exec --cap CAP_SYS_ADMIN: CapEff %x lacks it", v)
		}
	})

	t.Run("process file", func(t *testing.T) {
		p := specs.Process{
			Args: []string{"sh", "-c", `echo "$GREETING from $(pwd) as $(id -u)"; exit 4`},
			Env:  []string{"PATH=/bin", "GREETING=hi"},
			Cwd:  "/tmp",
			User: specs.User{UID: 1000, GID: 1000},
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "process.json")
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := r.run("exec", "--process", file, id)
		if code != 4 || stdout != "hi from /tmp as 1000\n" {
			t.Errorf("exec --process: exit %d, stdout %q; want 4, %q (stderr: %s)", code, stdout, "hi from /tmp as 1000\n", stderr)
		}
	})

	t.Run("detach pid-file", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "exec.pid")
		r.ok("exec", "-d", "--pid-file", pidFile, id, "sleep", "3600")
		pid := readPid(t, pidFile)
		var pids []int
		if err := json.Unmarshal([]byte(r.ok("ps", "--format", "json", id)), &pids); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(pids, pid) || pid == r.state(id).Pid {
			t.Errorf("exec -d --pid-file: pid %d, want a process of the container %v other than its init", pid, pids)
		}
	})

	t.Run("stopped container", func(t *testing.T) {
		id := r.create(newBundle(t, nil, "true"))
		r.ok("start", id)
		r.waitStatus(id, "stopped")
		stderr, code := r.fails("exec", id, "true")
		if code != 255 {
			t.Errorf("exec in a stopped container: exit %d, want 255", code)
		}
		contains(t, "exec in a stopped container", stderr, "cannot exec in a stopped container")
	})
}
