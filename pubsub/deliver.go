package pubsub

import (
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// maxPending bounds the messages held after a gap; past it the gap is
// given up at once.
const maxPending = 4096

// deliver hands one message from the topic's owner to the local
// subscriptions, in sequence order, dropping duplicates and holding
// messages that arrive after a gap until the gap fills or GapTimeout
// passes. It never blocks.
//
// from is the node that sent the message (this node for a local owner): it
// holds the history before seq, so a gap is repaired from it.
func (n *Node) deliver(from, topic string, epoch, seq uint64, data []byte) {
	lt := n.local.get(topic)
	if lt != nil {
		switch n.deliverTo(lt, from, epoch, seq, data) {
		case taken:
			return
		case refused:
			n.refuseStale(lt, from)
			return
		}
	}
	n.stats.unrouted.Add(1)
	if lt == nil && from != n.name {
		n.unsubscribeStale(from, topic)
	}
}

// delivery is what deliverTo did with a message.
type delivery uint8

const (
	taken    delivery = iota // delivered, held after a gap, or a duplicate
	notTaken                 // the local topic takes no messages
	refused                  // a stale sender or epoch (see deliverTo)
)

// staleAnswerEvery is how often a node answers the stale deliveries of
// one topic: the owner drops the node on the first answer, and the
// deliveries already on their way need none.
const staleAnswerEvery = time.Second

// unsubscribeStale answers a delivery for a topic this node has no
// subscriber for: the sender still lists this node (an unsubscribe lost
// with a link, a copy rebuilt after a failover, an earlier process of the
// same name), and would otherwise send here for good and never forget the
// topic. It answers only the owner in this node's view, on the link a new
// Subscribe would take, and under the registration lock after looking
// again: a Subscribe made meanwhile is then queued after the Unsubscribe,
// or prevents it.
func (n *Node) unsubscribeStale(from, topic string) {
	if ValidateTopic(topic) != nil {
		return
	}
	reg := n.local.reg(topic)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if n.local.get(topic) != nil {
		return
	}
	if owner, err := n.ownerName(topic); err != nil || owner != from {
		return
	}
	now := time.Now()
	told := reg.staleTold
	if at, ok := told[topic]; ok && now.Sub(at) < staleAnswerEvery {
		return
	}
	if told == nil || len(told) >= 1024 {
		// Keep the memory to what the last interval needs.
		for t, at := range told {
			if now.Sub(at) >= staleAnswerEvery {
				delete(told, t)
			}
		}
		if told == nil {
			told = make(map[string]time.Time)
			reg.staleTold = told
		}
	}
	told[topic] = now
	if err := n.peers.sendMsg(from, &wire.Unsubscribe{Topic: topic, Origin: n.name}); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

// deliverTo is deliver to a local topic already looked up. It returns
// notTaken, having done nothing, when lt takes no messages: its last
// subscriber left, or its registration has not completed.
//
// A local topic follows one owner at a time, so that its subscribers see
// one order even while two nodes send (the two sides of a healed
// partition, an old owner's last frames after a hand-off). It takes
// messages only from the node it is registered with, the node it is
// re-registering with (the old owner's messages sequenced before the new
// one took over still come, in order, until the new one confirms), or the
// owner in this node's view, with which it re-registers at its next
// reconciliation. And it never goes back to an older epoch once it
// has delivered a message of a newer one (epochs are ordered, see
// newEpoch). Anything else is refused and counted (Stats.Stale).
func (n *Node) deliverTo(lt *localTopic, from string, epoch, seq uint64, data []byte) delivery {
	topic := lt.name
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.removed || !lt.based {
		return notTaken
	}
	if from != lt.owner && from != lt.former && !n.isRingOwner(from, topic) {
		n.stats.stale.Add(1)
		return refused
	}
	if epoch != lt.epoch {
		if !lt.takesEpoch(epoch) {
			n.stats.stale.Add(1)
			return refused
		}
		// The owner started the topic over: sequence numbers restart.
		n.log.Info("topic epoch changed", "topic", topic, "old", lt.epoch, "new", epoch)
		lt.epoch, lt.last = epoch, seq-1
		lt.pending = nil
	}
	switch {
	case seq <= lt.last:
		n.stats.duplicates.Add(1)
	case seq == lt.last+1:
		n.local.fanout(lt, &Message{Topic: topic, Epoch: epoch, Seq: seq, Data: data})
		lt.last = seq
		n.local.drainPending(lt, false)
	default:
		if lt.pending == nil {
			lt.pending = make(map[uint64][]byte)
		}
		if _, dup := lt.pending[seq]; dup {
			n.stats.duplicates.Add(1)
			return taken
		}
		lt.pending[seq] = data
		if len(lt.pending) >= maxPending {
			n.local.drainPending(lt, true)
			return taken
		}
		if len(lt.pending) == 1 {
			lt.gapDeadline = time.Now().Add(n.cfg.GapTimeout)
			if lt.gapTimer == nil {
				lt.gapTimer = n.timers.after(n.cfg.GapTimeout, func() { n.gapExpired(lt) })
			} else {
				lt.gapTimer.reset(n.cfg.GapTimeout)
			}
		}
		n.repairGap(lt, from, seq-1)
	}
	return taken
}

// takesEpoch reports whether the local topic may move to epoch: a later
// one, or any while it has delivered nothing in its own. lt.mu held.
func (lt *localTopic) takesEpoch(epoch uint64) bool {
	return epoch > lt.epoch || lt.last == 0
}

// refuseStale answers a node whose delivery lt refused because lt is
// registered elsewhere: it tells the node, at most once per
// staleAnswerEvery, to stop sending here. The Unsubscribe is not to be
// forwarded (Hops is maxHops), so that it reaches no owner but the one it
// is sent to. It is sent only while lt is registered with the owner in this
// node's view and no registration of lt is out, and under the
// registration lock: a registration made later could still reach the
// same node by another way (forwarded by a node whose view lags) and be
// overtaken by the Unsubscribe, so the node told is remembered and a
// registration it confirms is made once more (see onRegistered).
func (n *Node) refuseStale(lt *localTopic, from string) {
	if from == n.name {
		return // this node's own owner state: the re-registration settles it
	}
	reg := n.local.reg(lt.name)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	lt.mu.Lock()
	now := time.Now()
	answer := !lt.removed && lt.confirmed && from != lt.owner && from != lt.former && n.isRingOwner(lt.owner, lt.name) &&
		(from != lt.refusedTo || now.Sub(lt.refusedAt) >= staleAnswerEvery)
	if answer {
		lt.refusedTo, lt.refusedAt = from, now
	}
	lt.mu.Unlock()
	if !answer {
		return
	}
	n.log.Debug("refusing deliveries from a node this one is not registered with", "topic", lt.name, "from", from)
	if err := n.peers.sendMsg(from, &wire.Unsubscribe{Topic: lt.name, Origin: n.name, Hops: maxHops}); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

// repairGap asks the node that sent a message after a gap (the topic's
// owner, even when this node's view does not know it yet) for the messages
// missing before until: a frame lost with a broken link, or numbers skipped
// by a failover. The gap timer stays armed in case nobody can answer. lt.mu
// held.
func (n *Node) repairGap(lt *localTopic, from string, until uint64) {
	target := from
	if target == "" {
		target = lt.owner
	}
	if lt.repairing || target == "" || target == n.name {
		return
	}
	lt.repairing = true
	after, epoch := lt.last, lt.epoch
	n.stats.repairs.Add(1)
	err := n.requestHistory(target, lt.name, after, until, func(p historyPage, err error) {
		if err == nil && p.epoch == epoch {
			for _, e := range p.entries {
				n.deliver(target, lt.name, p.epoch, e.Seq, e.Data)
			}
		}
		lt.mu.Lock()
		defer lt.mu.Unlock()
		lt.repairing = false
		if err != nil || p.epoch != lt.epoch || lt.removed {
			return
		}
		if k := len(p.entries); k > 0 && p.entries[k-1].Seq < min(until, p.seq) && len(lt.pending) > 0 {
			// One page did not cover the range (it is bounded in bytes):
			// ask for the next, and give the gap its time again.
			lt.gapDeadline = time.Now().Add(n.cfg.GapTimeout)
			n.repairGap(lt, target, until)
			return
		}
		// The owner answered for the whole range: whatever it did not send
		// is gone from its history, or never existed. Move on now.
		low := lowestPending(lt.pending)
		if low != 0 && low-1 <= until && lt.last < low-1 {
			n.local.drainPending(lt, true)
		}
	})
	if err != nil {
		lt.repairing = false // the gap timer remains the fallback
	}
}

func lowestPending(p map[uint64][]byte) uint64 {
	low := uint64(0)
	for s := range p {
		if low == 0 || s < low {
			low = s
		}
	}
	return low
}

// drainPending delivers held messages that have become contiguous; with
// skip it first jumps over the gap to the lowest held message. lt.mu held.
func (t *localTable) drainPending(lt *localTopic, skip bool) {
	if len(lt.pending) == 0 {
		return
	}
	if skip {
		low := lowestPending(lt.pending)
		if skipped := low - lt.last - 1; failoverSkip(skipped) {
			t.log.Debug("moved past the numbers a failover skipped", "topic", lt.name, "from", lt.last+1, "to", low-1)
		} else {
			t.stats.gaps.Add(1)
			t.stats.lost.Add(skipped)
			t.log.Warn("gave up waiting for missing messages", "topic", lt.name, "from", lt.last+1, "to", low-1)
		}
		lt.last = low - 1
	}
	for {
		data, ok := lt.pending[lt.last+1]
		if !ok {
			break
		}
		delete(lt.pending, lt.last+1)
		lt.last++
		t.fanout(lt, &Message{Topic: lt.name, Epoch: lt.epoch, Seq: lt.last, Data: data})
	}
	if len(lt.pending) == 0 {
		lt.pending = nil
		if lt.gapTimer != nil {
			lt.gapTimer.stop()
		}
	} else if skip {
		t.drainPending(lt, true)
	}
}

// failoverSkip reports whether skipping n sequence numbers is the jump of a
// failover (see failoverSeqGap) rather than a loss: the new owner never
// used those numbers. A jump may be shorter than failoverSeqGap by the
// messages the failed owner sequenced but had not yet replicated, which
// this node may have delivered; no real gap comes near half of it.
func failoverSkip(n uint64) bool { return n >= failoverSeqGap/2 }

// gapExpired gives up waiting for the messages missing before the held
// ones. It waits longer while the topic's registration with a new owner is
// unconfirmed (the new owner's answer says where replay starts), and
// ignores a firing meant for a gap that has since been filled.
func (n *Node) gapExpired(lt *localTopic) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.removed || len(lt.pending) == 0 {
		return
	}
	if wait := time.Until(lt.gapDeadline); wait > 0 || !lt.confirmed {
		lt.gapTimer.reset(max(wait, n.cfg.GapTimeout/4))
		return
	}
	n.local.drainPending(lt, true)
}

// fanout pushes m to every local subscription. lt.mu held.
func (t *localTable) fanout(lt *localTopic, m *Message) {
	for _, s := range lt.subs {
		if !s.push(m) {
			t.stats.slowConsumers.Add(1)
			t.log.Warn("subscription overflowed: slow consumer", "topic", lt.name, "buffer", s.size)
		}
	}
	t.stats.delivered.Add(uint64(len(lt.subs)))
}
