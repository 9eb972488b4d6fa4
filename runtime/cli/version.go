package cli

import (
	"fmt"
	"io"
	"runtime"

	"github.com/opencontainers/runc/libcontainer/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// printVersion prints runc's version block; tools read its first line and
// the "spec:" line.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "%s version %s\nspec: %s\ngo: %s\n", Name, Version, specs.Version, runtime.Version())
	if major, minor, micro := seccomp.Version(); major+minor+micro > 0 {
		fmt.Fprintf(w, "libseccomp: %d.%d.%d\n", major, minor, micro)
	}
}
