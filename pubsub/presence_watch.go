package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// presenceAbsentGrace is how long a node that watches a topic keeps the
// entries of a live origin that a new owner's set does not hold yet: the
// origin reports them again to the new owner on its own (a Reset), which
// the owner passes on. Keeping them meanwhile spares the watchers a leave
// and a join of every entry at each change of owner.
const presenceAbsentGrace = 2 * time.Second

// ErrWatchStopped is returned by PresenceWatch.Next after Stop.
var ErrWatchStopped = errors.New("pubsub: presence watch stopped")

// presenceWatchers holds this node's copies of the presence sets of the
// topics it watches, one per topic whatever the number of watches.
type presenceWatchers struct {
	n *Node

	mu     sync.Mutex
	copies map[string]*presenceCopy
}

// presenceCopy is this node's copy of one topic's presence set.
type presenceCopy struct {
	topic string
	ready chan struct{} // closed once synced for the first time, or failed

	mu      sync.Mutex
	err     error  // why the first sync failed
	owner   string // the owner synced (or syncing) with
	synced  bool
	seq     uint64 // Seq of the last diff applied (or of the sync)
	stale   bool   // a change was lost, or a sync failed: sync again
	reqID   uint64 // watch request in flight; 0 if none
	parts   *wire.PresenceSync
	origins map[string]map[string]wire.PresenceEntry
	resets  map[string]map[string]wire.PresenceEntry // Resets under way (More)
	absent  map[string]time.Time                     // origins kept for presenceAbsentGrace
	watches map[*PresenceWatch]struct{}
	removed bool
}

func newPresenceWatchers(n *Node) *presenceWatchers {
	return &presenceWatchers{n: n, copies: make(map[string]*presenceCopy)}
}

func (pw *presenceWatchers) get(topic string) *presenceCopy {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.copies[topic]
}

func (pw *presenceWatchers) all() []*presenceCopy {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	out := make([]*presenceCopy, 0, len(pw.copies))
	for _, c := range pw.copies {
		out = append(out, c)
	}
	return out
}

// PresenceWatch follows a topic's presence set: the first diff Next
// returns is the whole set (Sync), then every change, in the order the
// topic's owner made them. Diffs wait in a bounded buffer
// (Config.SubscriptionBuffer); a watch that falls behind loses its buffer
// and gets the whole set again (Sync) instead. A PresenceWatch is safe for
// concurrent use, but diffs come out in order only to a single reader.
type PresenceWatch struct {
	node *Node
	copy *presenceCopy

	mu     sync.Mutex // after copy.mu
	queue  []PresenceDiff
	resync bool // the next diff is the whole set
	err    error
	notify chan struct{}
	done   chan struct{}
}

// WatchPresence starts following topic's presence set. It returns once
// this node holds the set (asked of the topic's owner, or already
// followed for another watch); Next then returns it first. Call Stop when
// done. It fails with ErrPresenceOff if no Config.Presence rule matches
// topic.
func (n *Node) WatchPresence(ctx context.Context, topic string) (*PresenceWatch, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	if n.presenceRules.match(topic) == nil {
		return nil, fmt.Errorf("%w: %q", ErrPresenceOff, topic)
	}
	if n.isClosed() {
		return nil, ErrClosed
	}
	pw := n.presenceIn
	w := &PresenceWatch{node: n, resync: true, notify: make(chan struct{}, 1), done: make(chan struct{})}
	for {
		pw.mu.Lock()
		c := pw.copies[topic]
		first := c == nil
		if first {
			c = &presenceCopy{
				topic:   topic,
				ready:   make(chan struct{}),
				origins: make(map[string]map[string]wire.PresenceEntry),
				watches: make(map[*PresenceWatch]struct{}),
			}
			pw.copies[topic] = c
		}
		pw.mu.Unlock()
		c.mu.Lock()
		if c.removed {
			c.mu.Unlock()
			continue
		}
		c.watches[w] = struct{}{}
		w.copy = c
		c.mu.Unlock()
		if first {
			pw.sync(c)
		}
		break
	}
	c := w.copy
	select {
	case <-c.ready:
	case <-ctx.Done():
		w.Stop()
		return nil, ctx.Err()
	case <-n.done:
		return nil, ErrClosed
	}
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		w.Stop()
		return nil, err
	}
	return w, nil
}

