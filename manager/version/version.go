// Package version says which berth this is: berthd and berth report it in
// `berth version`, and the API version lets a client tell what the daemon
// it talks to understands.
package version

import "runtime"

// Set at build time by the Makefile (-ldflags -X); "dev" and "unknown" in a
// plain `go build`.
var (
	Version   = "dev"
	GitCommit = "unknown"
)

// APIVersion is the version of berth's API (proto/): the major is the
// services' package version (v1), the minor grows as fields and calls are
// added, so a client can tell whether the daemon has what it needs.
const APIVersion = "1.1"

// GoVersion is the Go release the binary was built with.
func GoVersion() string { return runtime.Version() }
