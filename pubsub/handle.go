package pubsub

import (
	"context"
	"sync/atomic"
)

// Topic is a handle for publishing to one topic, for a publisher that sends
// to the same topic many times. Its name was validated once, and while this
// node owns the topic the handle remembers the owner's state for it, which
// saves the owner-table lookup every Node.Publish makes. Publishing through
// a handle behaves exactly as Node.Publish with its name: the handle follows
// the topic when it changes owner or is forgotten (Config.IdleTopicTTL). A
// Topic is safe for concurrent use and stays usable for the node's
// lifetime. Get one with Node.Topic; the zero value is not usable.
type Topic struct {
	node *Node
	name string
	// owned is the owner state this node held for the topic when last
	// looked up (ready, being claimed, or a tombstone forwarding to the new
	// owner); nil when this node held none. A value that has left the owner
	// table is marked gone and replaced on the next Publish.
	owned atomic.Pointer[ownedTopic]
}

// Topic returns a publishing handle for the named topic, or an error
// wrapping ErrInvalidTopic.
func (n *Node) Topic(name string) (*Topic, error) {
	if err := ValidateTopic(name); err != nil {
		return nil, err
	}
	return &Topic{node: n, name: name}, nil
}

// Name returns the topic's name.
func (t *Topic) Name() string { return t.name }

// Publish publishes data to the topic, as Node.Publish does.
func (t *Topic) Publish(ctx context.Context, data []byte, opts ...PublishOption) (PublishResult, error) {
	return t.node.publish(ctx, t.name, &t.owned, data, opts)
}
