// Package bundle loads and checks an OCI runtime bundle: the config.json
// beside its root filesystem. Errors name the file, the field and the fix, so
// that a caller who wrote a bad config learns what to change.
package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ConfigName is the file name of the spec inside a bundle.
const ConfigName = "config.json"

// Load reads and validates dir/config.json. dir may be relative.
func Load(dir string) (*specs.Spec, error) {
	path := filepath.Join(dir, ConfigName)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(dir); serr != nil {
				return nil, fmt.Errorf("bundle %q does not exist: pass the bundle directory with --bundle", dir)
			}
			return nil, fmt.Errorf("JSON specification file %s not found: create one with the 'spec' command", path)
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	spec, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if err := Validate(spec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return spec, nil
}

// Parse decodes a spec, turning the decoder's errors into ones that name the
// offending field or position.
func Parse(name string, data []byte) (*specs.Spec, error) {
	var spec specs.Spec
	if err := Decode(name, data, &spec); err != nil {
		return nil, err
	}
	return &spec, nil
}

// Decode decodes JSON from data into v with errors that name the field (for
// a wrong type) or the line and column (for bad syntax).
func Decode(name string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%s is empty: it must hold a JSON object", name)
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("%s: field %s must be %s, not a JSON %s", name, field, describeType(typeErr.Type.String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		line, col := position(data, syntaxErr.Offset)
		return fmt.Errorf("%s: malformed JSON at line %d, column %d: %v", name, line, col, err)
	}
	return fmt.Errorf("%s: %w", name, err)
}

func describeType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		return "an object"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number (" + goType + ")"
	}
	return "of type " + goType
}

func position(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - bytes.LastIndexByte(before, '\n') - 1
	return line, col
}

// Validate checks what the runtime needs before it touches the system.
func Validate(spec *specs.Spec) error {
	if spec.Root == nil || spec.Root.Path == "" {
		return errors.New("root.path is not set: it must name the container's root filesystem (usually \"rootfs\")")
	}
	if spec.Linux == nil {
		return errors.New("linux section is missing: berth-runtime runs Linux containers only")
	}
	return ValidateProcess(spec.Process)
}

// ValidateProcess checks a process as create, run and exec need it.
func ValidateProcess(p *specs.Process) error {
	if p == nil {
		return errors.New("process property must not be empty")
	}
	if p.Cwd == "" {
		return errors.New("process.cwd must not be empty: set it to an absolute path such as \"/\"")
	}
	if !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("process.cwd %q must be an absolute path", p.Cwd)
	}
	if len(p.Args) == 0 && p.CommandLine == "" {
		return errors.New("process.args must not be empty: name the program to run")
	}
	return nil
}

// RootfsPath resolves the spec's root path against the bundle directory and
// checks that it is a directory.
func RootfsPath(bundleDir string, spec *specs.Spec) (string, error) {
	p := spec.Root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(bundleDir, p)
	}
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("rootfs %s does not exist: root.path in config.json must name a directory in the bundle", p)
		}
		return "", fmt.Errorf("rootfs: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("rootfs %s is not a directory", p)
	}
	return p, nil
}
