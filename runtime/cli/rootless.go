package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// rootlessCgroups decides whether cgroup permission errors are ignored:
// --rootless true|false wins; auto means "when not running as root".
func rootlessCgroups(g *globals) (bool, error) {
	if v := strings.ToLower(g.rootless); v != "" && v != "auto" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("invalid --rootless %q: use 'true', 'false' or 'auto'", g.rootless)
		}
		return b, nil
	}
	return os.Geteuid() != 0, nil
}
