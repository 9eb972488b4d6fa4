package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// argsError is docker's message for a wrong number of arguments.
func argsError(cmd *cobra.Command, want string) error {
	return fmt.Errorf("%q requires %s.\nSee '%s --help'.\n\nUsage:  %s\n\n%s", cmd.CommandPath(), want, cmd.CommandPath(), cmd.UseLine(), cmd.Short)
}

// exactArgs accepts exactly n arguments.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("exactly %d %s", n, plural(n)))
	}
}

// minArgs accepts at least n arguments.
func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("at least %d %s", n, plural(n)))
	}
}

// rangeArgs accepts between lo and hi arguments.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= lo && len(args) <= hi {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("at least %d and at most %d arguments", lo, hi))
	}
}

func plural(n int) string {
	if n == 1 {
		return "argument"
	}
	return "arguments"
}

func arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}
