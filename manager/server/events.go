package server

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/manager/events"
	eventsv1 "github.com/berth-project/berth/proto/services/events/v1"
)

// Events serves events.v1 from a broker.
type Events struct {
	broker *events.Broker
}

var _ eventsv1.EventsService = (*Events)(nil)

// NewEvents returns the event service of broker.
func NewEvents(broker *events.Broker) *Events {
	return &Events{broker: broker}
}

// Subscribe implements eventsv1.EventsService.
func (s *Events) Subscribe(ctx context.Context, req *eventsv1.SubscribeRequest, stream eventsv1.Events_SubscribeServer) error {
	filter, err := events.ParseFilter(req.GetFilters())
	if err != nil {
		return err
	}
	var since, until time.Time
	if req.GetSince() != nil {
		since = req.GetSince().AsTime()
	}
	if req.GetUntil() != nil {
		until = req.GetUntil().AsTime()
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return fmt.Errorf("until (%s) is before since (%s): %w", until.Format(time.RFC3339Nano), since.Format(time.RFC3339Nano), errdefs.ErrInvalidArgument)
	}
	sub := s.broker.Subscribe(filter, since)
	defer sub.Close()

	var untilC <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		untilC = t.C
	}
	for {
		select {
		case e, ok := <-sub.C:
			if !ok {
				return sub.Err()
			}
			if !until.IsZero() && e.Time.After(until) {
				return nil
			}
			if err := stream.Send(EventToProto(e)); err != nil {
				return fmt.Errorf("send an event: %w", err)
			}
		case <-untilC:
			// Events may still be waiting on C (the replay of a past
			// window is all there at once): send those that are due.
			for {
				select {
				case e, ok := <-sub.C:
					if !ok || e.Time.After(until) {
						return nil
					}
					if err := stream.Send(EventToProto(e)); err != nil {
						return fmt.Errorf("send an event: %w", err)
					}
				default:
					return nil
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// EventToProto converts an event for the wire.
func EventToProto(e events.Event) *eventsv1.Event {
	return &eventsv1.Event{
		Time:   timestamppb.New(e.Time),
		Type:   e.Type,
		Action: e.Action,
		Actor:  &eventsv1.Actor{Id: e.Actor.ID, Attributes: e.Actor.Attributes},
	}
}
