package cli

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/berth-project/berth/internal/slogbridge"
)

// newLogger returns a structured logger writing to w at level, and sends
// what the libraries log through containerd/log (the store, ttrpc) to it
// as well, so that the process has one log in one format.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	l, err := slogbridge.New(w, level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return l, nil
}
