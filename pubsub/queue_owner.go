package pubsub

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/pubsub/store"
)

// Bounds of a durable queue group's bookkeeping at the owner: messages
// delivered and not yet acknowledged (flights), and messages waiting for a
// member (backlog). Past the backlog's bound a group falls behind: its new
// messages stay in the store only, and the owner reads them back a page
// at a time as the backlog empties (queue_store.go). They are variables
// so that tests can lower them.
var (
	maxQueueFlights = 1 << 16
	maxQueueBacklog = 1 << 16
)

// queueOwner is the owner side of queue groups: per topic, which nodes have
// members of which groups, and for durable topics the messages each group
// has not acknowledged yet. It is kept apart from the owner table: a node
// registers its groups with the topic's owner in its view of the ring and
// again every queueRefreshEvery, so that the table follows ownership
// changes by itself and needs no hand-off.
type queueOwner struct {
	active atomic.Int32 // topics with groups, so that a publish without any skips the lock

	mu     sync.Mutex
	topics map[string]map[string]*queueGroup

	redelivered atomic.Uint64
}

// queueGroup is one group of a topic at its owner.
type queueGroup struct {
	key   queueKey
	nodes []queueNode
	next  int // round robin over nodes

	// Durable topics only: where the group is (every message up to cursor
	// of epoch is acknowledged or given up), what is out, and what waits.
	based   bool
	epoch   uint64
	cursor  uint64
	flights map[uint64]*queueFlight
	acked   map[uint64]struct{} // acknowledged after cursor
	backlog []*queueFlight

	// With a store that keeps cursors (queue_store.go): qc is it; loading
	// is set while the cursor is read and the store replayed; saved is the
	// cursor the store holds, dirty says the cursor moved since, saving
	// that a save is under way.
	qc      store.QueueCursors
	loading bool
	saved   uint64
	dirty   bool
	saving  bool

	// A durable group that fell behind (see maxQueueBacklog) leaves its
	// messages after replayAfter in the store, up to lastSeen, the newest
	// the owner has sequenced; replaying is set while a page of them is
	// read. gen changes at every rebase, so that a read started before is
	// ignored.
	durable     bool
	behind      bool
	replaying   bool
	replayAfter uint64
	lastSeen    uint64
	gen         uint64
}

type queueNode struct {
	name string
	seen time.Time
}

// queueFlight is a durable topic's message on its way to a group member.
type queueFlight struct {
	epoch, seq uint64
	data       []byte
	node       string // "" while in the backlog
	due        time.Time
}

// group returns the group of k, creating it when create is set. q.mu held.
func (q *queueOwner) group(k queueKey, create bool) *queueGroup {
	groups := q.topics[k.topic]
	if g := groups[k.group]; g != nil || !create {
		return g
	}
	if q.topics == nil {
		q.topics = make(map[string]map[string]*queueGroup)
	}
	if groups == nil {
		groups = make(map[string]*queueGroup)
		q.topics[k.topic] = groups
		q.active.Add(1)
	}
	g := &queueGroup{key: k}
	groups[k.group] = g
	return g
}

// dropGroup forgets g, unless another group of the same name has replaced
// it since. q.mu held.
func (q *queueOwner) dropGroup(g *queueGroup) {
	groups := q.topics[g.key.topic]
	if groups[g.key.group] != g {
		return
	}
	delete(groups, g.key.group)
	if len(groups) == 0 {
		delete(q.topics, g.key.topic)
		q.active.Add(-1)
	}
}

