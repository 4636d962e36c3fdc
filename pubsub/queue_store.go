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
//
// The store also holds what a group cannot keep in memory: a group whose
// backlog is full falls behind, and its messages are read back from the
// store in order, a page at a time, as its members work through what the
// owner holds (catchUpLocked).

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
		entries, err := n.readQueuePage(g, c.Epoch, after, stop-1, maxQueueBacklog-len(out))
		if err != nil {
			n.log.Warn("queue group replay stopped: store not read", "topic", g.key.topic, "group", g.key.group, "after", after, "err", err)
			break
		}
		if len(entries) == 0 {
			break
		}
		out = append(out, entries...)
		after = entries[len(entries)-1].seq
	}
	return out, len(out) >= maxQueueBacklog
}

// readQueuePage reads one page of a topic's messages after after, up to
// until, from the store, on the caller's goroutine.
func (n *Node) readQueuePage(g *queueGroup, epoch, after, until uint64, limit int) ([]*queueFlight, error) {
	var (
		page historyPage
		rerr error
	)
	n.readStoreHistoryNow(g.key.topic, historyPage{epoch: epoch, seq: until}, after, until, limit, func(p historyPage, err error) {
		page, rerr = p, err
	})
	if rerr != nil {
		return nil, rerr
	}
	out := make([]*queueFlight, 0, len(page.entries))
	for _, e := range page.entries {
		out = append(out, &queueFlight{epoch: epoch, seq: e.Seq, data: e.Data})
	}
	return out, nil
}

// applyQueueCursorLocked bases g on the cursor read from the store (ok)
// and queues the replayed messages. The live messages that waited meanwhile
// are in the store too: when there are any after the replay (or the
// replay stopped at its bound), the group is behind and reads them back
// from the store in order (catchUpLocked). q.mu held.
func (n *Node) applyQueueCursorLocked(g *queueGroup, c store.Cursor, ok bool, replay []*queueFlight, truncated bool) {
	live := g.backlog
	lastLive := g.lastSeen
	for _, f := range live {
		lastLive = max(lastLive, f.seq)
	}
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
		replay, truncated = nil, false
	default:
		g.based, g.backlog = false, nil // the next message bases it
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
	if truncated || lastLive > last {
		g.behind, g.replayAfter, g.lastSeen = true, last, max(lastLive, last)
	}
	n.drainBacklogLocked(g, time.Now())
}

// catchUpLocked reads back, on a goroutine of the node's, the next page of
// the messages a group that fell behind left in the store, and queues
// them; the group has caught up once it has read every message up to the
// newest its owner sequenced. Messages retention removed from the store
// meanwhile are given up (Stats.Lost). q.mu held.
func (n *Node) catchUpLocked(g *queueGroup) {
	g.replaying = true
	gen, epoch, after, until := g.gen, g.epoch, g.replayAfter, g.lastSeen
	limit := min(maxStoreReadPage, maxQueueBacklog-len(g.backlog))
	n.storeWork.Add(1)
	go func() {
		defer n.storeWork.Done()
		entries, err := n.readQueuePage(g, epoch, after, until, max(limit, 1))
		q := &n.queueOwner
		q.mu.Lock()
		defer q.mu.Unlock()
		if g.gen != gen {
			return // rebased meanwhile: this read is void
		}
		g.replaying = false
		if err != nil {
			n.log.Warn("queue group catch-up: store not read; trying again", "topic", g.key.topic, "group", g.key.group, "after", after, "err", err)
			return // the next drain or reconciliation tries again
		}
		next := after + 1
		for _, f := range entries {
			if f.seq > until {
				break
			}
			for ; next < f.seq; next++ {
				n.stats.lost.Add(1)
				n.ackQueueLocked(g, epoch, next)
			}
			g.backlog = append(g.backlog, f)
			g.replayAfter, next = f.seq, f.seq+1
		}
		if len(entries) == 0 {
			// Nothing left up to until: retention removed it.
			for s := after + 1; s <= until; s++ {
				n.stats.lost.Add(1)
				n.ackQueueLocked(g, epoch, s)
			}
			g.replayAfter = until
		}
		if g.replayAfter >= g.lastSeen {
			g.behind = false
			n.log.Info("queue group caught up", "topic", g.key.topic, "group", g.key.group, "at", g.replayAfter)
		}
		n.drainBacklogLocked(g, time.Now())
	}()
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
