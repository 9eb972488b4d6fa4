// Package filters reads docker's --filter arguments ("key=value", given
// once per flag) the way docker's API does: values of one key are ORed,
// different keys are ANDed, and an unknown key is an error, not a filter
// that silently matches everything. The image and event services share it.
package filters

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
)

// Args are parsed filters: each key with its values in the order given.
type Args map[string][]string

// Parse parses filters and checks their keys against allowed. Errors are
// errdefs.ErrInvalidArgument, worded as docker words them.
func Parse(filters []string, allowed ...string) (Args, error) {
	args := Args{}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return nil, fmt.Errorf("bad format of filter %q (expected name=value): %w", f, errdefs.ErrInvalidArgument)
		}
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("invalid filter '%s': %w", k, errdefs.ErrInvalidArgument)
		}
		args[k] = append(args[k], strings.TrimSpace(v))
	}
	return args, nil
}

// Has reports whether key was given.
func (a Args) Has(key string) bool { return len(a[key]) > 0 }

// Get returns the values of key.
func (a Args) Get(key string) []string { return a[key] }

// Keys returns the keys given, sorted.
func (a Args) Keys() []string { return slices.Sorted(maps.Keys(a)) }

// Match reports whether value passes the filter key: it does when key was
// not given, or when it equals one of key's values.
func (a Args) Match(key, value string) bool {
	vs, ok := a[key]
	return !ok || slices.Contains(vs, value)
}

// MatchFunc reports whether match is true for one of key's values, or key
// was not given; for filters whose values are patterns or prefixes.
func (a Args) MatchFunc(key string, match func(value string) bool) bool {
	vs, ok := a[key]
	return !ok || slices.ContainsFunc(vs, match)
}

// MatchLabels reports whether labels carry every label filter of key:
// a value "k" asks for the label k, "k=v" for k with the value v. This is
// docker's rule for label=: all of them must match.
func (a Args) MatchLabels(key string, labels map[string]string) bool {
	for _, want := range a[key] {
		k, v, hasValue := strings.Cut(want, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}
