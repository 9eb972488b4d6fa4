package ocispec

import (
	"encoding/csv"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"
)

// volumeNameRE is docker's rule for a local volume's name.
var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ParseVolume parses docker's -v syntax:
//
//	/host:/ctr[:mode]  a bind mount (Type "bind")
//	name:/ctr[:mode]   a named volume (Type "volume", volumeName set)
//	/ctr               an anonymous volume (Type "volume", Source and volumeName "")
//
// mode is a comma-separated list of at most one of ro/rw, one of z/Z
// (accepted, ignored: no SELinux labelling yet), one propagation mode
// (binds only) and nocopy (volumes only). For volumes the caller sets Source
// to the volume's host path before Generate.
func ParseVolume(s string) (m Mount, volumeName string, err error) {
	bad := func(why string) (Mount, string, error) {
		return Mount{}, "", fmt.Errorf("invalid volume specification %q: %s: %w", s, why, errdefs.ErrInvalidArgument)
	}
	parts := strings.Split(s, ":")
	for _, p := range parts {
		if p == "" {
			return bad("empty part; want [SOURCE:]DESTINATION[:MODE]")
		}
	}
	var src, dst, mode string
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2:
		if validMode(parts[1]) == nil {
			return bad("a volume without a source cannot have a mode; give /host:/ctr:" + parts[1])
		}
		src, dst = parts[0], parts[1]
	case 3:
		src, dst, mode = parts[0], parts[1], parts[2]
	default:
		return bad("too many ':'; want [SOURCE:]DESTINATION[:MODE]")
	}
	if !path.IsAbs(dst) {
		return bad(fmt.Sprintf("the container path %q must be absolute", dst))
	}
	if path.Clean(dst) == "/" {
		return bad("the destination can't be '/'")
	}
	m = Mount{Type: "volume", Destination: path.Clean(dst)}
	switch {
	case src == "":
	case path.IsAbs(src):
		m.Type, m.Source = "bind", path.Clean(src)
	case volumeNameOK(src):
		volumeName = src
	default:
		return bad(fmt.Sprintf("%q includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed; if you intended to pass a host directory, use an absolute path", src))
	}
	if mode == "" {
		return m, volumeName, nil
	}
	if err := validMode(mode); err != nil {
		return bad(err.Error())
	}
	for _, f := range strings.Split(mode, ",") {
		switch {
		case f == "ro":
			m.ReadOnly = true
		case f == "rw", f == "z", f == "Z":
		case f == "nocopy":
			if m.Type != "volume" {
				return bad("nocopy is only for volumes, not bind mounts")
			}
			m.NoCopy = true
		case propagationModes[f]:
			if m.Type != "bind" {
				return bad(fmt.Sprintf("propagation %q is only for bind mounts", f))
			}
			m.Options = append(m.Options, f)
		}
	}
	return m, volumeName, nil
}

func volumeNameOK(s string) bool { return volumeNameRE.MatchString(s) }

// validMode checks a -v mode list: known flags, at most one of each kind.
func validMode(mode string) error {
	var rw, label, prop, cp int
	for _, f := range strings.Split(mode, ",") {
		switch {
		case f == "ro" || f == "rw":
			rw++
		case f == "z" || f == "Z":
			label++
		case propagationModes[f]:
			prop++
		case f == "nocopy":
			cp++
		default:
			return fmt.Errorf("unknown mode %q: use ro, rw, z, Z, nocopy or a propagation (shared, rshared, slave, rslave, private, rprivate)", f)
		}
	}
	if rw > 1 || label > 1 || prop > 1 || cp > 1 {
		return fmt.Errorf("mode %q repeats a kind of option", mode)
	}
	return nil
}

// tmpfsFlags are the flags --tmpfs accepts; its keys are tmpfsKeys.
var (
	tmpfsFlags = map[string]bool{
		"ro": true, "rw": true, "exec": true, "noexec": true, "suid": true, "nosuid": true,
		"dev": true, "nodev": true, "atime": true, "noatime": true, "relatime": true,
		"strictatime": true, "diratime": true, "nodiratime": true, "sync": true,
		"async": true, "dirsync": true, "mand": true, "nomand": true,
	}
	tmpfsKeys = map[string]bool{
		"size": true, "mode": true, "uid": true, "gid": true, "nr_inodes": true,
		"nr_blocks": true, "mpol": true, "huge": true,
	}
)

