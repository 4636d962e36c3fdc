package pubsub

import (
	"context"
	"fmt"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/pubsub/store"
)

// Durable topics. A topic that Config.Durability keeps in Config.Store is
// sequenced as any other, by its owner, but the store is the single source
// of truth for its order:
//
//   - Before it sequences anything, the owner claims the topic in the
//     store (store.Store.Claim) and takes the topic's epoch and last
//     committed sequence number from there, whatever the previous owner or
//     a replica remembered: sequences continue with no failover jump and no
//     new epoch, after a failover, a hand-off, or a restart of the whole
//     cluster.
//   - A publish is numbered at once, then committed by the node's
//     committer (commit.go), which writes what every topic has pending in
//     one transaction. Only a committed message is delivered, kept in the
//     in-memory history and acknowledged (AckOwner and AckReplicated both
//     mean committed; a durable topic is not replicated to other members:
//     the store is its copy).
//   - The claim's fencing token rides on every append. When another node
//     has claimed the topic since (a network partition, an old owner slow
//     to see the ring move), the store refuses the append: this owner
//     steps down (it drops its claim and the numbers it had handed out)
//     and sends the refused publishes to the owner the ring names now, or
//     claims the topic again if that is still itself.
//   - When the store cannot be reached or written, publishes to durable
//     topics fail with ErrStoreUnavailable at once for a while (100 ms,
//     doubling up to 5 s while it stays down) and are then tried again;
//     memory-only topics are not affected.
//   - Recent messages are served from the in-memory history, older ones
//     (Since, gap repair) from the store, a page at a time.

// durableTopic is the durable part of an owner's topic state, guarded by
// the topic's lock. ownedTopic.seq is the last committed sequence number;
// next is the last one handed out, committed or not.
type durableTopic struct {
	rule    *Durability
	token   uint64 // the claim's fencing token; 0: no claim held
	next    uint64
	leasing bool      // a claim in the store is under way
	waiting []*pubReq // publishes held until the claim in the store is done

	// claimed is set while the topic's claim waits for the store: claim is
	// the best answer other members gave (nil: none).
	claimed bool
	claim   *wire.State
}

// durableFor returns the durable state for a new owner state of topic, or
// nil for a memory-only topic.
func (n *Node) durableFor(topic string) *durableTopic {
	if n.committer == nil {
		return nil
	}
	r := n.durability.durable(topic)
	if r == nil {
		return nil
	}
	return &durableTopic{rule: r}
}

// storeError wraps err, a store failure, for a caller.
func storeError(topic string, err error) error {
	return fmt.Errorf("%w: topic %q: %w", ErrStoreUnavailable, topic, err)
}

// publishDurableLocked numbers a publish to a durable topic and hands it
// to the committer; its result comes after the commit. ot.mu held, ot
// ready.
func (n *Node) publishDurableLocked(ot *ownedTopic, req *pubReq) (pubResult, bool) {
	d := ot.dur
	if err := n.committer.available(); err != nil {
		return pubResult{err: storeError(ot.name, err)}, true
	}
	if err := n.committer.room(len(req.data)); err != nil {
		return pubResult{err: storeError(ot.name, err)}, true
	}
	if req.origin == n.name && req.done == nil && req.reqID == 0 {
		req.done = make(chan pubResult, 1)
	}
	if d.token == 0 {
		if len(d.waiting) >= maxQueued {
			return pubResult{err: fmt.Errorf("%w: topic %q is being claimed in the store and its queue is full", ErrUnavailable, req.topic)}, true
		}
		d.waiting = append(d.waiting, req.retain())
		n.leaseLocked(ot)
		return pubResult{}, false
	}
	if d.next < ot.seq {
		d.next = ot.seq
	}
	d.next++
	now := n.retention.now()
	ot.active = now
	n.committer.add(&commitRec{ot: ot, token: d.token, seq: d.next, time: now, req: req.retain()})
	return pubResult{}, false
}

