package pubsub

import (
	"context"
	"fmt"
	"math"
)

// TopicInfo describes a topic as its owner sees it.
type TopicInfo struct {
	Topic string
	Owner string // owner's node name
	// Epoch and Seq are the topic's current epoch and last sequence number;
	// both are zero for a topic that has never been published to.
	Epoch uint64
	Seq   uint64
}

// TopicInfo asks the topic's owner for its current sequence position. It is
// meant for operators and dashboards: it costs a round trip to the owner.
// While the topic changes owner it waits, until ctx is done, for the new
// owner to hold the topic's state, so that it never reports a position the
// topic has left behind. Asking makes the owner take the topic over if it
// has not yet (after a failure, or for a topic never used, which it then
// forgets again after IdleTopicTTL).
func (n *Node) TopicInfo(ctx context.Context, topic string) (TopicInfo, error) {
	if err := ValidateTopic(topic); err != nil {
		return TopicInfo{}, err
	}
	if n.isClosed() {
		return TopicInfo{}, ErrClosed
	}
	// A page after every sequence number holds no message, only the
	// position: the same request that a subscriber's gap repair makes, which
	// the owner answers once it is serving the topic.
	p, err := n.fetchHistory(ctx, topic, math.MaxUint64, math.MaxUint64)
	if err != nil {
		return TopicInfo{}, fmt.Errorf("pubsub: topic info of %q: %w", topic, err)
	}
	info := TopicInfo{Topic: topic, Owner: p.owner, Seq: p.seq}
	if p.seq > 0 {
		info.Epoch = p.epoch
	}
	return info, nil
}

// RingShare returns the fraction of the hash ring the named member owns in
// this node's view (0 for a member without RoleTopics or unknown).
func (n *Node) RingShare(name string) float64 { return n.ring.View().Share(name) }
