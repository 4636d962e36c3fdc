package pubsub

import (
	"context"
	"math"
	"time"

	"github.com/ringcast/ringcast/pubsub/store"
)

// A durable topic's queue group keeps its cursor in the store (when the
// Store implements store.QueueCursors): the owner saves it as
// acknowledgements move it, at most once per reconciliation
// (reconcileInterval), and an owner that starts keeping a group (a
// failover, a hand-off, a restart, or the group's first member after none)
// reads it and delivers again, from the store, every message after it:
// what the group had not acknowledged is not lost, though some of it may
// come twice (at least once). Until that replay is done, the group's new
// messages wait in its backlog, behind the replayed ones.

// queueCursors returns the store's queue cursors when topic is durable and
// the store keeps them, nil otherwise.
func (n *Node) queueCursors(topic string) store.QueueCursors {
	if n.committer == nil || n.durability.durable(topic) == nil {
		return nil
	}
	qc, _ := n.cfg.Store.(store.QueueCursors)
	return qc
}

// loadQueueCursorLocked starts reading g's cursor from the store and
// replaying what follows it. q.mu held.
func (n *Node) loadQueueCursorLocked(g *queueGroup, qc store.QueueCursors) {
	g.loading = true
	n.storeWork.Add(1)
	go func() {
		defer n.storeWork.Done()
		ctx, cancel := context.WithTimeout(n.storeCtx, n.cfg.StoreTimeout)
		c, ok, err := qc.QueueCursor(ctx, g.key.topic, g.key.group)
		cancel()
		if err != nil {
			n.log.Warn("queue group cursor not read: the group starts at its next message", "topic", g.key.topic, "group", g.key.group, "err", err)
			ok = false
		}
		var (
			replay    []*queueFlight
			truncated bool
		)
		if ok {
			replay, truncated = n.readQueueReplay(g, c)
		}
		q := &n.queueOwner
		q.mu.Lock()
		defer q.mu.Unlock()
		g.loading = false
		n.applyQueueCursorLocked(g, c, ok, replay, truncated)
	}()
}

// readQueueReplay reads the messages after cursor c from the store, at
// most maxQueueBacklog of them; it stops where the live messages the
// group holds start. truncated says it stopped at that bound.
func (n *Node) readQueueReplay(g *queueGroup, c store.Cursor) (out []*queueFlight, truncated bool) {
	q := &n.queueOwner
	q.mu.Lock()
	stop := uint64(math.MaxUint64)
	if len(g.backlog) > 0 && g.backlog[0].epoch == c.Epoch {
		stop = g.backlog[0].seq
	}
	q.mu.Unlock()
	after := c.Seq
	for after+1 < stop && len(out) < maxQueueBacklog {
		var (
			page historyPage
			rerr error
		)
		n.readStoreHistoryNow(g.key.topic, historyPage{epoch: c.Epoch, seq: stop - 1}, after, stop-1, 0, func(p historyPage, err error) {
			page, rerr = p, err
		})
		if rerr != nil {
			n.log.Warn("queue group replay stopped: store not read", "topic", g.key.topic, "group", g.key.group, "after", after, "err", rerr)
			break
		}
		if len(page.entries) == 0 {
			break
		}
		for _, e := range page.entries {
			out = append(out, &queueFlight{epoch: c.Epoch, seq: e.Seq, data: e.Data})
		}
		after = page.entries[len(page.entries)-1].Seq
	}
	return out, len(out) >= maxQueueBacklog
}

// applyQueueCursorLocked bases g on the cursor read from the store (ok)
// and puts the replayed messages ahead of the live ones that waited
// meanwhile. q.mu held.
//
// A replay cut at maxQueueBacklog leaves the messages between its last
// one and the first live one undelivered: they are given up (counted in
// Stats.Lost), and the cursor moves over them once it reaches them
// (queueGroup.gapFrom).
func (n *Node) applyQueueCursorLocked(g *queueGroup, c store.Cursor, ok bool, replay []*queueFlight, truncated bool) {
	live := g.backlog
	g.backlog = nil
	switch {
	case ok && (len(live) == 0 || live[0].epoch == c.Epoch):
		n.rebaseQueueLocked(g, c.Epoch, c.Seq)
		g.saved = c.Seq
		if len(replay) > 0 {
			n.log.Info("queue group resumes from its cursor", "topic", g.key.topic, "group", g.key.group, "cursor", c.Seq, "replayed", len(replay))
		}
	case len(live) > 0:
		n.rebaseQueueLocked(g, live[0].epoch, live[0].seq-1)
		g.saved = 0
		replay = nil
	default:
		g.based = false // the next message bases it
		return
	}
	g.dirty = g.cursor != g.saved
	last := g.cursor
	for _, f := range replay {
		if f.seq > last {
			g.backlog = append(g.backlog, f)
			last = f.seq
		}
	}
	if truncated {
		g.gapFrom, g.gapTo = last+1, 0
		if len(live) > 0 {
			g.gapTo = live[0].seq - 1
		}
		n.log.Warn("queue group replay cut at its bound: later messages up to the live ones are given up", "topic", g.key.topic, "group", g.key.group, "from", g.gapFrom)
	}
	for _, f := range live {
		if f.epoch == g.epoch && f.seq > last {
			g.backlog = append(g.backlog, f)
			last = f.seq
		}
	}
	if len(g.backlog) > maxQueueBacklog {
		cut := len(g.backlog) - maxQueueBacklog
		for _, f := range g.backlog[:cut] {
			n.stats.lost.Add(1)
			n.ackQueueLocked(g, f.epoch, f.seq)
		}
		n.log.Warn("queue group backlog full: messages given up", "topic", g.key.topic, "group", g.key.group, "count", cut)
		g.backlog = g.backlog[cut:]
	}
	n.drainBacklogLocked(g, time.Now())
}

// saveQueueCursorsLocked saves the cursors that moved since they were last
// saved, one store call per group, on goroutines of the node's. q.mu held.
func (n *Node) saveQueueCursorsLocked() {
	for _, groups := range n.queueOwner.topics {
		for _, g := range groups {
			if !g.based || g.saving || !g.dirty || g.qc == nil {
				continue
			}
			g.saving, g.dirty = true, false
			c := store.Cursor{Epoch: g.epoch, Seq: g.cursor}
			n.storeWork.Add(1)
			go func() {
				defer n.storeWork.Done()
				ctx, cancel := context.WithTimeout(n.storeCtx, n.cfg.StoreTimeout)
				err := g.qc.SaveQueueCursor(ctx, g.key.topic, g.key.group, c)
				cancel()
				q := &n.queueOwner
				q.mu.Lock()
				defer q.mu.Unlock()
				g.saving = false
				if err != nil {
					g.dirty = true // again at the next reconciliation
					n.log.Warn("queue group cursor not saved", "topic", g.key.topic, "group", g.key.group, "err", err)
					return
				}
				if c.Epoch == g.epoch {
					g.saved = max(g.saved, c.Seq)
				}
				n.forgetGroupIfIdleLocked(g)
			}()
		}
	}
}