// Topic returns the watched topic.
func (w *PresenceWatch) Topic() string { return w.copy.topic }

// Done is closed when the watch ends: Stop, or the node closing.
func (w *PresenceWatch) Done() <-chan struct{} { return w.done }

// Next returns the next diff, waiting for one until ctx is done. After
// Stop it returns ErrWatchStopped, after the node closed ErrClosed.
func (w *PresenceWatch) Next(ctx context.Context) (PresenceDiff, error) {
	for {
		w.mu.Lock()
		switch {
		case w.err != nil:
			err := w.err
			w.mu.Unlock()
			return PresenceDiff{}, err
		case w.resync:
			w.mu.Unlock()
			if d, ok := w.takeSync(); ok {
				return d, nil
			}
			continue
		case len(w.queue) > 0:
			d := w.queue[0]
			w.queue[0] = PresenceDiff{}
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return d, nil
		}
		w.mu.Unlock()
		select {
		case <-w.notify:
		case <-ctx.Done():
			return PresenceDiff{}, ctx.Err()
		}
	}
}

// takeSync returns the whole set as a Sync diff and empties the queue,
// whose diffs the set already holds.
func (w *PresenceWatch) takeSync() (PresenceDiff, bool) {
	c := w.copy
	c.mu.Lock()
	defer c.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.resync || w.err != nil {
		return PresenceDiff{}, false
	}
	w.resync = false
	clear(w.queue)
	w.queue = w.queue[:0]
	return PresenceDiff{Topic: c.topic, Sync: true, Joins: c.presenceLocked()}, true
}

// Stop ends the watch. It is idempotent.
func (w *PresenceWatch) Stop() {
	if w.end(ErrWatchStopped) {
		w.node.presenceIn.release(w)
	}
}

func (w *PresenceWatch) end(err error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return false
	}
	w.err = err
	w.queue = nil
	close(w.done)
	w.wakeLocked()
	return true
}

func (w *PresenceWatch) wakeLocked() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// push queues d; a full queue is dropped for a Sync. c.mu held.
func (w *PresenceWatch) push(d PresenceDiff) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil || w.resync {
		return
	}
	if len(w.queue) >= w.node.cfg.SubscriptionBuffer {
		clear(w.queue)
		w.queue = w.queue[:0]
		w.resync = true
	} else {
		w.queue = append(w.queue, d)
	}
	w.wakeLocked()
}

// release detaches w from its copy; the last watch of a topic stops
// following it.
func (pw *presenceWatchers) release(w *PresenceWatch) {
	c := w.copy
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.watches, w)
	if len(c.watches) > 0 || c.removed {
		c.mu.Unlock()
		return
	}
	c.removed = true
	owner, synced := c.owner, c.synced || c.reqID != 0
	if c.reqID != 0 {
		pw.n.pending.cancel(c.reqID)
		c.reqID = 0
	}
	c.mu.Unlock()
	pw.mu.Lock()
	if pw.copies[c.topic] == c {
		delete(pw.copies, c.topic)
	}
	pw.mu.Unlock()
	if !synced || owner == "" {
		return
	}
	if owner == pw.n.name {
		pw.n.presenceOwners.unwatch(pw.n.name, c.topic)
	} else if err := pw.n.peers.sendMsg(owner, &wire.PresenceUnwatch{Topic: c.topic}); err != nil {
		pw.n.log.Debug("presence unwatch not sent", "topic", c.topic, "owner", owner, "err", err)
	}
}

