package pubsub

import (
	"context"
	"fmt"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
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
func (n *Node) TopicInfo(ctx context.Context, topic string) (TopicInfo, error) {
	if err := ValidateTopic(topic); err != nil {
		return TopicInfo{}, err
	}
	if n.isClosed() {
		return TopicInfo{}, ErrClosed
	}
	if ot := n.lockOwned(topic); ot != nil {
		info := TopicInfo{Topic: topic, Owner: n.name}
		switch ot.state {
		case stateReady:
			info.Epoch, info.Seq = ot.epoch, ot.seq
		case stateMoved:
			info.Owner = ot.movedTo
		}
		ot.mu.Unlock()
		return info, nil
	}
	owner, err := n.ringOwner(topic)
	if err != nil {
		return TopicInfo{}, err
	}
	info := TopicInfo{Topic: topic, Owner: owner}
	if owner == n.name {
		return info, nil // owned here, and nothing published yet (or forgotten)
	}
	done := make(chan TopicInfo, 1)
	fail := make(chan error, 1)
	id := n.pending.add(owner, n.cfg.RequestTimeout, func(_ string, msg wire.Message, err error) {
		if st, ok := msg.(*wire.State); ok {
			info.Epoch, info.Seq = st.Epoch, st.Seq
			done <- info
			return
		}
		fail <- err
	})
	if err := n.peers.sendMsg(owner, &wire.StateRequest{ReqID: id, Topic: topic, Peek: true}); err != nil {
		n.pending.cancel(id)
		return TopicInfo{}, err
	}
	select {
	case info := <-done:
		return info, nil
	case err := <-fail:
		return TopicInfo{}, fmt.Errorf("pubsub: topic info from %s: %w", owner, err)
	case <-ctx.Done():
		n.pending.cancel(id)
		return TopicInfo{}, ctx.Err()
	case <-n.done:
		return TopicInfo{}, ErrClosed
	}
}

// RingShare returns the fraction of the hash ring the named member owns in
// this node's view (0 for a member without RoleTopics or unknown).
func (n *Node) RingShare(name string) float64 { return n.ring.View().Share(name) }
