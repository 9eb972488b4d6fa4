package testimage

import (
	"fmt"
	"strings"
)

// reference is an image name as the tools want it: containerd the full
// form, docker the familiar one.
type reference struct {
	full       string // docker.io/library/berth-test:latest
	repository string // berth-test (familiar, without tag)
	tag        string // latest
}

func (r reference) familiar() string { return r.repository + ":" + r.tag }

// parseReference normalises name the way docker does: a missing tag means
// "latest", a missing registry "docker.io" and, on docker.io, a single path
// component is in "library/". An empty name means DefaultName. Digests are
// not supported: the image is named by tag.
func parseReference(name string) (reference, error) {
	if name == "" {
		name = DefaultName
	}
	if strings.Contains(name, "@") {
		return reference{}, fmt.Errorf("image name %q: digest references are not supported", name)
	}
	repo, tag := name, "latest"
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		repo, tag = name[:i], name[i+1:]
	}
	if repo == "" || tag == "" || strings.HasPrefix(repo, "/") || strings.HasSuffix(repo, "/") {
		return reference{}, fmt.Errorf("image name %q: invalid reference", name)
	}
	domain, path, ok := strings.Cut(repo, "/")
	if !ok || !(strings.ContainsAny(domain, ".:") || domain == "localhost") {
		domain, path = "docker.io", repo
	}
	familiar := domain + "/" + path
	if domain == "docker.io" {
		if !strings.Contains(path, "/") {
			path = "library/" + path
		}
		familiar = strings.TrimPrefix(path, "library/")
	}
	return reference{full: domain + "/" + path + ":" + tag, repository: familiar, tag: tag}, nil
}