// leaseLocked claims the topic in the store, on a goroutine of the node's,
// unless a claim is already under way. ot.mu held.
func (n *Node) leaseLocked(ot *ownedTopic) {
	d := ot.dur
	if d.leasing {
		return
	}
	d.leasing = true
	epoch := ot.epoch
	if d.claim != nil && d.claim.Found {
		epoch = d.claim.Epoch
	}
	if epoch == 0 {
		epoch = newEpoch()
	}
	n.storeWork.Add(1)
	go func() {
		defer n.storeWork.Done()
		ctx, cancel := context.WithTimeout(n.storeCtx, n.cfg.StoreTimeout)
		start := time.Now()
		lease, err := n.cfg.Store.Claim(ctx, ot.name, n.name, epoch)
		n.stats.storeClaim.Since(start)
		cancel()
		if err != nil {
			n.committer.failed(err)
			n.log.Warn("could not claim topic in the store", "topic", ot.name, "err", err, "kind", "store-claim")
		}
		ot.mu.Lock()
		settled := n.applyLeaseLocked(ot, lease, err)
		ot.mu.Unlock()
		if settled {
			n.passOnIfLeaving(ot)
		}
	}()
}

// settleDurableClaimLocked finishes the claim of a durable topic: st, the
// claim's best answer from other members, gives the subscriber nodes and
// recent history; the store gives the epoch and head. The topic stays in
// the claiming state, queueing requests, until the store has answered.
// ot.mu held.
func (n *Node) settleDurableClaimLocked(ot *ownedTopic, st *wire.State) {
	ot.dur.claim, ot.dur.claimed = st, true
	n.leaseLocked(ot)
}

// applyLeaseLocked takes the topic's state from the store's answer to a
// claim: the store's epoch and head win over what this node held (a
// previous owner's hand-off, a claim's answer). The in-memory history is
// kept only when it ends at the store's head in the same epoch; reads
// before it go to the store. Then the requests that waited run. It
// reports whether a claim of the topic was settled. ot.mu held.
func (n *Node) applyLeaseLocked(ot *ownedTopic, lease store.Lease, err error) (settled bool) {
	d := ot.dur
	d.leasing = false
	waiting := d.waiting
	d.waiting = nil
	if d.claimed {
		st := d.claim
		d.claim, d.claimed = nil, false
		if ot.state == stateClaiming && ot.out == nil && ot.in == nil && !ot.gone.Load() {
			n.claimSettled(ot)
			n.adoptLocked(ot, st)
			if err != nil && (st == nil || !st.Found) {
				// The epoch is the store's: until it answers, the topic
				// has none (subscribers take the store's when it comes).
				ot.epoch, ot.seq = 0, 0
			}
			settled = true
		}
	}
	if err == nil && !ot.gone.Load() && ot.state != stateMoved {
		if ot.epoch == lease.Epoch && lease.Seq > ot.seq && ot.state == stateReady {
			// A previous owner committed (ot.seq, lease.Seq] after the
			// state this node took over had left it (a hand-off racing
			// its last commits) or before it failed: the store holds
			// them, the subscriber nodes may not. They get them from
			// the store; a node that has them drops the copies.
			for _, to := range ot.nodes {
				n.replayFromStore(ot.name, to, lease.Epoch, ot.seq, lease.Seq)
			}
		}
		if ot.epoch != lease.Epoch || ot.hist.newest() != lease.Seq {
			if ot.epoch != 0 && ot.epoch != lease.Epoch {
				n.log.Info("topic takes its epoch from the store", "topic", ot.name, "was", ot.epoch, "epoch", lease.Epoch)
			}
			ot.hist = n.retention.newHistory()
		}
		ot.epoch, ot.seq = lease.Epoch, lease.Seq
		d.token, d.next = lease.Token, lease.Seq
		n.stats.storeClaims.Add(1)
	}
	if settled {
		n.replicas.drop(ot.name)
		n.runQueuedLocked(ot)
	}
	for _, req := range waiting {
		if err != nil {
			n.router.replyPublish(req, pubResult{err: storeError(ot.name, err)})
			continue
		}
		n.republishLocked(ot, req)
	}
	return settled
}