// ownerQueueJoin records that origin has members of the group when this
// node owns the topic in its view, and sends the join on to the owner
// otherwise. done, if set, gets the outcome (a join of this node's own);
// otherwise a non-zero reqID is answered with a QueueJoinAck.
func (n *Node) ownerQueueJoin(k queueKey, origin string, hops uint8, reqID uint64, done func(error)) {
	reply := func(err error) {
		if done != nil {
			done(err)
			return
		}
		if reqID == 0 {
			return
		}
		ack := &wire.QueueJoinAck{ReqID: reqID, Code: errorCode(err)}
		if err != nil {
			ack.Err = err.Error()
		}
		if origin == n.name {
			n.pending.complete(n.name, reqID, ack)
			return
		}
		if err := n.peers.sendMsg(origin, ack); err != nil {
			n.stats.sendErrors.Add(1)
		}
	}
	owner, err := n.ringOwner(k.topic)
	if err != nil {
		reply(err)
		return
	}
	if owner != n.name {
		if hops >= maxHops {
			reply(fmt.Errorf("%w: %q forwarded %d times between nodes that disagree on its owner", ErrNoOwner, k.topic, hops))
			return
		}
		if done != nil && reqID == 0 {
			reqID = n.pending.add(owner, n.cfg.RequestTimeout, func(_ string, msg wire.Message, err error) {
				if ack, ok := msg.(*wire.QueueJoinAck); ok {
					err = codeError(ack.Code, ack.Err)
				}
				done(err)
			})
			done = nil
		}
		m := &wire.QueueJoin{ReqID: reqID, Topic: k.topic, Group: k.group, Origin: origin, Hops: hops + 1}
		if err := n.peers.sendMsg(owner, m); err != nil {
			if origin == n.name && reqID != 0 {
				n.pending.cancel(reqID)
			}
			reply(err)
		}
		return
	}
	q := &n.queueOwner
	q.mu.Lock()
	g := q.group(k, false)
	if g == nil {
		g = q.group(k, true)
		if g.qc = n.queueCursors(k.topic); g.qc != nil {
			n.loadQueueCursorLocked(g, g.qc)
		}
	}
	now := time.Now()
	if i := slices.IndexFunc(g.nodes, func(qn queueNode) bool { return qn.name == origin }); i >= 0 {
		g.nodes[i].seen = now
	} else {
		g.nodes = append(g.nodes, queueNode{name: origin, seen: now})
		n.log.Debug("queue group member node joined", "topic", k.topic, "group", k.group, "node", origin)
		n.drainBacklogLocked(g, now)
	}
	q.mu.Unlock()
	reply(nil)
}

// ownerQueueLeave forgets origin's members of the group; the messages they
// had not acknowledged go to the group's other members at once.
func (n *Node) ownerQueueLeave(k queueKey, origin string, hops uint8) {
	q := &n.queueOwner
	q.mu.Lock()
	g := q.group(k, false)
	if g != nil {
		n.removeQueueNodeLocked(g, origin, time.Now())
	}
	q.mu.Unlock()
	if g != nil || hops >= maxHops {
		return
	}
	if owner, err := n.ringOwner(k.topic); err == nil && owner != n.name {
		_ = n.peers.sendMsg(owner, &wire.QueueLeave{Topic: k.topic, Group: k.group, Origin: origin, Hops: hops + 1})
	}
}

// removeQueueNodeLocked removes node from g and hands its unacknowledged
// messages to the others. q.mu held.
func (n *Node) removeQueueNodeLocked(g *queueGroup, node string, now time.Time) {
	i := slices.IndexFunc(g.nodes, func(qn queueNode) bool { return qn.name == node })
	if i < 0 {
		return
	}
	g.nodes = slices.Delete(g.nodes, i, i+1)
	n.log.Debug("queue group member node left", "topic", g.key.topic, "group", g.key.group, "node", node)
	for _, f := range g.flights {
		if f.node == node {
			n.redeliverLocked(g, f, now)
		}
	}
	n.forgetGroupIfIdleLocked(g)
}

// forgetGroupIfIdleLocked drops a group with no node and nothing waiting.
// q.mu held.
func (n *Node) forgetGroupIfIdleLocked(g *queueGroup) {
	if len(g.nodes) == 0 && len(g.flights) == 0 && !g.loading && !g.saving && !g.dirty &&
		(len(g.backlog) == 0 || g.qc != nil) {
		// A durable group's cursor is saved: the owner that keeps it next
		// replays what followed it from the store.
		n.queueOwner.dropGroup(g)
	}
}

// queueFanout gives a message the owner just sequenced to one node of each
// queue group of the topic. ot.mu held, which keeps one topic's messages
// in order on every link.
func (n *Node) queueFanout(ot *ownedTopic, seq uint64, data []byte) {
	q := &n.queueOwner
	if q.active.Load() == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	groups := q.topics[ot.name]
	if len(groups) == 0 {
		return
	}
	now := time.Now()
	durable := ot.dur != nil
	for _, g := range groups {
		if !durable {
			if n.sendQueueLocked(g, "", ot.epoch, seq, data, false) == "" {
				n.stats.unrouted.Add(1)
			}
			continue
		}
		g.durable = true
		f := &queueFlight{epoch: ot.epoch, seq: seq, data: data}
		if g.loading {
			n.backlogLocked(g, f, true)
			continue
		}
		if !g.based || g.epoch != ot.epoch {
			n.rebaseQueueLocked(g, ot.epoch, seq-1)
			g.saved, g.dirty = 0, g.qc != nil
		}
		if g.behind {
			g.lastSeen = max(g.lastSeen, seq)
			continue
		}
		if len(g.flights) < maxQueueFlights && len(g.backlog) == 0 {
			if f.node = n.sendQueueLocked(g, "", f.epoch, f.seq, f.data, true); f.node != "" {
				f.due = now.Add(n.cfg.QueueAckTimeout)
				g.flights[seq] = f
				continue
			}
		}
		n.backlogLocked(g, f, true)
	}
}

