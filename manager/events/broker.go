package events

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// Held is how many of the latest events a broker keeps for subscribers
// that ask for past ones; docker keeps as many.
const Held = 256

// subscriberBuffer is how many events a subscriber may fall behind before
// it is dropped: publishing never waits for a slow reader.
const subscriberBuffer = 256

var (
	// ErrClosed ends the subscriptions of a broker that closes: the daemon
	// is shutting down.
	ErrClosed = fmt.Errorf("berthd is shutting down: %w", errdefs.ErrUnavailable)
	// ErrSlow ends a subscription that fell too far behind.
	ErrSlow = fmt.Errorf("event subscriber too slow: events were lost: %w", errdefs.ErrResourceExhausted)
)

// Broker fans published events out to subscribers. The zero value is not
// usable: use NewBroker.
type Broker struct {
	mu     sync.Mutex
	held   []Event // a ring of the latest Held events; next is the oldest once full
	next   int
	subs   map[*Subscription]struct{}
	closed bool
	now    func() time.Time
}

// NewBroker returns an empty broker.
func NewBroker() *Broker {
	return &Broker{subs: map[*Subscription]struct{}{}, now: time.Now}
}

var _ Publisher = (*Broker)(nil)

// Publish implements Publisher.
func (b *Broker) Publish(_ context.Context, e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if e.Time.IsZero() {
		e.Time = b.now()
	}
	if len(b.held) < Held {
		b.held = append(b.held, e)
	} else {
		b.held[b.next] = e
		b.next = (b.next + 1) % Held
	}
	for s := range b.subs {
		if !s.filter.Match(e) {
			continue
		}
		select {
		case s.c <- e:
		default:
			b.endLocked(s, ErrSlow)
		}
	}
}

// Subscription receives the events that pass its filter on C, until C is
// closed; Err then says why.
type Subscription struct {
	C      <-chan Event
	c      chan Event
	b      *Broker
	filter Filter
	err    error // set before c is closed
}

// Subscribe returns a subscription to the events that pass filter. When
// since is not zero, the held events from since on that pass the filter
// are on C first, in order, before any new one: replay and registration
// happen under one lock, so no event falls between them.
func (b *Broker) Subscribe(filter Filter, since time.Time) *Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	var replay []Event
	if !since.IsZero() {
		for i := range len(b.held) {
			e := b.held[(b.next+i)%len(b.held)]
			if !e.Time.Before(since) && filter.Match(e) {
				replay = append(replay, e)
			}
		}
	}
	c := make(chan Event, subscriberBuffer+len(replay))
	for _, e := range replay {
		c <- e
	}
	s := &Subscription{C: c, c: c, b: b, filter: filter}
	if b.closed {
		s.err = ErrClosed
		close(c)
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

// Err says why C was closed: nil after Close, ErrSlow or ErrClosed.
// It is only meaningful once C is closed.
func (s *Subscription) Err() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.err
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.endLocked(s, nil)
}

func (b *Broker) endLocked(s *Subscription, err error) {
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	s.err = err
	close(s.c)
}

// Close ends every subscription with ErrClosed; later publishes are
// dropped and later subscriptions end at once.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.endLocked(s, ErrClosed)
	}
}
