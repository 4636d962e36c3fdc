package pubsub

import (
	"slices"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/ring"
)

// Claims. A node that finds itself the owner of a topic it holds no state
// for (it joined, or the owner failed, or a publish reached it first)
// claims the topic before it serves it: the topic's state sits in the
// claiming state, queueing requests, while the node asks the members that
// may hold the topic (the previous owner, the replicas, members draining
// before they leave) and finishes with the best answer. A claim starts only
// where the caller has decided this node owns the topic, through the
// functions named ...OrClaim; lookups never start one.
//
// After a failure the best answer is a replica's copy. A message the failed
// owner sequenced but had not yet replicated may already have reached some
// subscribers. So that the new owner never reuses its sequence number, a
// topic rebuilt from replicas continues failoverSeqGap numbers further on;
// subscribers learn from the new owner's history that the skipped numbers
// hold nothing and move past them at once.
const failoverSeqGap = 1 << 20

// drainedFor is how long a member that stopped owning topics is still asked
// in claims: past it, it has handed everything off or is gone.
const drainedFor = time.Minute

// ownedOrClaim returns the topic's owner state for a caller that has
// decided this node owns the topic: when the node holds no state for it,
// the state is created in the claiming state and its claim starts.
func (n *Node) ownedOrClaim(topic string) *ownedTopic {
	ot, created := n.owned.acquire(topic)
	if created {
		n.startClaim(ot)
	}
	return ot
}

// lockOwnedOrClaim is ownedOrClaim, locked (see relock).
func (n *Node) lockOwnedOrClaim(topic string) *ownedTopic {
	find := func() *ownedTopic { return n.ownedOrClaim(topic) }
	return relock(find(), find)
}

// startClaim gathers the topic's state before this node serves it: from
// the member that would own the topic without this node (the previous
// owner, after a join), from the topic's replicas, and from this node's own
// replica copy. An owner's state wins; failing that, the most advanced
// replica copy (the owner failed). With nobody to ask, or nobody holding
// anything, the topic starts afresh.
func (n *Node) startClaim(ot *ownedTopic) {
	ot.claimStart.Store(monotime())
	n.startClaimTry(ot, 1)
}

// claimSettled records the duration of ot's claim, once, as it settles.
func (n *Node) claimSettled(ot *ownedTopic) {
	if start := ot.claimStart.Swap(0); start != 0 {
		n.stats.claimDuration.Record(time.Duration(monotime() - start))
	}
}

// monoBase is the origin of monotime.
var monoBase = time.Now()

// monotime returns a reading of the monotonic clock in nanoseconds, never 0.
func monotime() int64 { return int64(time.Since(monoBase)) + 1 }

// claimJoinWait is how often a claim checks whether a join has finished.
const claimJoinWait = 10 * time.Millisecond

// maxClaimTries bounds how often a claim that found nothing starts over
// because the view changed while it ran.
const maxClaimTries = 3

func (n *Node) startClaimTry(ot *ownedTopic, try int) {
	if n.joining.Load() > 0 && !n.isClosed() {
		// The cluster already routes to this node, but its own view does
		// not show the cluster yet: whom to ask is not known. Wait for the
		// join to finish (it is bounded by the gossip TCP timeout).
		n.timers.after(claimJoinWait, func() { n.startClaimTry(ot, try) })
		return
	}
	// Decide whom to ask on the newest membership gossip has reported: a
	// node that has just joined learns the cluster before its view shows it.
	view := n.ring.Refresh()
	c := &claim{ot: ot, try: try, view: view}
	if rt := n.replicas.get(ot.name); rt != nil {
		c.offer(n.replicas.state(rt, ot.name))
	}
	var targets []string
	if cand, err := n.previousOwner(ot.name); err == nil && cand != n.name {
		targets = append(targets, cand)
	}
	for _, p := range replicaNames(n.view(), ot.name, n.cfg.ReplicationFactor, n.name) {
		if !slices.Contains(targets, p) {
			targets = append(targets, p)
		}
	}
	// A member draining before it leaves is off the ring but may still hold
	// the topic: ask it too, or its hand-off would be overtaken by a claim.
	n.drained.Range(func(name, since any) bool {
		if p := name.(string); p != n.name && !slices.Contains(targets, p) && time.Since(since.(time.Time)) < drainedFor {
			targets = append(targets, p)
		}
		return true
	})
	c.waiting = len(targets)
	if c.waiting == 0 {
		n.finishClaim(c, c.best)
		return
	}
	answer := func(st *wire.State) {
		if best, ready := c.reply(st); ready {
			n.finishClaim(c, best)
		}
	}
	for _, t := range targets {
		id := n.pending.add(t, n.cfg.ClaimTimeout, func(from string, msg wire.Message, _ error) {
			st, _ := msg.(*wire.State)
			if st == nil || st.Xfer == 0 {
				answer(st)
				return
			}
			// A state in parts: the claim waits for the last part (each
			// must come within the transfer's idle time), unless it has
			// finished meanwhile.
			n.receiveState(from, st, c.open, func(st *wire.State, _ error) { answer(st) })
		})
		if err := n.peers.sendMsg(t, &wire.StateRequest{ReqID: id, Topic: ot.name}); err != nil {
			n.pending.cancel(id)
			answer(nil)
		}
	}
}

// claim collects the answers to one topic's claim.
type claim struct {
	ot      *ownedTopic
	try     int
	view    *ring.View // the view the claim chose its targets in
	mu      sync.Mutex
	waiting int
	best    *wire.State
	over    bool
}

