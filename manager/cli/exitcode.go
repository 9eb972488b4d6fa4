package cli

import (
	"errors"
	"fmt"
)

// Exit codes, docker's.
const (
	ExitOK          = 0
	ExitFailure     = 1   // any failure: the daemon's errors, unreachable daemon, bad input it found
	ExitUsage       = 125 // the command line itself is wrong: a bad flag or argument
	ExitInterrupted = 130 // stopped by SIGINT or SIGTERM (128 + SIGINT)
)

// UsageError is a command line that cannot run: an unknown flag, a bad
// value, the wrong number of arguments.
type UsageError struct {
	Command string // the command path, "berth system df", for the hint
	Err     error
}

func (e *UsageError) Error() string {
	if e.Command == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v\nSee '%s --help'.", e.Err, e.Command)
}

func (e *UsageError) Unwrap() error { return e.Err }

// StatusError ends the command with Code, printing Msg when not empty.
// It is for the exits docker gives a code of their own (a bad --format of
// version and info: 64).
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

// ErrInterrupted wraps the error of a command stopped by a signal.
var ErrInterrupted = errors.New("interrupted")

// ExitCode is the one place that maps what a command returned to berth's
// exit status.
func ExitCode(err error) int {
	var (
		usage  *UsageError
		status *StatusError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &status):
		return status.Code
	case errors.As(err, &usage):
		return ExitUsage
	case errors.Is(err, ErrInterrupted):
		return ExitInterrupted
	}
	return ExitFailure
}