// ParseTmpfs parses --tmpfs "/path[:opts]", opts being comma-separated tmpfs
// mount options (rw, noexec, size=64m, mode=1777...). "ro"/"rw" set ReadOnly.
func ParseTmpfs(s string) (Mount, error) {
	dst, opts, _ := strings.Cut(s, ":")
	if !path.IsAbs(dst) || path.Clean(dst) == "/" {
		return Mount{}, fmt.Errorf("invalid --tmpfs %q: the container path must be absolute and not '/': %w", s, errdefs.ErrInvalidArgument)
	}
	m := Mount{Type: "tmpfs", Destination: path.Clean(dst)}
	if opts == "" {
		return m, nil
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, isKV := strings.Cut(o, "=")
		switch {
		case o == "ro":
			m.ReadOnly = true
		case o == "rw":
			m.ReadOnly = false
		case isKV && tmpfsKeys[k] && v != "":
			m.Options = append(m.Options, o)
		case !isKV && (tmpfsFlags[o] || propagationModes[o]):
			m.Options = append(m.Options, o)
		default:
			return Mount{}, fmt.Errorf("invalid --tmpfs %q: unknown option %q: use mount flags (rw, ro, exec, noexec...) or size=, mode=, uid=, gid=, nr_inodes=: %w", s, o, errdefs.ErrInvalidArgument)
		}
	}
	return m, nil
}

// ParseMount parses --mount "type=bind,source=/a,target=/b,readonly" as
// docker does. Types are bind, volume (the default) and tmpfs. Keys:
// type, source|src, target|destination|dst, readonly|ro[=bool],
// bind-propagation, bind-recursive (enabled|disabled), volume-nocopy[=bool],
// tmpfs-size (bytes or 64m), tmpfs-mode (octal), consistency (ignored).
// A volume without a source is anonymous (volumeName "").
func ParseMount(s string) (m Mount, volumeName string, err error) {
	bad := func(format string, a ...any) (Mount, string, error) {
		return Mount{}, "", fmt.Errorf("invalid --mount %q: %s: %w", s, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	r := csv.NewReader(strings.NewReader(s))
	fields, err := r.Read()
	if err != nil {
		return bad("%v", err)
	}
	typ := "volume"
	var src, dst, propagation, recursive string
	var readonly, nocopy bool
	var tmpfsSize, tmpfsMode string
	set := map[string]bool{}
	for _, f := range fields {
		k, v, hasV := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		boolean := func() (bool, error) {
			if !hasV {
				return true, nil
			}
			switch strings.ToLower(v) {
			case "1", "true":
				return true, nil
			case "0", "false":
				return false, nil
			}
			return false, fmt.Errorf("%s=%q: want true or false", k, v)
		}
		if !hasV && k != "readonly" && k != "ro" && k != "volume-nocopy" {
			return bad("%q is not key=value", f)
		}
		set[k] = true
		switch k {
		case "type":
			typ = v
		case "source", "src":
			src = v
		case "target", "destination", "dst":
			dst = v
		case "readonly", "ro":
			if readonly, err = boolean(); err != nil {
				return bad("%v", err)
			}
		case "bind-propagation":
			if !propagationModes[v] {
				return bad("unknown bind-propagation %q: use shared, rshared, slave, rslave, private or rprivate", v)
			}
			propagation = v
		case "bind-recursive":
			if v != "enabled" && v != "disabled" {
				return bad("bind-recursive=%q is not supported: use enabled or disabled", v)
			}
			recursive = v
		case "volume-nocopy":
			if nocopy, err = boolean(); err != nil {
				return bad("%v", err)
			}
		case "tmpfs-size":
			n, err := units.RAMInBytes(v)
			if err != nil || n <= 0 {
				return bad("tmpfs-size %q: give a positive size such as 64m", v)
			}
			tmpfsSize = "size=" + strconv.FormatInt(n, 10)
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return bad("tmpfs-mode %q: give an octal mode such as 1777", v)
			}
			tmpfsMode = "mode=" + strconv.FormatUint(n, 8)
		case "consistency":
		default:
			return bad("unknown key %q", k)
		}
	}
	if dst == "" {
		return bad("target is required")
	}
	if !path.IsAbs(dst) || path.Clean(dst) == "/" {
		return bad("target %q must be an absolute path other than '/'", dst)
	}
	only := func(prefix, t string) bool {
		for k := range set {
			if strings.HasPrefix(k, prefix) && typ != t {
				return false
			}
		}
		return true
	}
	if !only("bind-", "bind") || !only("volume-", "volume") || !only("tmpfs-", "tmpfs") {
		return bad("options for one mount type given with type=%s", typ)
	}
	m = Mount{Type: typ, Destination: path.Clean(dst), ReadOnly: readonly}
	switch typ {
	case "bind":
		if src == "" || !path.IsAbs(src) {
			return bad("a bind mount needs an absolute source, got %q", src)
		}
		m.Source = path.Clean(src)
		if recursive == "disabled" {
			m.Options = append(m.Options, "bind")
		}
		if propagation != "" {
			m.Options = append(m.Options, propagation)
		}
	case "volume":
		m.NoCopy = nocopy
		switch {
		case src == "":
		case volumeNameOK(src):
			volumeName = src
		default:
			return bad("%q is not a valid volume name: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed; for a host directory use type=bind", src)
		}
	case "tmpfs":
		if src != "" {
			return bad("a tmpfs mount takes no source")
		}
		for _, o := range []string{tmpfsSize, tmpfsMode} {
			if o != "" {
				m.Options = append(m.Options, o)
			}
		}
	default:
		return bad("unknown type %q: use bind, volume or tmpfs", typ)
	}
	return m, volumeName, nil
}
