package events

import (
	"strings"

	"github.com/berth-project/berth/manager/filters"
)

// filterKeys are the keys `berth events --filter` takes: docker's for the
// kinds of objects berth has so far, and one per type for its actor.
var filterKeys = []string{"type", "event", "label", "image", TypeSnapshotter, TypeContainer}

// Filter selects events.
type Filter struct{ args filters.Args }

// ParseFilter parses docker-style event filters (type=, event=, label=,
// image=, snapshotter=, container=). An unknown key is errdefs.ErrInvalidArgument.
func ParseFilter(fs []string) (Filter, error) {
	args, err := filters.Parse(fs, filterKeys...)
	if err != nil {
		return Filter{}, err
	}
	return Filter{args: args}, nil
}

// Match reports whether e passes every filter: the values of one key are
// alternatives, different keys must all match. As in docker, a filter on
// an object (image=, snapshotter=) lets through only events whose actor is
// that object, whatever their type.
func (f Filter) Match(e Event) bool {
	a := f.args
	return a.Match("type", e.Type) &&
		a.Match("event", e.Action) &&
		a.MatchLabels("label", e.Actor.Attributes) &&
		a.MatchFunc("image", func(v string) bool { return imageMatches(e, v) }) &&
		a.MatchFunc(TypeSnapshotter, func(v string) bool { return e.Type == TypeSnapshotter && fuzzy(e.Actor.ID, v) }) &&
		a.MatchFunc(TypeContainer, func(v string) bool {
			return e.Type == TypeContainer && (fuzzy(e.Actor.ID, v) || e.Actor.Attributes["name"] == v)
		})
}

// imageMatches tells whether e is about the image v: an image event whose
// actor is it (by ID, ID prefix or name), or an event whose "image"
// attribute names it (a container's, later).
func imageMatches(e Event, v string) bool {
	if e.Type == TypeImage && (fuzzy(e.Actor.ID, v) || fuzzy(e.Actor.Attributes["name"], v)) {
		return true
	}
	img, ok := e.Actor.Attributes["image"]
	return ok && fuzzy(img, v)
}

// fuzzy is docker's FuzzyMatch: equal, or v a prefix (an ID given short,
// with or without its "sha256:").
func fuzzy(s, v string) bool {
	return s != "" && v != "" && (strings.HasPrefix(s, v) || strings.HasPrefix(strings.TrimPrefix(s, "sha256:"), v))
}
