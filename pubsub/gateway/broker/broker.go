package broker

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
)

// New returns a gateway.Broker that subscribes and publishes through n. It
// also implements gateway.Recoverer, so that gateway clients can resume
// from a topic's history, and gateway.Presencer, so that they see who is
// on the topics n's Config.Presence names.
//
// opts apply to every subscription the gateway makes (for example
// pubsub.WithBuffer to size the per-topic buffer); an OnClose among them is
// replaced by the gateway's closed callback, and a Since by the position a
// client resumes from. The Broker does not own n: shutting n down is the
// caller's job. New panics if n is nil.
func New(n *pubsub.Node, opts ...pubsub.SubscribeOption) gateway.Broker {
	if n == nil {
		panic("broker: New with a nil Node")
	}
	return &nodeBroker{node: n, opts: append([]pubsub.SubscribeOption(nil), opts...)}
}

// The adapter lets clients resume from history and join queue groups.
var (
	_ gateway.Recoverer   = (*nodeBroker)(nil)
	_ gateway.QueueBroker = (*nodeBroker)(nil)
)

type nodeBroker struct {
	node *pubsub.Node
	opts []pubsub.SubscribeOption
}

// Subscribe implements gateway.Broker.
func (b *nodeBroker) Subscribe(ctx context.Context, topic string, deliver func(gateway.Message), closed func(error)) (func() error, error) {
	_, unsubscribe, err := b.subscribe(ctx, topic, deliver, closed, nil)
	return unsubscribe, err
}

// SubscribeSince implements gateway.Recoverer with pubsub.Since: the
// messages after from that the owner's history still holds come first, then
// live ones. When history no longer reaches back to from, the error is the
// node's *pubsub.HistoryGoneError, which is the gateway's
// *gateway.HistoryGoneError too: both name topics.HistoryGoneError.
func (b *nodeBroker) SubscribeSince(ctx context.Context, topic string, from gateway.Position, deliver func(gateway.Message), closed func(error)) (gateway.Recovery, error) {
	sub, unsubscribe, err := b.subscribe(ctx, topic, deliver, closed, pubsub.Since(from.Epoch, from.Seq))
	if err != nil {
		return gateway.Recovery{}, err
	}
	return gateway.Recovery{
		Unsubscribe: unsubscribe,
		Recovered:   sub.Recovered(),
		Start:       sub.Start(),
	}, nil
}

// subscribe makes one node subscription for the gateway, with since (if
// not nil) after the configured options.
func (b *nodeBroker) subscribe(ctx context.Context, topic string, deliver func(gateway.Message), closed func(error), since pubsub.SubscribeOption) (*pubsub.Subscription, func() error, error) {
	s := &subscription{deliver: deliver, closed: closed}
	opts := make([]pubsub.SubscribeOption, 0, len(b.opts)+2)
	opts = append(opts, b.opts...)
	if since != nil {
		opts = append(opts, since)
	}
	opts = append(opts, pubsub.OnClose(s.onClose))
	sub, err := b.node.SubscribeFunc(ctx, topic, s.onMessage, opts...)
	if err != nil {
		return nil, nil, err
	}
	return sub, func() error {
		s.stop()
		return sub.Unsubscribe()
	}, nil
}

// SubscribeQueue implements gateway.QueueBroker with
// pubsub.Node.SubscribeQueueFunc: the channel is one member of the group,
// and on a durable topic a message is acknowledged once deliver has
// returned (the gateway has queued it for the client).
func (b *nodeBroker) SubscribeQueue(ctx context.Context, topic, group string, deliver func(gateway.Message), closed func(error)) (func() error, error) {
	s := &subscription{deliver: deliver, closed: closed}
	opts := make([]pubsub.SubscribeOption, 0, len(b.opts)+1)
	opts = append(opts, b.opts...)
	opts = append(opts, pubsub.OnClose(s.onClose))
	sub, err := b.node.SubscribeQueueFunc(ctx, topic, group, s.onMessage, opts...)
	if err != nil {
		return nil, err
	}
	return func() error {
		s.stop()
		return sub.Unsubscribe()
	}, nil
}

// Publish implements gateway.Broker.
func (b *nodeBroker) Publish(ctx context.Context, topic string, data []byte) (uint64, error) {
	res, err := b.node.Publish(ctx, topic, data)
	if err != nil {
		return 0, err
	}
	return res.Seq, nil
}

// subscription guards the gateway's callbacks: once unsubscribe has started,
// messages still in flight are dropped, and closed is never called after
// unsubscribe has returned.
type subscription struct {
	deliver func(gateway.Message)
	closed  func(error)

	stopped atomic.Bool
	mu      sync.Mutex // held while closed runs, so stop waits for it
	ended   bool       // guarded by mu: closed was called, or stop was
}

func (s *subscription) onMessage(m pubsub.Message) {
	if s.stopped.Load() {
		return
	}
	s.deliver(gateway.Message{Topic: m.Topic, Epoch: m.Epoch, Seq: m.Seq, Data: m.Data})
}

func (s *subscription) onClose(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended = true
	s.closed(err)
}

func (s *subscription) stop() {
	s.stopped.Store(true)
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}
