package images

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// Reference is an image reference in docker's normalised form: the
// registry always named, Docker Hub's official images under library/.
type Reference struct {
	Domain string        // "docker.io", "127.0.0.1:5000"
	Path   string        // "library/busybox"
	Tag    string        // "" when not given
	Digest digest.Digest // "" when not given
}

// The defaults docker applies to a short name.
const (
	DefaultDomain = "docker.io"
	DefaultTag    = "latest"
	legacyDomain  = "index.docker.io"
	officialRepo  = "library/"
)

// The grammar of docker's distribution reference: a domain of DNS labels,
// an IPv4 or a bracketed IPv6 address with an optional port; path
// components of lowercase letters and digits joined by '.', '_', '__' or
// runs of '-'; a tag of word characters, '.' and '-'.
var (
	domainRe    = regexp.MustCompile(`^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$`)
	componentRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRe       = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	hex64Re     = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

const maxNameLength = 255

// refError is a malformed reference: an errdefs.ErrInvalidArgument whose
// message says, as docker's does, what is wrong with it.
func refError(s, format string, args ...any) error {
	return fmt.Errorf("invalid reference format %q: %s: %w", s, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// ParseReference parses s as docker does and normalises it: "busybox"
// becomes docker.io/library/busybox, "index.docker.io/x/y" docker.io/x/y.
// No tag is added (see WithDefaultTag). A malformed reference is an
// errdefs.ErrInvalidArgument naming what is wrong.
func ParseReference(s string) (Reference, error) {
	if s == "" {
		return Reference{}, refError(s, "empty reference")
	}
	if hex64Re.MatchString(s) {
		return Reference{}, refError(s, "a 64-character hexadecimal string is an image ID, not a repository name")
	}
	var r Reference
	namePart := s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		namePart = s[:i]
		d, err := digest.Parse(s[i+1:])
		if err != nil {
			return Reference{}, refError(s, "bad digest %q: %v", s[i+1:], err)
		}
		r.Digest = d
	}
	if i := strings.LastIndexByte(namePart, ':'); i > strings.LastIndexByte(namePart, '/') {
		r.Tag = namePart[i+1:]
		namePart = namePart[:i]
		if !tagRe.MatchString(r.Tag) {
			return Reference{}, refError(s, "bad tag %q: a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'", r.Tag)
		}
	}
	if namePart == "" {
		return Reference{}, refError(s, "no repository name")
	}
	// The first component is the registry when it looks like a host: it has
	// a '.' or a ':', is localhost, or has capitals (which no repository
	// name may).
	first, rest, ok := strings.Cut(namePart, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		r.Domain, r.Path = first, rest
	} else {
		r.Domain, r.Path = DefaultDomain, namePart
	}
	if r.Domain == legacyDomain {
		r.Domain = DefaultDomain
	}
	if r.Domain == DefaultDomain && !strings.Contains(r.Path, "/") {
		r.Path = officialRepo + r.Path
	}
	if !domainRe.MatchString(r.Domain) {
		return Reference{}, refError(s, "bad registry %q", r.Domain)
	}
	if strings.ToLower(r.Path) != r.Path {
		return Reference{}, refError(s, "repository name %q must be lowercase", r.Path)
	}
	for _, c := range strings.Split(r.Path, "/") {
		if !componentRe.MatchString(c) {
			return Reference{}, refError(s, "bad repository name component %q: use lowercase letters and digits, joined by '.', '_', '__' or '-'", c)
		}
	}
	if n := len(r.Domain) + 1 + len(r.Path); n > maxNameLength {
		return Reference{}, refError(s, "repository name is %d characters long, at most %d are allowed", n, maxNameLength)
	}
	return r, nil
}

// WithDefaultTag returns r with the tag "latest" when it has neither tag
// nor digest, as docker pull and tag do.
func (r Reference) WithDefaultTag() Reference {
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r
}

// Name is the repository: domain and path.
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the full normalised reference.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// FamiliarName is the repository as docker shows it: Docker Hub's domain
// and library/ left out.
func (r Reference) FamiliarName() string {
	if r.Domain != DefaultDomain {
		return r.Name()
	}
	if rest, ok := strings.CutPrefix(r.Path, officialRepo); ok && !strings.Contains(rest, "/") {
		return rest
	}
	return r.Path
}

// Familiar is the reference as docker shows it (busybox:latest).
func (r Reference) Familiar() string {
	s := r.FamiliarName()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// FamiliarString shows the normalised reference s as docker does; s is
// returned unchanged if it does not parse.
func FamiliarString(s string) string {
	r, err := ParseReference(s)
	if err != nil {
		return s
	}
	return r.Familiar()
}