// republishLocked runs a publish that waited for ot (its claim in the
// store, or its step-down) once more. ot.mu held.
func (n *Node) republishLocked(ot *ownedTopic, req *pubReq) {
	if ot.gone.Load() || ot.state != stateReady && ot.state != stateClaiming {
		n.rerouteLocked(ot, req, nil)
		return
	}
	if res, ok := n.publishLocked(ot, req); ok {
		n.router.replyPublish(req, res)
	}
}

// stepDownLocked gives up the topic's claim in the store after an append
// was fenced (token is the claim it carried): the numbers handed out
// after the last committed message are void, and the publishes they were
// for, reqs, go to the topic's owner in the ring (this node claims it
// again if it is still that owner). ot.mu held.
func (n *Node) stepDownLocked(ot *ownedTopic, token uint64, reqs []*pubReq, cause error) {
	d := ot.dur
	if d.token == token && token != 0 {
		d.token = 0
		d.next = ot.seq
		n.stats.storeFenced.Add(1)
		n.log.Warn("another node claimed the topic in the store: stepping down", "topic", ot.name, "seq", ot.seq, "kind", "store-fenced")
	}
	for _, req := range reqs {
		n.rerouteLocked(ot, req, cause)
	}
}

// rerouteLocked sends a publish this node could not commit on to where
// the topic is served now: the node it moved to, or the owner in the ring.
// When the ring names this node, the publish runs here again (claiming the
// topic in the store anew) and counts a hop, so that two nodes that each
// keep claiming the topic give up after maxHops with ErrStoreUnavailable.
// ot.mu held.
func (n *Node) rerouteLocked(ot *ownedTopic, req *pubReq, cause error) {
	target := ""
	if ot.state == stateMoved && !ot.gone.Load() {
		target = ot.movedTo
	} else {
		owner, err := n.ringOwner(ot.name)
		if err != nil {
			n.router.replyPublish(req, pubResult{err: err})
			return
		}
		target = owner
	}
	if target != n.name {
		if err := n.router.sendPublish(req, target); err != nil {
			n.router.replyPublish(req, pubResult{err: err})
		}
		return
	}
	if req.hops >= maxHops {
		err := fmt.Errorf("%w: topic %q: claimed in the store by another node each time this one tried", ErrStoreUnavailable, ot.name)
		if cause != nil {
			err = fmt.Errorf("%w: %w", err, cause)
		}
		n.router.replyPublish(req, pubResult{err: err})
		return
	}
	req.hops++
	if !ot.gone.Load() && (ot.state == stateReady || ot.state == stateClaiming) {
		if res, ok := n.publishLocked(ot, req); ok {
			n.router.replyPublish(req, res)
		}
		return
	}
	// ot left the table: the publish claims the topic afresh, outside
	// this lock.
	n.timers.after(0, func() {
		if res, ok := n.publishOwned(nil, req); ok {
			n.router.replyPublish(req, res)
		}
	})
}

// failDurableLocked ends the publishes held for ot's claim in the store
// (the topic leaves this node). ot.mu held.
func (n *Node) failDurableLocked(ot *ownedTopic, err error) {
	if ot.dur == nil {
		return
	}
	waiting := ot.dur.waiting
	ot.dur.waiting = nil
	for _, req := range waiting {
		n.rerouteLocked(ot, req, err)
	}
}

// storeHistory reports whether a history read of (after, …] of a durable
// topic must go to the store: the in-memory history does not reach back
// to after+1. ot.mu held.
func storeHistory(ot *ownedTopic, after uint64) bool {
	if ot.dur == nil || after >= ot.seq {
		return false
	}
	oldest := ot.hist.oldest()
	return oldest == 0 || after+1 < oldest
}