// rebaseQueueLocked starts a durable group's bookkeeping over at a new
// epoch, every message up to cursor counting as done. q.mu held.
func (n *Node) rebaseQueueLocked(g *queueGroup, epoch, cursor uint64) {
	g.based, g.epoch, g.cursor = true, epoch, cursor
	g.behind, g.replaying, g.replayAfter, g.lastSeen = false, false, 0, 0
	g.gen++
	g.flights = make(map[uint64]*queueFlight)
	g.acked = make(map[uint64]struct{})
	g.backlog = nil
}

// backlogLocked queues f until a member can take it. A new message (live)
// that finds the backlog full makes a durable group fall behind: it stays
// in the store, and so do the messages after it until the group has
// caught up (catchUpLocked). A memory topic's group gives up its oldest
// message instead. A message sent before (not live) always gets in: there
// are at most maxQueueFlights of them. q.mu held.
func (n *Node) backlogLocked(g *queueGroup, f *queueFlight, live bool) {
	f.node = ""
	if live && g.durable && (g.based || g.loading) && len(g.backlog) >= maxQueueBacklog {
		g.behind, g.replayAfter, g.lastSeen = true, f.seq-1, f.seq
		n.log.Info("queue group fell behind: its messages are read back from the store", "topic", g.key.topic, "group", g.key.group, "after", g.replayAfter)
		return
	}
	if live && len(g.backlog) >= maxQueueBacklog {
		old := g.backlog[0]
		g.backlog[0] = nil
		g.backlog = g.backlog[1:]
		n.stats.lost.Add(1)
		n.log.Warn("queue group backlog full: message given up", "topic", g.key.topic, "group", g.key.group, "seq", old.seq)
		n.ackQueueLocked(g, old.epoch, old.seq)
	}
	g.backlog = append(g.backlog, f)
}

// drainBacklogLocked sends waiting messages while the group has a node and
// room for them. q.mu held.
func (n *Node) drainBacklogLocked(g *queueGroup, now time.Time) {
	for !g.loading && len(g.backlog) > 0 && len(g.nodes) > 0 && len(g.flights) < maxQueueFlights {
		f := g.backlog[0]
		if f.node = n.sendQueueLocked(g, "", f.epoch, f.seq, f.data, true); f.node == "" {
			return
		}
		g.backlog[0] = nil
		g.backlog = g.backlog[1:]
		f.due = now.Add(n.cfg.QueueAckTimeout)
		g.flights[f.seq] = f
	}
	if g.behind && !g.replaying && !g.loading && len(g.nodes) > 0 && len(g.backlog) <= maxQueueBacklog/2 {
		n.catchUpLocked(g)
	}
}

// redeliverLocked sends an unacknowledged message again, to another node
// of the group when there is one, or back to the backlog. q.mu held.
func (n *Node) redeliverLocked(g *queueGroup, f *queueFlight, now time.Time) {
	n.queueOwner.redelivered.Add(1)
	if node := n.sendQueueLocked(g, f.node, f.epoch, f.seq, f.data, true); node != "" {
		f.node, f.due = node, now.Add(n.cfg.QueueAckTimeout)
		return
	}
	delete(g.flights, f.seq)
	n.backlogLocked(g, f, false)
}

// sendQueueLocked sends a message to the next node of g in turn, avoiding
// avoid when another node can take it, and returns the node it went to
// ("" when none could take it). q.mu held.
func (n *Node) sendQueueLocked(g *queueGroup, avoid string, epoch, seq uint64, data []byte, acked bool) string {
	var (
		buf   *[]byte
		frame []byte
	)
	defer func() {
		if buf != nil {
			putFrameBuf(buf, frame)
		}
	}()
	for tries := 0; tries < len(g.nodes); {
		i := g.next % len(g.nodes)
		node := g.nodes[i].name
		if node == avoid && len(g.nodes) > 1 && tries == 0 {
			g.next++
			continue
		}
		g.next++
		tries++
		if node == n.name {
			if n.deliverQueue(g.key, epoch, seq, data, acked) {
				return node
			}
			// This node's last member left meanwhile.
			g.nodes = slices.Delete(g.nodes, i, i+1)
			tries--
			continue
		}
		if buf == nil {
			buf = getFrameBuf()
			m := wire.QueueDeliver{Topic: g.key.topic, Group: g.key.group, Epoch: epoch, Seq: seq, Data: data, Acked: acked}
			frame = m.AppendFrame(*buf)
		}
		if err := n.peers.sendTo(node, frame); err != nil {
			n.stats.sendErrors.Add(1)
			continue
		}
		return node
	}
	return ""
}

