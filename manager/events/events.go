// Package events is berthd's event broker: the image service and the
// daemon publish what happens, and `berth events` subscribers receive it,
// filtered as docker filters events. The broker holds the latest events in
// memory so that a subscriber can ask for those since a time (docker's
// --since) and so that subscribing and publishing need no ordering between
// them: a subscriber that asks since a time before it acted sees what its
// action caused.
package events

import (
	"context"
	"time"
)

// Event is something that happened to an object berthd manages: docker's
// events.Message without its deprecated fields.
type Event struct {
	Time   time.Time
	Type   string // the kind of object: one of the Type constants
	Action string // what happened to it
	Actor  Actor
}

// Actor is the object an event is about. Attributes must not be changed
// once the event is published: every subscriber shares the map.
type Actor struct {
	ID         string
	Attributes map[string]string
}

// The topics: a type and its actions. The image service publishes the
// image ones (as docker does), the daemon the others.
const (
	// TypeImage events have the image's name or ID as actor ID, and its
	// name in the "name" attribute.
	TypeImage = "image"
	// TypeSnapshotter events are about the berth-snapshotter that berthd
	// supervises: the actor ID is its socket address; "pid" is its process,
	// and on ActionDie "exitCode" or "signal" says how it ended.
	TypeSnapshotter = "snapshotter"
	// TypeContainer events have the container's ID as actor ID, and its
	// name, image and labels as attributes; on ActionDie "exitCode", on
	// ActionKill "signal".
	TypeContainer = "container"
)

// Container actions, docker's, beside ActionStart and ActionDie (a
// removed container is "destroy", as in docker).
const (
	ActionCreate     = "create"
	ActionStop       = "stop"
	ActionKill       = "kill"
	ActionDestroy    = "destroy"
	ActionAttach     = "attach"
	ActionOOM        = "oom"
	ActionExecCreate = "exec_create"
	ActionExecStart  = "exec_start"
	ActionExecDie    = "exec_die"
)

// Image actions, docker's.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionTag    = "tag"
	ActionUntag  = "untag"
	ActionDelete = "delete"
	ActionImport = "import"
	ActionLoad   = "load"
	ActionSave   = "save"
	ActionPrune  = "prune"
)

// Process actions, as docker names them for containers.
const (
	ActionStart = "start"
	ActionDie   = "die"
)

// Publisher publishes events. The image service and the daemon are given
// one; *Broker is one.
type Publisher interface {
	// Publish sends e to the subscribers whose filters it passes. It never
	// blocks on a subscriber. A zero Time is set to now.
	Publish(ctx context.Context, e Event)
}