// sync asks the topic's owner, in this node's view, for its set.
func (pw *presenceWatchers) sync(c *presenceCopy) {
	n := pw.n
	owner, err := n.ringOwner(c.topic)
	c.mu.Lock()
	if c.removed || c.reqID != 0 {
		c.mu.Unlock()
		return
	}
	if err != nil {
		pw.failLocked(c, err)
		c.mu.Unlock()
		return
	}
	c.owner, c.parts = owner, nil
	if owner == n.name {
		c.reqID = 1 // a local request: no frame, answered below
		c.mu.Unlock()
		n.presenceOwners.watch(n.name, &wire.PresenceWatch{ReqID: 1, Topic: c.topic}, func(m *wire.PresenceSync) {
			pw.part(n.name, m)
		})
		return
	}
	var id uint64 // guarded by c.mu
	id = n.pending.add(owner, n.cfg.RequestTimeout, func(_ string, _ wire.Message, err error) {
		// A reply was applied by part, which cancels the request: only a
		// failure comes here.
		c.mu.Lock()
		if err != nil && c.reqID == id {
			c.reqID = 0
			pw.failLocked(c, err)
		}
		c.mu.Unlock()
	})
	c.reqID = id
	c.mu.Unlock()
	if err := n.peers.sendMsg(owner, &wire.PresenceWatch{ReqID: id, Topic: c.topic}); err != nil {
		n.pending.cancel(id)
		c.mu.Lock()
		if c.reqID == id {
			c.reqID = 0
			pw.failLocked(c, err)
		}
		c.mu.Unlock()
	}
}

// failLocked records a failed sync: the first one fails the watches
// waiting for it; later ones are retried by reconcile.
func (pw *presenceWatchers) failLocked(c *presenceCopy, err error) {
	if c.synced {
		c.stale = true
		pw.n.log.Debug("presence sync failed; will retry", "topic", c.topic, "err", err)
		return
	}
	select {
	case <-c.ready:
	default:
		c.err = err
		close(c.ready)
	}
	for w := range c.watches {
		w.end(err)
	}
	c.watches = map[*PresenceWatch]struct{}{}
	c.removed = true
	pw.mu.Lock()
	if pw.copies[c.topic] == c {
		delete(pw.copies, c.topic)
	}
	pw.mu.Unlock()
}

// part applies one PresenceSync frame: parts gather until the last,
// which replaces the copy.
func (pw *presenceWatchers) part(from string, m *wire.PresenceSync) {
	c := pw.get(m.Topic)
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reqID != m.ReqID || c.owner != from || m.ReqID == 0 {
		return
	}
	if m.Code != 0 {
		c.reqID = 0
		if from != pw.n.name {
			pw.n.pending.cancel(m.ReqID)
		}
		pw.failLocked(c, codeError(m.Code, m.Err))
		return
	}
	if c.parts == nil {
		c.parts = &wire.PresenceSync{}
	}
	c.parts.Origins = append(c.parts.Origins, m.Origins...)
	for _, e := range m.Entries {
		e.Data = append([]byte(nil), e.Data...)
		c.parts.Entries = append(c.parts.Entries, e)
	}
	if m.More {
		return
	}
	if from != pw.n.name {
		pw.n.pending.cancel(m.ReqID)
	}
	c.reqID, c.seq, c.stale = 0, m.Seq, false
	next := make(map[string]map[string]wire.PresenceEntry)
	for i, e := range c.parts.Entries {
		o := c.parts.Origins[i]
		if next[o] == nil {
			next[o] = make(map[string]wire.PresenceEntry)
		}
		next[o][e.Ref] = e
	}
	c.parts = nil
	for o := range next {
		delete(c.absent, o)
	}
	if c.synced {
		// A new owner: keep the entries of live origins it does not hold
		// yet; they are on their way to it.
		view := pw.n.view()
		now := time.Now()
		for o, entries := range c.origins {
			if _, ok := next[o]; ok || len(entries) == 0 {
				continue
			}
			if _, alive := view.Member(o); !alive {
				continue
			}
			next[o] = entries
			if _, ok := c.absent[o]; !ok {
				if c.absent == nil {
					c.absent = make(map[string]time.Time)
				}
				c.absent[o] = now
			}
		}
	}
	joins, leaves := diffOrigins(c.origins, next)
	c.origins, c.resets = next, nil
	first := !c.synced
	c.synced = true
	if first {
		close(c.ready)
		return // every watch starts with a Sync
	}
	c.emitLocked(joins, leaves)
}