// offer considers one answer: an owner's state beats any replica copy; among
// equals the later state wins (see laterState).
func (c *claim) offer(st *wire.State) {
	if st == nil || !st.Found {
		return
	}
	switch {
	case c.best == nil:
	case c.best.Replica && !st.Replica:
	case c.best.Replica == st.Replica && laterState(st.Epoch, st.Seq, c.best.Epoch, c.best.Seq):
	default:
		return
	}
	c.best = st
}

// open reports whether the claim still waits for answers.
func (c *claim) open() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.over
}

// reply takes one target's answer (nil: none) and reports, once, that the
// claim may finish with best: every target answered, or an owner did.
func (c *claim) reply(st *wire.State) (best *wire.State, ready bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offer(st)
	c.waiting--
	// An owner's state is authoritative: no need to wait for the rest.
	ready = !c.over && (c.waiting == 0 || c.best != nil && !c.best.Replica)
	if ready {
		c.over = true
	}
	return c.best, ready
}

// finishClaim makes the claimed topic ready with the state gathered and
// runs the requests queued meanwhile, in arrival order.
func (n *Node) finishClaim(c *claim, st *wire.State) {
	ot := c.ot
	if st == nil && c.try < maxClaimTries && n.ring.Refresh() != c.view {
		// Nobody had the topic, but membership changed meanwhile: the
		// previous owner may be among the members this claim did not ask.
		n.startClaimTry(ot, c.try+1)
		return
	}
	ot.mu.Lock()
	if ot.state != stateClaiming || ot.out != nil {
		ot.mu.Unlock()
		return
	}
	if in := ot.in; in != nil {
		// The previous owner is handing the topic over in parts: its
		// state wins, this answer serves if the hand-off fails.
		in.claimed, in.fallback = true, st
		ot.mu.Unlock()
		return
	}
	n.settleClaimLocked(ot, st)
	ot.mu.Unlock()
	n.passOnIfLeaving(ot)
}

// settleClaimLocked makes a claimed topic ready with the state its claim
// gathered and runs the requests queued meanwhile. ot.mu held.
func (n *Node) settleClaimLocked(ot *ownedTopic, st *wire.State) {
	if ot.dur != nil {
		n.settleDurableClaimLocked(ot, st)
		return
	}
	n.claimSettled(ot)
	n.adoptLocked(ot, st)
	if st != nil && st.Replica {
		ot.seq += failoverSeqGap
		n.stats.failovers.Add(1)
		n.log.Info("topic rebuilt from replicas", "topic", ot.name, "epoch", ot.epoch, "replicated", st.Seq, "next", ot.seq+1)
	}
	n.replicas.drop(ot.name)
	n.runQueuedLocked(ot)
}

// passOnIfLeaving hands a topic that became ready here on to its owner
// when this node drains.
func (n *Node) passOnIfLeaving(ot *ownedTopic) {
	if n.leaving.Load() {
		// The claim finished while this node drains: pass the topic on.
		if m, err := n.view().Owner(ot.name); err == nil && m.Name != n.name {
			n.handoff(ot, m.Name, nil)
		}
	}
}

// adoptLocked merges a topic state received from another node and makes
// the topic ready. Sequence numbers never go backwards within an epoch, and
// a topic never returns to an older epoch once it has a message in a newer
// one (two sides of a healed partition merge into the later state).
func (n *Node) adoptLocked(ot *ownedTopic, st *wire.State) {
	found := st != nil && st.Found
	// A topic whose state is on its way elsewhere still holds it: it is
	// merged as a ready one, and the transfer ends.
	ready := ot.state == stateReady || ot.out != nil
	if ot.out != nil {
		ot.out.cancelLocked()
	}
	switch {
	case !found && ready:
	case !found:
		ot.epoch, ot.seq, ot.nodes = newEpoch(), 0, nil
		ot.hist = n.retention.newHistory()
		n.log.Debug("topic starts afresh", "topic", ot.name, "epoch", ot.epoch)
	case !ready || laterState(st.Epoch, st.Seq, ot.epoch, ot.seq) || st.Epoch == ot.epoch && st.Seq == ot.seq:
		nodes := ot.nodes
		if !ready {
			nodes = nil
		}
		cur := uint64(0)
		if ready && ot.epoch == st.Epoch {
			cur = ot.seq
		}
		ot.epoch, ot.seq = st.Epoch, max(st.Seq, cur)
		ot.hist.replace(st.History)
		ot.nodes = mergeNodes(nodes, st.Nodes)
		n.log.Debug("topic state adopted", "topic", ot.name, "epoch", ot.epoch, "seq", ot.seq, "nodes", len(ot.nodes))
	default:
		ot.nodes = mergeNodes(ot.nodes, st.Nodes)
	}
	ot.state, ot.movedTo = stateReady, ""
	ot.active = n.retention.now()
}

func mergeNodes(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func (n *Node) runQueuedLocked(ot *ownedTopic) {
	queued := ot.queued
	ot.queued = nil
	for _, op := range queued {
		switch {
		case op.pub != nil:
			if res, ok := n.publishLocked(ot, op.pub); ok {
				n.router.replyPublish(op.pub, res)
			}
		case op.sub != nil:
			n.subscribeLocked(ot, op.sub)
		case op.hist != nil:
			n.replyHistoryLocked(ot, op.hist.from, &op.hist.m)
		case op.state != nil:
			if !n.answerStateLocked(ot, op.state.from, &op.state.m) {
				n.answerFromReplica(op.state.from, &op.state.m)
			}
		default:
			n.unsubscribeLocked(ot, op.unsub, 0)
		}
	}
}
