// Package events forwards the shim's task events to containerd over ttrpc
// (containerd.services.events.ttrpc.v1.Events/Forward), one at a time and in
// the order they were published, which is the order containerd requires
// (create, start, exec-added, exec-started, exit, delete).
package events

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/log"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-project/berth/shim/rpc"
	"github.com/berth-project/berth/shim/wire"
)

// Topics, as containerd names them.
const (
	TopicCreate      = "/tasks/create"
	TopicStart       = "/tasks/start"
	TopicExit        = "/tasks/exit"
	TopicDelete      = "/tasks/delete"
	TopicExecAdded   = "/tasks/exec-added"
	TopicExecStarted = "/tasks/exec-started"
	TopicPaused      = "/tasks/paused"
	TopicResumed     = "/tasks/resumed"
	TopicOOM         = "/tasks/oom"
)

// namespaceKey is the ttrpc metadata key containerd reads the namespace from.
const namespaceKey = "containerd-namespace-ttrpc"

// The service and method events are forwarded to.
const (
	service = "containerd.services.events.ttrpc.v1.Events"
	method  = "Forward"
)

// attempts bounds the retries of one event while containerd is unreachable
// (it may be restarting).
const attempts = 10

// Publisher sends events to containerd.
type Publisher struct {
	address   string
	namespace string
	log       *log.Entry

	mu     sync.Mutex
	client *rpc.Client
	queue  chan *apitypes.Envelope
	done   chan struct{}
}

// NewPublisher forwards to the ttrpc socket at address (TTRPC_ADDRESS).
func NewPublisher(address, namespace string, logger *log.Entry) *Publisher {
	p := &Publisher{
		address:   strings.TrimPrefix(address, "unix://"),
		namespace: namespace,
		log:       logger,
		queue:     make(chan *apitypes.Envelope, 256),
		done:      make(chan struct{}),
	}
	go p.loop()
	return p
}

// Publish queues an event, one of containerd's task events
// (containerd/api/events). The Any's type URL is the message's full name,
// without a prefix, which is what containerd 1.x resolves.
func (p *Publisher) Publish(topic string, event any) {
	value, err := wire.Encode(event)
	if err != nil {
		p.log.WithError(err).WithField("topic", topic).Error("encode event")
		return
	}
	p.queue <- &apitypes.Envelope{
		Timestamp: timestamppb.Now(),
		Namespace: p.namespace,
		Topic:     topic,
		Event:     &anypb.Any{TypeUrl: wire.TypeURL(event), Value: value},
	}
}

// Close sends what is queued and stops.
func (p *Publisher) Close() {
	close(p.queue)
	<-p.done
	p.mu.Lock()
	if p.client != nil {
		p.client.Close()
	}
	p.mu.Unlock()
}

func (p *Publisher) loop() {
	defer close(p.done)
	for env := range p.queue {
		var err error
		for i := range attempts {
			if err = p.forward(env); err == nil {
				break
			}
			time.Sleep(time.Duration(i+1) * 50 * time.Millisecond)
		}
		if err != nil {
			p.log.WithError(err).WithField("topic", env.Topic).Error("forward event")
		}
	}
}

func (p *Publisher) forward(env *apitypes.Envelope) error {
	c, err := p.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Call(ctx, service, method, wire.ForwardRequest(env), wire.KeyValue{Key: namespaceKey, Value: p.namespace}); err != nil {
		p.mu.Lock()
		if p.client == c {
			p.client.Close()
			p.client = nil
		}
		p.mu.Unlock()
		return fmt.Errorf("forward %s: %w", env.Topic, err)
	}
	return nil
}

func (p *Publisher) connect() (*rpc.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return p.client, nil
	}
	// DialUnix, not Dial: connecting to a unix socket never waits, and Dial
	// would link in the DNS resolver (about 200 KB of binary, mapped by
	// every shim) for addresses that are always paths.
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: p.address, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", p.address, err)
	}
	p.client = rpc.NewClient(conn)
	return p.client, nil
}
