// Package log carries berthd's structured logger (log/slog) in the
// context, so that every function that takes a ctx logs with the
// attributes its callers added (the call, the image, the request), and
// sends what the libraries log through containerd/log (ttrpc, the
// snapshotter client) to the same logger.
package log

import (
	"context"
	"io"
	"log/slog"

	"github.com/berth-project/berth/internal/slogbridge"
)

type loggerKey struct{}

// WithLogger returns a context that carries l.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// L returns the logger ctx carries, or slog's default.
func L(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// With returns a context whose logger has the attributes args added.
func With(ctx context.Context, args ...any) context.Context {
	return WithLogger(ctx, L(ctx).With(args...))
}

// New returns a text logger writing to w at level ("debug", "info",
// "warn" or "error"), and routes containerd/log's logrus output to it so
// the process writes one log in one format.
func New(w io.Writer, level string) (*slog.Logger, error) { return slogbridge.New(w, level) }
