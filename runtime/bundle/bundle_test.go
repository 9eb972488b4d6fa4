package bundle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseErrorsNameTheProblem(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       []string
	}{
		{"empty", "  \n", []string{"is empty"}},
		{"syntax", "{\n  \"ociVersion\": \"1.0.0\",\n  \"process\": {,}\n}", []string{"malformed JSON", "line 3"}},
		{"args as string", `{"process": {"args": "sh"}}`, []string{"process.args", "an array", "string"}},
		{"uid as string", `{"process": {"user": {"uid": "0"}}}`, []string{"process.user.uid", "number"}},
		{"terminal as number", `{"process": {"terminal": 1}}`, []string{"process.terminal", "boolean"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("config.json", []byte(tc.json))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := `{"root":{"path":"rootfs"},"linux":{},"process":{"cwd":"/","args":["sh"]}}`
	for _, tc := range []struct {
		name, json, want string
	}{
		{"good", good, ""},
		{"no root", `{"linux":{},"process":{"cwd":"/","args":["sh"]}}`, "root.path"},
		{"no linux", `{"root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"]}}`, "linux section"},
		{"no process", `{"root":{"path":"rootfs"},"linux":{}}`, "process property"},
		{"relative cwd", `{"root":{"path":"rootfs"},"linux":{},"process":{"cwd":"tmp","args":["sh"]}}`, "absolute"},
		{"no args", `{"root":{"path":"rootfs"},"linux":{},"process":{"cwd":"/"}}`, "process.args"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := Parse("config.json", []byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			err = Validate(spec)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bundle: %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing config.json: %v", err)
	}
	spec := Default(false)
	if _, err := RootfsPath(dir, spec); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing rootfs: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := RootfsPath(dir, spec); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("rootfs file: %v", err)
	}
}

func TestDefaultNeverExceedsHostLimits(t *testing.T) {
	for _, rootless := range []bool{false, true} {
		spec := Default(rootless)
		if err := Validate(spec); err != nil {
			t.Fatalf("default spec (rootless=%v) is invalid: %v", rootless, err)
		}
		for _, r := range spec.Process.Rlimits {
			res, ok := rlimitResource[r.Type]
			if !ok {
				t.Fatalf("default spec has rlimit %s that ClampRlimits does not know", r.Type)
			}
			var host unix.Rlimit
			if err := unix.Getrlimit(res, &host); err != nil {
				t.Fatal(err)
			}
			if r.Hard > host.Max || r.Soft > r.Hard {
				t.Errorf("%s soft=%d hard=%d, host hard limit %d", r.Type, r.Soft, r.Hard, host.Max)
			}
		}
	}
}
