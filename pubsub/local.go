package pubsub

import (
	"slices"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// localTopic is the subscriber side of a topic on this node: its local
// subscriptions, the owner it is registered with, and the sequence position
// that keeps delivery in order and free of duplicates.
type localTopic struct {
	name  string
	ready chan struct{} // closed when the first registration completed

	mu          sync.Mutex
	subs        []*Subscription // copied on write
	regErr      error           // outcome of the first registration
	owner       string          // node this topic is registered with
	confirmed   bool            // the owner acknowledged the registration
	regAt       time.Time       // when the registration in flight was sent
	removed     bool            // no longer in the table (last subscriber left)
	based       bool            // epoch and last are known
	epoch       uint64
	last        uint64            // seq of the last message delivered
	pending     map[uint64][]byte // messages after a gap, by seq
	gapTimer    *time.Timer       // armed while pending is not empty
	repairing   bool              // a history request for the gap is out
	gapDeadline time.Time         // when the oldest gap is given up
}

type localShard struct {
	mu     sync.RWMutex
	topics map[string]*localTopic
}

type localTable struct {
	shards [shardCount]localShard
}

func newLocalTable() *localTable {
	t := &localTable{}
	for i := range t.shards {
		t.shards[i].topics = make(map[string]*localTopic)
	}
	return t
}

func (t *localTable) get(topic string) *localTopic {
	sh := &t.shards[shardOf(topic)]
	sh.mu.RLock()
	lt := sh.topics[topic]
	sh.mu.RUnlock()
	return lt
}

// add attaches s to its topic, creating the topic on the first subscriber.
// It reports whether s is the first (0→1), in which case the caller
// registers the topic with its owner.
func (t *localTable) add(s *Subscription) (*localTopic, bool) {
	sh := &t.shards[shardOf(s.topic)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	lt, ok := sh.topics[s.topic]
	if !ok {
		lt = &localTopic{name: s.topic, ready: make(chan struct{})}
		sh.topics[s.topic] = lt
	}
	lt.mu.Lock()
	lt.subs = append(slices.Clip(lt.subs), s)
	s.lt = lt
	lt.mu.Unlock()
	return lt, !ok
}

// remove detaches s. It reports the owner to unregister from when s was the
// last subscriber (N→0) and the topic had been registered.
func (t *localTable) remove(s *Subscription) (owner string, last bool) {
	lt := s.lt
	if lt == nil {
		return "", false
	}
	sh := &t.shards[shardOf(s.topic)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	lt.mu.Lock()
	defer lt.mu.Unlock()
	i := slices.Index(lt.subs, s)
	if i < 0 {
		return "", false
	}
	subs := make([]*Subscription, 0, len(lt.subs)-1)
	subs = append(subs, lt.subs[:i]...)
	lt.subs = append(subs, lt.subs[i+1:]...)
	if len(lt.subs) > 0 {
		return "", false
	}
	if sh.topics[lt.name] == lt {
		delete(sh.topics, lt.name)
	}
	lt.removed = true
	if lt.gapTimer != nil {
		lt.gapTimer.Stop()
	}
	lt.pending = nil
	return lt.owner, lt.owner != ""
}

// forget removes lt from the table if it is still there (failed first
// registration).
func (t *localTable) forget(lt *localTopic) {
	sh := &t.shards[shardOf(lt.name)]
	sh.mu.Lock()
	if sh.topics[lt.name] == lt {
		delete(sh.topics, lt.name)
	}
	sh.mu.Unlock()
}

// all returns every local topic (for ring changes and shutdown).
func (t *localTable) all() []*localTopic {
	var out []*localTopic
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, lt := range sh.topics {
			out = append(out, lt)
		}
		sh.mu.RUnlock()
	}
	return out
}

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
	if lt != nil && n.deliverTo(lt, from, epoch, seq, data) {
		return
	}
	n.stats.unrouted.Add(1)
	if lt == nil && from != n.name {
		n.unsubscribeStale(from, topic)
	}
}

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
	shard := shardOf(topic)
	n.regMu[shard].Lock()
	defer n.regMu[shard].Unlock()
	if n.local.get(topic) != nil {
		return
	}
	if owner, err := n.ownerName(topic); err != nil || owner != from {
		return
	}
	now := time.Now()
	told := n.staleTold[shard]
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
			n.staleTold[shard] = told
		}
	}
	told[topic] = now
	if err := n.sendMsg(from, &wire.Unsubscribe{Topic: topic, Origin: n.name}); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