// readStoreHistory reads a page of a durable topic's history from the
// store, on a goroutine of the node's, and passes it to done. p holds the
// topic's epoch and committed head as the caller saw them under its lock.
func (n *Node) readStoreHistory(topic string, p historyPage, after, until uint64, limit int, done func(historyPage, error)) {
	n.storeWork.Add(1)
	go func() {
		defer n.storeWork.Done()
		n.readStoreHistoryNow(topic, p, after, until, limit, done)
	}()
}

// readStoreHistoryNow is readStoreHistory on the caller's goroutine.
func (n *Node) readStoreHistoryNow(topic string, p historyPage, after, until uint64, limit int, done func(historyPage, error)) {
	select {
	case n.storeReads <- struct{}{}:
	case <-n.storeCtx.Done():
		done(historyPage{}, ErrClosed)
		return
	}
	defer func() { <-n.storeReads }()
	if limit <= 0 || limit > maxStoreReadPage {
		limit = maxStoreReadPage
	}
	ctx, cancel := context.WithTimeout(n.storeCtx, n.cfg.StoreTimeout)
	msgs, err := n.cfg.Store.Read(ctx, topic, after, limit, n.historyReplyBytes()-32<<10)
	cancel()
	if err != nil {
		done(historyPage{}, storeError(topic, err))
		return
	}
	n.stats.storeReads.Add(1)
	// What the store retains starts at msgs[0] when retention trimmed the
	// messages after after; otherwise at after+1 or before (not asked).
	p.oldest = p.seq + 1
	if len(msgs) > 0 {
		p.oldest = msgs[0].Seq
	}
	for _, m := range msgs {
		if until != 0 && m.Seq > until || m.Seq > p.seq {
			break
		}
		p.entries = append(p.entries, wire.HistoryEntry{Seq: m.Seq, Time: m.Time, Data: m.Data})
	}
	done(p, nil)
}

// maxStoreReadPage bounds the messages of one history page read from the
// store.
const maxStoreReadPage = 1000

// maxStoreReads bounds the store reads a node runs at once.
const maxStoreReads = 16

// settled reports whether nothing of the topic waits for the store: no
// claim under way, no publish held or uncommitted. A nil d (a memory-only
// topic) is settled. ot.mu held.
func (d *durableTopic) settled(committed uint64) bool {
	return d == nil || !d.leasing && len(d.waiting) == 0 && d.next <= committed
}

// replayFromStore sends a subscriber node that re-registered with a
// durable topic's owner what it missed, (after, until], read from the
// store a page at a time, on a goroutine of the node's. Messages published
// meanwhile reach the node live and wait there for the replay to fill the
// gap before them (or are repaired from the store, see repairGap). The
// replay stops at the first page that cannot be read or sent: the
// subscriber node's gap repair takes over.
func (n *Node) replayFromStore(topic, to string, epoch, after, until uint64) {
	n.storeWork.Add(1)
	go func() {
		defer n.storeWork.Done()
		for after < until {
			ch := make(chan historyPage, 1)
			var rerr error
			n.readStoreHistoryNow(topic, historyPage{epoch: epoch, seq: until}, after, until, 0, func(p historyPage, err error) {
				rerr = err
				ch <- p
			})
			p := <-ch
			if rerr != nil || len(p.entries) == 0 {
				return
			}
			for _, e := range p.entries {
				if to == n.name {
					n.deliver(n.name, topic, epoch, e.Seq, e.Data)
					continue
				}
				if err := n.peers.sendMsg(to, &wire.Deliver{Topic: topic, Epoch: epoch, Seq: e.Seq, Data: e.Data}); err != nil {
					n.stats.sendErrors.Add(1)
					return
				}
			}
			after = p.entries[len(p.entries)-1].Seq
		}
	}()
}
