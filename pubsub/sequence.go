package pubsub

import (
	"fmt"
	"slices"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// publishOwned sequences a publish for which this node is the owner; ot is
// the topic's state if the caller has already looked it up, nil if not. It
// reports false when the result will come later through replyPublish (the
// topic is being claimed, or has moved and the request was forwarded).
func (n *Node) publishOwned(ot *ownedTopic, req *pubReq) (pubResult, bool) {
	if ot == nil {
		ot = n.ownedOrClaim(req.topic)
	}
	ot.mu.Lock()
	for ot.gone.Load() {
		// Dropped from the owner table since the caller looked it up (a
		// tombstone every view has moved past): route the request afresh.
		ot.mu.Unlock()
		owner, err := n.ringOwner(req.topic)
		if err != nil {
			return pubResult{err: err}, true
		}
		if owner != n.name {
			if err := n.router.sendPublish(req, owner); err != nil {
				return pubResult{err: err}, true
			}
			return pubResult{}, false
		}
		ot = n.ownedOrClaim(req.topic)
		ot.mu.Lock()
	}
	defer ot.mu.Unlock()
	return n.publishLocked(ot, req)
}

func (n *Node) publishLocked(ot *ownedTopic, req *pubReq) (pubResult, bool) {
	switch ot.state {
	case stateClaiming:
		if len(ot.queued) >= maxQueued {
			return pubResult{err: fmt.Errorf("%w: topic %q is changing owner and its queue is full", ErrUnavailable, req.topic)}, true
		}
		if req.origin == n.name && req.done == nil && req.reqID == 0 {
			req.done = make(chan pubResult, 1)
		}
		ot.queued = append(ot.queued, ownerOp{pub: req.retain()})
		return pubResult{}, false
	case stateMoved:
		if err := n.router.sendPublish(req, ot.movedTo); err != nil {
			return pubResult{err: err}, true
		}
		return pubResult{}, false
	}
	if ot.dur != nil {
		return n.publishDurableLocked(ot, req)
	}
	ot.seq++
	now := n.retention.now()
	ot.active = now
	res := pubResult{epoch: ot.epoch, seq: ot.seq}
	ot.hist.add(ot.seq, now, req.data)
	peers := n.replicaPeers(ot)
	replied := n.replicate(ot, peers, req, res, now)
	n.fanout(ot, peers, ot.seq, req.data)
	n.stats.sequenced.Add(1)
	return res, replied
}

// fanout sends one message to every subscriber node: one frame, encoded
// once and shared, per remote node; a direct call for this node. Replicas
// among them (replicated) already have it: their copy came as a Deliver.
// ot.mu held, which keeps frames of one topic in sequence order on every
// link.
func (n *Node) fanout(ot *ownedTopic, replicated []string, seq uint64, data []byte) {
	var (
		buf   *[]byte
		frame []byte
	)
	for _, node := range ot.nodes {
		if node == n.name {
			n.deliverOwned(ot, seq, data)
			continue
		}
		if slices.Contains(replicated, node) {
			continue
		}
		if buf == nil {
			buf = getFrameBuf()
			m := wire.Deliver{Topic: ot.name, Epoch: ot.epoch, Seq: seq, Data: data}
			frame = m.AppendFrame(*buf)
		}
		if err := n.peers.sendTo(node, frame); err != nil {
			n.stats.sendErrors.Add(1)
		}
	}
	if buf != nil {
		putFrameBuf(buf, frame)
	}
	n.queueFanout(ot, seq, data)
}

// deliverOwned hands a message to this node's own subscribers through the
// local topic remembered in ot, saving the table lookup on every publish;
// it looks the topic up again when the remembered one is gone. ot.mu held.
func (n *Node) deliverOwned(ot *ownedTopic, seq uint64, data []byte) {
	if ot.local != nil && n.deliverTo(ot.local, n.name, ot.epoch, seq, data) != notTaken {
		return
	}
	ot.local = n.local.get(ot.name)
	if ot.local == nil || n.deliverTo(ot.local, n.name, ot.epoch, seq, data) == notTaken {
		n.stats.unrouted.Add(1)
	}
}
