package pubsub

import "github.com/ringcast/ringcast/pubsub/topics"

// Ack is the acknowledgement a publisher waits for.
//
// For a durable topic (Config.Store, Config.Durability) AckOwner and
// AckReplicated both return once the store has committed the message: an
// acknowledged message survives the loss of every node. A durable topic's
// messages are delivered only once committed, whatever the Ack.
type Ack uint8

const (
	// AckOwner (the default) returns once the topic's owner has sequenced
	// the message; PublishResult carries its sequence number.
	AckOwner Ack = iota
	// AckNone returns as soon as the message is queued toward the owner
	// (fire and forget): no sequence number, no error from the owner.
	AckNone
	// AckReplicated returns once the owner and its replicas hold the
	// message (Config.ReplicationFactor copies, or as many topic-owning
	// members as the cluster has): an acknowledged message survives the
	// loss of any one node.
	AckReplicated
)

// PublishOption configures one Publish call.
type PublishOption func(*publishOptions)

type publishOptions struct {
	ack Ack
}

// applyPublishOptions is kept apart from Publish, and not inlined into it,
// so that the options only escape to the heap when there are some.
//
//go:noinline
func applyPublishOptions(opts []PublishOption) publishOptions {
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithAck sets the acknowledgement Publish waits for.
func WithAck(a Ack) PublishOption {
	return func(o *publishOptions) { o.ack = a }
}

// SubscribeOption configures one Subscribe or SubscribeFunc call.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	buffer   int
	overflow Overflow
	onClose  func(error)
	since    *Position
	presence *presenceOption // WithPresence
	queue    string          // InQueue
	queueSet bool
}

// Position is a place in a topic's order: the epoch and the sequence
// number of a message.
type Position = topics.Position

// Since makes the subscription start right after the given position:
// messages after it that the owner's history still holds are delivered
// first, then live ones, without gap or duplicate. If the history no
// longer reaches back that far, the topic's epoch is no longer epoch
// (its history was lost), or seq is beyond the last message of the topic,
// Subscribe fails with a *HistoryGoneError (errors.Is(err,
// ErrHistoryGone)) that tells where the topic is now: subscribe again from
// there.
// Epoch 0 accepts the current epoch.
func Since(epoch, seq uint64) SubscribeOption {
	return func(o *subscribeOptions) { o.since = &Position{Epoch: epoch, Seq: seq} }
}

// WithBuffer sets the number of messages this subscription buffers,
// overriding Config.SubscriptionBuffer.
func WithBuffer(n int) SubscribeOption {
	return func(o *subscribeOptions) {
		if n > 0 {
			o.buffer = n
		}
	}
}

// WithOverflow sets what happens when the subscription's buffer is full.
func WithOverflow(p Overflow) SubscribeOption {
	return func(o *subscribeOptions) { o.overflow = p }
}

// OnClose registers fn to be called once, on a worker goroutine, when the
// subscription is ended by the node rather than by Unsubscribe: slow
// consumer (ErrSlowConsumer) or node shutdown (ErrClosed). It is meant for
// SubscribeFunc users that have no Next call to return the error.
func OnClose(fn func(error)) SubscribeOption {
	return func(o *subscribeOptions) { o.onClose = fn }
}