// ownerQueueAck applies a member's acknowledgement.
func (n *Node) ownerQueueAck(k queueKey, from string, epoch, seq uint64) {
	q := &n.queueOwner
	q.mu.Lock()
	defer q.mu.Unlock()
	g := q.group(k, false)
	if g == nil || !g.based || g.epoch != epoch {
		return
	}
	n.ackQueueLocked(g, epoch, seq)
	n.drainBacklogLocked(g, time.Now())
	n.forgetGroupIfIdleLocked(g)
}

// ackQueueLocked marks seq done and moves the cursor over the
// acknowledged prefix. q.mu held.
func (n *Node) ackQueueLocked(g *queueGroup, epoch, seq uint64) {
	if epoch != g.epoch || seq <= g.cursor {
		return
	}
	delete(g.flights, seq)
	g.acked[seq] = struct{}{}
	for {
		if _, ok := g.acked[g.cursor+1]; !ok {
			break
		}
		delete(g.acked, g.cursor+1)
		g.cursor++
		g.dirty = g.qc != nil
	}
}

// reconcileQueues is the queue groups' share of the node's periodic
// reconciliation: this node joins its groups again where due (see
// refreshQueues); as an owner it forgets nodes it has not heard from for
// queueExpireAfter and sends again what was not acknowledged in time.
func (n *Node) reconcileQueues(now time.Time) {
	n.refreshQueues(now)
	q := &n.queueOwner
	if q.active.Load() == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, groups := range q.topics {
		for _, g := range groups {
			for i := len(g.nodes) - 1; i >= 0; i-- {
				if now.Sub(g.nodes[i].seen) > queueExpireAfter {
					n.removeQueueNodeLocked(g, g.nodes[i].name, now)
				}
			}
			for _, f := range g.flights {
				if now.After(f.due) {
					n.redeliverLocked(g, f, now)
				}
			}
			n.drainBacklogLocked(g, now)
			n.forgetGroupIfIdleLocked(g)
		}
	}
	n.saveQueueCursorsLocked()
}

// queueNodesDeparted forgets members that left the cluster: their
// unacknowledged messages go to the groups' other members.
func (n *Node) queueNodesDeparted(gone []string) {
	q := &n.queueOwner
	if q.active.Load() == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	for _, groups := range q.topics {
		for _, g := range groups {
			for _, name := range gone {
				n.removeQueueNodeLocked(g, name, now)
			}
		}
	}
}

// onQueueJoin handles a node's join of a queue group.
func (n *Node) onQueueJoin(from string, m *wire.QueueJoin) {
	origin := m.Origin
	if origin == "" {
		origin = from
	}
	if err := validateQueueKey(m.Topic, m.Group); err != nil {
		n.stats.badFrames.Add(1)
		if m.ReqID != 0 {
			_ = n.peers.sendMsg(from, &wire.QueueJoinAck{ReqID: m.ReqID, Code: errorCode(err), Err: err.Error()})
		}
		return
	}
	n.ownerQueueJoin(queueKey{m.Topic, m.Group}, origin, m.Hops, m.ReqID, nil)
}

// onQueueLeave handles a node that has no member of a group left.
func (n *Node) onQueueLeave(from string, m *wire.QueueLeave) {
	origin := m.Origin
	if origin == "" {
		origin = from
	}
	if validateQueueKey(m.Topic, m.Group) != nil {
		n.stats.badFrames.Add(1)
		return
	}
	n.ownerQueueLeave(queueKey{m.Topic, m.Group}, origin, m.Hops)
}

// onQueueAck handles a member's acknowledgement.
func (n *Node) onQueueAck(from string, m *wire.QueueAck) {
	n.ownerQueueAck(queueKey{m.Topic, m.Group}, from, m.Epoch, m.Seq)
}

func validateQueueKey(topic, group string) error {
	if err := ValidateTopic(topic); err != nil {
		return err
	}
	return ValidateQueueGroup(group)
}