// diff applies an owner's change to the copy of its topic. A diff that
// does not follow the last one (a frame was lost when a link broke) makes
// the copy sync again with the owner: the watches then see what changed
// meanwhile, and nothing else.
func (pw *presenceWatchers) diff(from string, m *wire.PresenceDiff) {
	c := pw.get(m.Topic)
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.owner != from || !c.synced || c.reqID != 0 {
		// Not the owner followed, or a sync under way, which holds this.
		c.mu.Unlock()
		return
	}
	if m.Seq != c.seq+1 {
		pw.n.log.Info("presence change lost; syncing again", "topic", c.topic, "owner", from, "want", c.seq+1, "got", m.Seq)
		c.stale = true
		c.mu.Unlock()
		pw.sync(c)
		return
	}
	c.seq = m.Seq
	c.applyLocked(m)
	c.mu.Unlock()
}

// applyLocked applies one diff that follows the last. c.mu held.
func (c *presenceCopy) applyLocked(m *wire.PresenceDiff) {
	if m.Reset {
		if c.resets == nil {
			c.resets = make(map[string]map[string]wire.PresenceEntry)
		}
		c.resets[m.Origin] = make(map[string]wire.PresenceEntry, len(m.Joins))
	}
	if r, ok := c.resets[m.Origin]; ok {
		// A Reset under way: gather its parts, then replace the origin's
		// entries with them at once.
		for _, e := range m.Joins {
			e.Data = append([]byte(nil), e.Data...)
			r[e.Ref] = e
		}
		for _, ref := range m.Leaves {
			delete(r, ref)
		}
		if m.More {
			return
		}
		delete(c.resets, m.Origin)
		delete(c.absent, m.Origin)
		next := map[string]map[string]wire.PresenceEntry{m.Origin: r}
		prev := map[string]map[string]wire.PresenceEntry{m.Origin: c.origins[m.Origin]}
		joins, leaves := diffOrigins(prev, next)
		if len(r) == 0 {
			delete(c.origins, m.Origin)
		} else {
			c.origins[m.Origin] = r
		}
		c.emitLocked(joins, leaves)
		return
	}
	cur := c.origins[m.Origin]
	if cur == nil {
		cur = make(map[string]wire.PresenceEntry)
		c.origins[m.Origin] = cur
	}
	joins, leaves := Presence{}, Presence{}
	for _, ref := range m.Leaves {
		if e, ok := cur[ref]; ok {
			delete(cur, ref)
			leaves[e.Key] = append(leaves[e.Key], meta(m.Origin, e))
		}
	}
	for _, e := range m.Joins {
		e.Data = append([]byte(nil), e.Data...)
		if old, ok := cur[e.Ref]; ok {
			leaves[old.Key] = append(leaves[old.Key], meta(m.Origin, old))
		}
		cur[e.Ref] = e
		joins[e.Key] = append(joins[e.Key], meta(m.Origin, e))
	}
	if len(cur) == 0 {
		delete(c.origins, m.Origin)
	}
	c.emitLocked(joins, leaves)
}

