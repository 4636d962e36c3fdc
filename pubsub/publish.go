package pubsub

import (
	"context"
	"fmt"
	"sync/atomic"
)

// PublishResult is the owner's acknowledgement of a publish.
type PublishResult struct {
	// Epoch and Seq place the message in the topic's order (both zero with
	// AckNone).
	Epoch uint64
	Seq   uint64
}

// Publish sends data to every subscriber of topic, through the topic's
// owner (no network hop when this node is the owner). With the default
// AckOwner it returns once the owner has sequenced the message. Publish
// does not keep data: it may be reused once Publish returns.
func (n *Node) Publish(ctx context.Context, topic string, data []byte, opts ...PublishOption) (PublishResult, error) {
	return n.publish(ctx, topic, nil, data, opts)
}

// publish is Publish. cached, when not nil, is a Topic handle's memory of
// the topic's owner state, read instead of the owner table and refreshed
// from it; the handle validated the topic.
func (n *Node) publish(ctx context.Context, topic string, cached *atomic.Pointer[ownedTopic], data []byte, opts []PublishOption) (PublishResult, error) {
	var o publishOptions
	if len(opts) > 0 {
		o = applyPublishOptions(opts)
	}
	if len(data) > n.cfg.MaxPayload {
		return PublishResult{}, fmt.Errorf("%w: %d bytes, at most %d", ErrPayloadTooLarge, len(data), n.cfg.MaxPayload)
	}
	if n.isClosed() {
		return PublishResult{}, ErrClosed
	}
	// A topic in the owner table is valid: nothing enters it unchecked.
	var ot *ownedTopic
	if cached != nil {
		if old := cached.Load(); old != nil && !old.gone.Load() {
			ot = old
		} else if ot = n.owned.get(topic); ot != old {
			cached.Store(ot)
		}
	} else {
		ot = n.owned.get(topic)
	}
	owner := n.name
	if ot == nil {
		if cached == nil {
			if err := ValidateTopic(topic); err != nil {
				return PublishResult{}, err
			}
		}
		var err error
		if owner, err = n.ringOwner(topic); err != nil {
			return PublishResult{}, err
		}
	}
	n.stats.published.Add(1)
	req := pubReq{topic: topic, data: data, origin: n.name, ack: o.ack}
	if owner == n.name {
		req.data = append([]byte(nil), data...)
		res, ok := n.publishOwned(ot, &req)
		if ok {
			return n.outcome(o.ack, PublishResult{Epoch: res.epoch, Seq: res.seq}, res.err)
		}
	} else {
		// data is encoded into the frame before sendPublish returns.
		if err := n.router.sendPublish(&req, owner); err != nil {
			return n.outcome(o.ack, PublishResult{}, err)
		}
	}
	if o.ack == AckNone || req.done == nil {
		return n.outcome(o.ack, PublishResult{}, nil)
	}
	select {
	case res := <-req.done:
		return n.outcome(o.ack, PublishResult{Epoch: res.epoch, Seq: res.seq}, res.err)
	case <-ctx.Done():
		if req.reqID != 0 {
			n.pending.cancel(req.reqID)
		}
		return n.outcome(o.ack, PublishResult{}, ctx.Err())
	case <-n.done:
		return n.outcome(o.ack, PublishResult{}, ErrClosed)
	}
}
