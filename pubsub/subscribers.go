package pubsub

import (
	"fmt"
	"slices"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// ownerSubscribe registers req.origin as a subscriber node of the topic
// when this node holds its state or owns it in the ring (claiming it then),
// and sends the request on to the ring's owner otherwise: for a subscribe
// from a peer, and when the state the caller saw has gone since (a
// tombstone dropped, an idle topic forgotten).
func (n *Node) ownerSubscribe(req *subReq) {
	ot := n.lockOwned(req.topic)
	if ot == nil {
		owner, err := n.ringOwner(req.topic)
		if err != nil {
			n.router.replySubscribe(req, 0, 0, err)
			return
		}
		if owner != n.name {
			if err := n.router.sendSubscribe(req, owner); err != nil {
				n.router.replySubscribe(req, 0, 0, err)
			}
			return
		}
		ot = n.lockOwnedOrClaim(req.topic)
	}
	defer ot.mu.Unlock()
	n.subscribeLocked(ot, req)
}

func (n *Node) subscribeLocked(ot *ownedTopic, req *subReq) {
	switch ot.state {
	case stateClaiming:
		if len(ot.queued) >= maxQueued {
			n.router.replySubscribe(req, 0, 0, fmt.Errorf("%w: topic %q is changing owner and its queue is full", ErrUnavailable, req.topic))
			return
		}
		ot.queued = append(ot.queued, ownerOp{sub: req})
		return
	case stateMoved:
		if err := n.router.sendSubscribe(req, ot.movedTo); err != nil {
			n.router.replySubscribe(req, 0, 0, err)
		}
		return
	}
	ot.active = n.retention.now()
	if !slices.Contains(ot.nodes, req.origin) {
		ot.nodes = append(slices.Clip(ot.nodes), req.origin)
		n.syncReplicaNodes(ot, n.replicaPeers(ot))
	}
	if !req.hasSince || req.since >= ot.seq {
		n.router.replySubscribe(req, ot.epoch, ot.seq, nil)
		return
	}
	if storeHistory(ot, req.since) {
		// A durable topic holds every message in the store: nothing is
		// skipped, the replay reads what memory no longer has from there.
		n.router.replySubscribe(req, ot.epoch, req.since, nil)
		n.replayFromStore(ot.name, req.origin, ot.epoch, req.since, ot.seq)
		return
	}
	// The subscriber node missed messages while it moved between owners:
	// send it what history holds, in order, before anything newer. The
	// answer's sequence number is where that replay starts from: nothing
	// before it can be had (evicted, or numbers skipped by a failover), so
	// the subscriber moves past it at once instead of waiting for it.
	entries := ot.hist.since(req.since)
	resume := ot.seq
	if len(entries) > 0 {
		resume = entries[0].Seq - 1
	}
	n.router.replySubscribe(req, ot.epoch, max(resume, req.since), nil)
	for _, e := range entries {
		if req.origin == n.name {
			n.deliver(n.name, ot.name, ot.epoch, e.Seq, e.Data)
			continue
		}
		m := &wire.Deliver{Topic: ot.name, Epoch: ot.epoch, Seq: e.Seq, Data: e.Data}
		if err := n.peers.sendMsg(req.origin, m); err != nil {
			n.stats.sendErrors.Add(1)
			return
		}
	}
}

// ownerUnsubscribe removes origin from the topic's subscriber nodes. When
// the state it was sent for has gone since, the request goes where the
// ring says.
func (n *Node) ownerUnsubscribe(topic, origin string, hops uint8) {
	ot := n.lockOwned(topic)
	if ot == nil {
		owner, err := n.ringOwner(topic)
		switch {
		case err != nil:
		case owner != n.name:
			if hops < maxHops {
				_ = n.peers.sendMsg(owner, &wire.Unsubscribe{Topic: topic, Origin: origin, Hops: hops + 1})
			}
		default:
			// Owned here but not claimed yet (after a failover): the claim
			// will start from this node's replica copy, which must not list
			// the node any more. A claim that started meanwhile, from the
			// copy as it was, queues the request instead.
			n.replicas.removeNode(topic, origin)
			if ot := n.lockOwned(topic); ot != nil {
				n.unsubscribeLocked(ot, origin, hops)
				ot.mu.Unlock()
			}
		}
		return
	}
	defer ot.mu.Unlock()
	n.unsubscribeLocked(ot, origin, hops)
}

func (n *Node) unsubscribeLocked(ot *ownedTopic, origin string, hops uint8) {
	switch ot.state {
	case stateClaiming:
		if len(ot.queued) < maxQueued {
			ot.queued = append(ot.queued, ownerOp{unsub: origin})
		}
	case stateMoved:
		if hops < maxHops {
			_ = n.peers.sendMsg(ot.movedTo, &wire.Unsubscribe{Topic: ot.name, Origin: origin, Hops: hops + 1})
		}
	default:
		if i := slices.Index(ot.nodes, origin); i >= 0 {
			ot.nodes = slices.Delete(slices.Clone(ot.nodes), i, i+1)
			n.syncReplicaNodes(ot, n.replicaPeers(ot))
		}
	}
}
