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

	clog "github.com/containerd/log"
	"github.com/sirupsen/logrus"
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
func New(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
	lr := clog.L.Logger
	lr.SetOutput(io.Discard)
	lr.SetLevel(logrusLevel(l))
	lr.ReplaceHooks(logrus.LevelHooks{})
	lr.AddHook(&slogHook{logger: logger})
	return logger, nil
}

func logrusLevel(l slog.Level) logrus.Level {
	switch {
	case l <= slog.LevelDebug:
		return logrus.DebugLevel
	case l <= slog.LevelInfo:
		return logrus.InfoLevel
	case l <= slog.LevelWarn:
		return logrus.WarnLevel
	}
	return logrus.ErrorLevel
}

// slogHook forwards logrus entries to slog.
type slogHook struct{ logger *slog.Logger }

func (h *slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelError
	switch e.Level {
	case logrus.TraceLevel, logrus.DebugLevel:
		level = slog.LevelDebug
	case logrus.InfoLevel:
		level = slog.LevelInfo
	case logrus.WarnLevel:
		level = slog.LevelWarn
	}
	attrs := make([]slog.Attr, 0, len(e.Data))
	for k, v := range e.Data {
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	h.logger.LogAttrs(ctx, level, e.Message, attrs...)
	return nil
}