// dropOrigins removes the entries of members that left or failed, without
// waiting for the owner to say so (the owner may be one of them).
func (pw *presenceWatchers) dropOrigins(gone []string) {
	for _, c := range pw.all() {
		c.mu.Lock()
		if c.synced {
			prev := make(map[string]map[string]wire.PresenceEntry)
			for _, name := range gone {
				if e, ok := c.origins[name]; ok {
					prev[name] = e
					delete(c.origins, name)
				}
				delete(c.absent, name)
				delete(c.resets, name)
			}
			joins, leaves := diffOrigins(prev, nil)
			c.emitLocked(joins, leaves)
		}
		c.mu.Unlock()
	}
}

// reconcile syncs every copy whose owner changed in this node's view, or
// whose last sync failed, and drops the entries kept for origins the owner
// has not reported within presenceAbsentGrace.
func (pw *presenceWatchers) reconcile() {
	now := time.Now()
	for _, c := range pw.all() {
		owner, err := pw.n.ringOwner(c.topic)
		c.mu.Lock()
		resync := c.synced && c.reqID == 0 && err == nil && (owner != c.owner || c.stale)
		if c.synced && c.reqID == 0 && !resync {
			prev := make(map[string]map[string]wire.PresenceEntry)
			for o, at := range c.absent {
				if now.Sub(at) >= presenceAbsentGrace {
					delete(c.absent, o)
					if e, ok := c.origins[o]; ok {
						prev[o] = e
						delete(c.origins, o)
					}
				}
			}
			joins, leaves := diffOrigins(prev, nil)
			c.emitLocked(joins, leaves)
		}
		c.mu.Unlock()
		if resync {
			pw.sync(c)
		}
	}
}

// ownerDropped handles an owner's word that it no longer holds topic's
// set (it lost the topic in its view): the copy syncs again, with the
// owner of this node's view, at the next reconcile.
func (pw *presenceWatchers) ownerDropped(from, topic string) {
	c := pw.get(topic)
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.owner == from && c.synced && c.reqID == 0 {
		c.owner = ""
	}
	c.mu.Unlock()
}

// snapshot returns the copy of topic's set when this node follows it.
func (pw *presenceWatchers) snapshot(topic string) (Presence, bool) {
	c := pw.get(topic)
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced || c.removed {
		return nil, false
	}
	return c.presenceLocked(), true
}

// close ends every watch with ErrClosed.
func (pw *presenceWatchers) close() {
	for _, c := range pw.all() {
		c.mu.Lock()
		for w := range c.watches {
			w.end(ErrClosed)
		}
		c.mu.Unlock()
	}
}

// emitLocked queues a change on every watch of c. c.mu held.
func (c *presenceCopy) emitLocked(joins, leaves Presence) {
	if len(joins) == 0 && len(leaves) == 0 {
		return
	}
	for w := range c.watches {
		w.push(PresenceDiff{Topic: c.topic, Joins: joins, Leaves: leaves})
	}
}

// presenceLocked returns the set as a Presence. c.mu held.
func (c *presenceCopy) presenceLocked() Presence {
	p := Presence{}
	for o, entries := range c.origins {
		for _, e := range entries {
			p[e.Key] = append(p[e.Key], meta(o, e))
		}
	}
	return p
}

func meta(origin string, e wire.PresenceEntry) Meta {
	return Meta{Ref: e.Ref, Node: origin, Data: e.Data}
}

// diffOrigins returns what joined and what left between two copies.
func diffOrigins(prev, next map[string]map[string]wire.PresenceEntry) (joins, leaves Presence) {
	joins, leaves = Presence{}, Presence{}
	for o, entries := range prev {
		for ref, e := range entries {
			if ne, ok := next[o][ref]; ok && ne.Key == e.Key && string(ne.Data) == string(e.Data) {
				continue
			}
			leaves[e.Key] = append(leaves[e.Key], meta(o, e))
		}
	}
	for o, entries := range next {
		for ref, e := range entries {
			if pe, ok := prev[o][ref]; ok && pe.Key == e.Key && string(pe.Data) == string(e.Data) {
				continue
			}
			joins[e.Key] = append(joins[e.Key], meta(o, e))
		}
	}
	return joins, leaves
}