// deliverTo is deliver to a local topic already looked up. It reports
// false, having done nothing, when lt takes no messages: its last
// subscriber left, or its registration has not completed.
func (n *Node) deliverTo(lt *localTopic, from string, epoch, seq uint64, data []byte) bool {
	topic := lt.name
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.removed || !lt.based {
		return false
	}
	if epoch != lt.epoch {
		// The owner started the topic over: sequence numbers restart.
		n.log.Info("topic epoch changed", "topic", topic, "old", lt.epoch, "new", epoch)
		lt.epoch, lt.last = epoch, seq-1
		lt.pending = nil
	}
	switch {
	case seq <= lt.last:
		n.stats.duplicates.Add(1)
	case seq == lt.last+1:
		lt.fanout(n, &Message{Topic: topic, Epoch: epoch, Seq: seq, Data: data})
		lt.last = seq
		lt.drainPending(n, false)
	default:
		if lt.pending == nil {
			lt.pending = make(map[uint64][]byte)
		}
		if _, dup := lt.pending[seq]; dup {
			n.stats.duplicates.Add(1)
			return true
		}
		lt.pending[seq] = data
		if len(lt.pending) >= maxPending {
			lt.drainPending(n, true)
			return true
		}
		if len(lt.pending) == 1 {
			lt.gapDeadline = time.Now().Add(n.cfg.GapTimeout)
			if lt.gapTimer == nil {
				lt.gapTimer = time.AfterFunc(n.cfg.GapTimeout, func() { n.gapExpired(lt) })
			} else {
				lt.gapTimer.Reset(n.cfg.GapTimeout)
			}
		}
		n.repairGap(lt, from, seq-1)
	}
	return true
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
		// The owner answered for the whole range: whatever it did not send
		// is gone from its history, or never existed. Move on now.
		low := lowestPending(lt.pending)
		if low != 0 && low-1 <= until && lt.last < low-1 {
			lt.drainPending(n, true)
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
func (lt *localTopic) drainPending(n *Node, skip bool) {
	if len(lt.pending) == 0 {
		return
	}
	if skip {
		low := lowestPending(lt.pending)
		n.stats.gaps.Add(1)
		if skipped := low - lt.last - 1; skipped < failoverSeqGap {
			// A failover's skip holds no messages: count only real losses.
			n.stats.lost.Add(skipped)
		}
		n.log.Warn("gave up waiting for missing messages", "topic", lt.name, "from", lt.last+1, "to", low-1)
		lt.last = low - 1
	}
	for {
		data, ok := lt.pending[lt.last+1]
		if !ok {
			break
		}
		delete(lt.pending, lt.last+1)
		lt.last++
		lt.fanout(n, &Message{Topic: lt.name, Epoch: lt.epoch, Seq: lt.last, Data: data})
	}
	if len(lt.pending) == 0 {
		lt.pending = nil
		if lt.gapTimer != nil {
			lt.gapTimer.Stop()
		}
	} else if skip {
		lt.drainPending(n, true)
	}
}

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
		lt.gapTimer.Reset(max(wait, n.cfg.GapTimeout/4))
		return
	}
	lt.drainPending(n, true)
}

// fanout pushes m to every local subscription. lt.mu held.
func (lt *localTopic) fanout(n *Node, m *Message) {
	for _, s := range lt.subs {
		if !s.push(m) {
			n.stats.slowConsumers.Add(1)
			n.log.Warn("subscription overflowed: slow consumer", "topic", lt.name, "buffer", s.size)
		}
	}
	n.stats.delivered.Add(uint64(len(lt.subs)))
}
