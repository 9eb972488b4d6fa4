package events

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func mustFilter(t *testing.T, fs ...string) Filter {
	t.Helper()
	f, err := ParseFilter(fs)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func recv(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case e, ok := <-s.C:
		if !ok {
			t.Fatalf("subscription ended: %v", s.Err())
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

func noEvent(t *testing.T, s *Subscription) {
	t.Helper()
	select {
	case e, ok := <-s.C:
		if ok {
			t.Fatalf("unexpected event %+v", e)
		}
	default:
	}
}

func TestPublishSubscribe(t *testing.T) {
	ctx := context.Background()
	b := NewBroker()
	all := b.Subscribe(Filter{}, time.Time{})
	images := b.Subscribe(mustFilter(t, "type=image"), time.Time{})
	pulls := b.Subscribe(mustFilter(t, "type=image", "event=pull", "event=push"), time.Time{})

	b.Publish(ctx, Event{Type: TypeImage, Action: ActionTag, Actor: Actor{ID: "busybox:latest"}})
	b.Publish(ctx, Event{Type: TypeImage, Action: ActionPull, Actor: Actor{ID: "alpine:3"}})
	b.Publish(ctx, Event{Type: TypeSnapshotter, Action: ActionDie, Actor: Actor{ID: "/run/s.sock"}})

	for _, want := range []string{"tag", "pull", "die"} {
		if e := recv(t, all); e.Action != want {
			t.Errorf("all: got %s, want %s", e.Action, want)
		} else if e.Time.IsZero() {
			t.Error("publish did not set the time")
		}
	}
	for _, want := range []string{"tag", "pull"} {
		if e := recv(t, images); e.Action != want {
			t.Errorf("type=image: got %s, want %s", e.Action, want)
		}
	}
	if e := recv(t, pulls); e.Action != "pull" {
		t.Errorf("event=pull|push: got %s", e.Action)
	}
	noEvent(t, images)
	noEvent(t, pulls)

	pulls.Close()
	if _, ok := <-pulls.C; ok {
		t.Error("C open after Close")
	}
	if err := pulls.Err(); err != nil {
		t.Errorf("Err after Close = %v, want nil", err)
	}
	pulls.Close() // twice is fine
}

func TestSinceReplaysHeldEventsInOrder(t *testing.T) {
	ctx := context.Background()
	b := NewBroker()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range Held + 10 {
		b.Publish(ctx, Event{Time: base.Add(time.Duration(i) * time.Second), Type: TypeImage, Action: fmt.Sprint(i)})
	}
	// The ring holds the latest Held: 10..Held+9. Ask from Held+5 on.
	s := b.Subscribe(Filter{}, base.Add(time.Duration(Held+5)*time.Second))
	for i := Held + 5; i < Held+10; i++ {
		if e := recv(t, s); e.Action != fmt.Sprint(i) {
			t.Fatalf("replay: got %s, want %d", e.Action, i)
		}
	}
	noEvent(t, s)
	// Live events follow the replay.
	b.Publish(ctx, Event{Type: TypeImage, Action: "live"})
	if e := recv(t, s); e.Action != "live" {
		t.Fatalf("got %s after the replay, want live", e.Action)
	}

	// A since before everything held gets all Held, oldest first: 11
	// now that "live" pushed 10 out.
	s2 := b.Subscribe(Filter{}, base)
	if e := recv(t, s2); e.Action != "11" {
		t.Fatalf("oldest held = %s, want 11", e.Action)
	}
	for range Held - 2 {
		recv(t, s2)
	}
	if e := recv(t, s2); e.Action != "live" {
		t.Fatalf("newest held = %s, want live", e.Action)
	}
	// Without since, nothing is replayed.
	s3 := b.Subscribe(Filter{}, time.Time{})
	noEvent(t, s3)
}

func TestSlowSubscriberIsDropped(t *testing.T) {
	ctx := context.Background()
	b := NewBroker()
	slow := b.Subscribe(Filter{}, time.Time{})
	fast := b.Subscribe(Filter{}, time.Time{})
	// Fill both buffers to the brim: nobody is dropped yet.
	for range subscriberBuffer {
		b.Publish(ctx, Event{Type: TypeImage, Action: ActionPull})
	}
	// The fast reader catches up; the slow one does not.
	for range subscriberBuffer {
		recv(t, fast)
	}
	b.Publish(ctx, Event{Type: TypeImage, Action: ActionTag})
	n := 0
	for range slow.C {
		n++
	}
	if n != subscriberBuffer {
		t.Errorf("slow subscriber got %d events before being dropped, want %d", n, subscriberBuffer)
	}
	if err := slow.Err(); !errors.Is(err, ErrSlow) || !errdefs.IsResourceExhausted(err) {
		t.Errorf("slow.Err() = %v, want ErrSlow (resource exhausted)", err)
	}
	if e := recv(t, fast); e.Action != ActionTag {
		t.Errorf("the reader that kept up got %s, want %s", e.Action, ActionTag)
	}
	b.Close()
	if _, ok := <-fast.C; ok {
		t.Error("after Close, the subscription that kept up is still open")
	}
	if err := fast.Err(); !errors.Is(err, ErrClosed) || !errdefs.IsUnavailable(err) {
		t.Errorf("after Close, Err() = %v, want ErrClosed (unavailable)", err)
	}
}

func TestSubscribeAfterClose(t *testing.T) {
	b := NewBroker()
	b.Publish(context.Background(), Event{Type: TypeImage, Action: ActionTag})
	b.Close()
	b.Publish(context.Background(), Event{Type: TypeImage, Action: ActionPull}) // dropped
	s := b.Subscribe(Filter{}, time.Unix(1, 0))
	if e := recv(t, s); e.Action != ActionTag {
		t.Fatalf("replay after close: %s", e.Action)
	}
	if _, ok := <-s.C; ok {
		t.Fatal("subscription to a closed broker stays open")
	}
	if !errors.Is(s.Err(), ErrClosed) {
		t.Fatalf("Err = %v", s.Err())
	}
}

func TestFilter(t *testing.T) {
	img := Event{Type: TypeImage, Action: ActionPull, Actor: Actor{ID: "sha256:0123456789ab", Attributes: map[string]string{"name": "docker.io/library/busybox:latest", "maintainer": "me"}}}
	snap := Event{Type: TypeSnapshotter, Action: ActionDie, Actor: Actor{ID: "/run/berth/snapshotter.sock", Attributes: map[string]string{"pid": "12"}}}
	for _, tc := range []struct {
		filters   []string
		img, snap bool
	}{
		{nil, true, true},
		{[]string{"type=image"}, true, false},
		{[]string{"type=image", "type=snapshotter"}, true, true},
		{[]string{"type=image", "event=die"}, false, false},
		{[]string{"event=die"}, false, true},
		{[]string{"image=docker.io/library/busybox"}, true, false},
		{[]string{"image=0123"}, true, false},
		{[]string{"image=sha256:0123"}, true, false},
		{[]string{"image=alpine"}, false, false},
		{[]string{"label=maintainer"}, true, false},
		{[]string{"label=maintainer=me"}, true, false},
		{[]string{"label=maintainer=you"}, false, false},
		{[]string{"label=maintainer", "label=other"}, false, false},
		{[]string{"snapshotter=/run/berth/snapshotter.sock"}, false, true},
		{[]string{"snapshotter=/elsewhere"}, false, false},
		{[]string{"container=web"}, false, false},
	} {
		f := mustFilter(t, tc.filters...)
		if got := f.Match(img); got != tc.img {
			t.Errorf("%q on the image event = %t, want %t", tc.filters, got, tc.img)
		}
		if got := f.Match(snap); got != tc.snap {
			t.Errorf("%q on the snapshotter event = %t, want %t", tc.filters, got, tc.snap)
		}
	}
	ctr := Event{Type: TypeContainer, Action: ActionDie, Actor: Actor{ID: "4f2a9c", Attributes: map[string]string{"name": "web", "image": "busybox"}}}
	for _, tc := range []struct {
		filters []string
		want    bool
	}{
		{[]string{"container=web"}, true},
		{[]string{"container=4f2a"}, true},
		{[]string{"container=we"}, false},
		{[]string{"image=busybox", "type=container"}, true},
		{[]string{"type=image"}, false},
	} {
		if got := mustFilter(t, tc.filters...).Match(ctr); got != tc.want {
			t.Errorf("%q on the container event = %t, want %t", tc.filters, got, tc.want)
		}
	}
	for _, bad := range [][]string{{"network=x"}, {"type"}, {"=x"}} {
		if _, err := ParseFilter(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseFilter(%q) = %v, want invalid argument", bad, err)
		}
	}
}
