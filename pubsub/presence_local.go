package pubsub

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// presenceLocal holds the presence entries tracked on this node and
// reports their changes to each topic's owner: batched (the changes made
// while a report is in flight go in the next one, one report per topic at
// a time) and on change only. After the owner changed, or a report failed,
// the next report is a Reset carrying every local entry of the topic: the
// new owner rebuilds the set from the Resets of every node, so the set
// survives a change of owner without being part of the hand-off.
type presenceLocal struct {
	n      *Node
	prefix string // this run's ref prefix (newIncarnation)

	mu        sync.Mutex
	next      uint64
	topics    map[string]*presenceOutTopic
	scheduled bool // a flush is scheduled on the node's timers
}

// presenceOutTopic is one topic's local entries and its reporting state.
type presenceOutTopic struct {
	topic   string
	entries map[string]*Tracked // by ref
	// owner is the node that holds every entry reported so far; "" when
	// the next report must be a Reset.
	owner    string
	joins    []*Tracked // tracked, not reported yet
	leaves   []string   // refs untracked, not reported yet
	dirty    bool       // something to report
	inflight bool       // a report awaits its PresenceAck
	// reported is set once a report was sent: an owner may hold entries
	// of this node, so an empty Reset is sent rather than nothing.
	reported bool
}

func newPresenceLocal(n *Node) *presenceLocal {
	return &presenceLocal{n: n, prefix: newIncarnation(), topics: make(map[string]*presenceOutTopic)}
}

// newRef returns a ref that no other entry of the cluster has.
func (p *presenceLocal) newRef() string {
	p.mu.Lock()
	p.next++
	id := p.next
	p.mu.Unlock()
	return p.prefix + "." + strconv.FormatUint(id, 36)
}

func (p *presenceLocal) track(t *Tracked) {
	p.mu.Lock()
	ot := p.topics[t.topic]
	if ot == nil {
		ot = &presenceOutTopic{topic: t.topic, entries: make(map[string]*Tracked)}
		p.topics[t.topic] = ot
	}
	ot.entries[t.ref] = t
	// A Reset reports every entry; the joins matter for the reports that
	// follow one (including a Reset in flight, which may not hold t).
	ot.joins = append(ot.joins, t)
	ot.dirty = true
	p.scheduleLocked()
	p.mu.Unlock()
}

func (p *presenceLocal) untrack(t *Tracked) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ot := p.topics[t.topic]
	if t.removed || ot == nil || ot.entries[t.ref] != t {
		return
	}
	t.removed = true
	delete(ot.entries, t.ref)
	if i := indexTracked(ot.joins, t); i >= 0 {
		ot.joins = append(ot.joins[:i], ot.joins[i+1:]...)
	}
	if t.sent {
		ot.leaves = append(ot.leaves, t.ref)
	}
	ot.dirty = true
	p.scheduleLocked()
}

func indexTracked(l []*Tracked, t *Tracked) int {
	for i, x := range l {
		if x == t {
			return i
		}
	}
	return -1
}

// scheduleLocked runs flush soon on the node's timers goroutine, once
// however many changes ask for it.
func (p *presenceLocal) scheduleLocked() {
	if p.scheduled || p.n.isClosed() {
		return
	}
	p.scheduled = true
	p.n.timers.after(0, p.flush)
}

// presenceBatch is one report on its way: the frames, the owner, and the
// entries it carries, whose Track calls its acknowledgement settles.
type presenceBatch struct {
	topic  string
	owner  string
	reset  bool
	frames []*wire.PresenceReport
	joined []*Tracked
}

// flush sends a report for every topic with changes and none in flight.
func (p *presenceLocal) flush() {
	var batches []*presenceBatch
	p.mu.Lock()
	p.scheduled = false
	for _, ot := range p.topics {
		if !ot.dirty || ot.inflight {
			continue
		}
		if b := p.batchLocked(ot); b != nil {
			batches = append(batches, b)
		}
	}
	p.mu.Unlock()
	for _, b := range batches {
		p.send(b)
	}
}

// batchLocked builds the next report of ot, or returns nil when there is
// nothing to send or no owner to send it to (reconcile tries again).
func (p *presenceLocal) batchLocked(ot *presenceOutTopic) *presenceBatch {
	owner, err := p.n.ringOwner(ot.topic)
	if err != nil {
		return nil
	}
	if owner != ot.owner {
		ot.owner = ""
	}
	b := &presenceBatch{topic: ot.topic, owner: owner, reset: ot.owner == ""}
	if b.reset {
		if len(ot.entries) == 0 && !ot.reported {
			// Nothing tracked, nothing ever reported: no owner holds
			// anything from this node.
			ot.dirty = false
			delete(p.topics, ot.topic)
			return nil
		}
		b.joined = make([]*Tracked, 0, len(ot.entries))
		for _, t := range ot.entries {
			b.joined = append(b.joined, t)
		}
	} else {
		b.joined = ot.joins
	}
	for _, t := range b.joined {
		t.sent = true
	}
	leaves := ot.leaves
	ot.joins, ot.leaves, ot.dirty, ot.inflight, ot.reported = nil, nil, false, true, true
	b.frames = reportFrames(ot.topic, p.n.name, b.reset, b.joined, leaves, presenceChunk(p.n.cfg))
	return b
}

// presenceChunk is the most entry bytes one presence frame carries: well
// inside the links' frame limit.
func presenceChunk(cfg Config) int { return min(256<<10, linkFrameLimit(cfg)/2) }

// reportFrames splits a report into frames of at most chunk entry bytes:
// the first is the Reset, if any, and every frame but the last has More.
func reportFrames(topic, origin string, reset bool, joins []*Tracked, leaves []string, chunk int) []*wire.PresenceReport {
	cur := &wire.PresenceReport{Topic: topic, Origin: origin, Reset: reset, Leaves: leaves}
	frames := []*wire.PresenceReport{cur}
	size := 0
	for _, t := range joins {
		e := wire.PresenceEntry{Ref: t.ref, Key: t.key, Data: t.data}
		es := wire.PresenceEntrySize(&e)
		if size+es > chunk && len(cur.Joins) > 0 {
			cur.More = true
			cur = &wire.PresenceReport{Topic: topic, Origin: origin}
			frames = append(frames, cur)
			size = 0
		}
		cur.Joins = append(cur.Joins, e)
		size += es
	}
	return frames
}

// send hands a batch to the owner: applied here when this node owns the
// topic, sent otherwise, the last frame carrying the request id.
func (p *presenceLocal) send(b *presenceBatch) {
	n := p.n
	if b.owner == n.name {
		var ack *wire.PresenceAck
		for _, f := range b.frames {
			ack = n.presenceOwners.report(n.name, f)
			if ack.Code != 0 {
				break
			}
		}
		p.settle(b, ack, nil)
		return
	}
	last := b.frames[len(b.frames)-1]
	last.ReqID = n.pending.add(b.owner, n.cfg.RequestTimeout, func(_ string, msg wire.Message, err error) {
		ack, _ := msg.(*wire.PresenceAck)
		p.settle(b, ack, err)
	})
	for _, f := range b.frames {
		if err := n.peers.sendMsg(b.owner, f); err != nil {
			n.pending.cancel(last.ReqID)
			p.settle(b, nil, err)
			return
		}
	}
}

// settle applies the owner's answer to a batch: the entries it refused are
// dropped and their Track calls fail; the others' Track calls return. A
// batch that failed, or an owner that asks for it, makes the next report
// a Reset (sent at the next reconcile, so that an unreachable owner is not
// asked in a loop).
func (p *presenceLocal) settle(b *presenceBatch, ack *wire.PresenceAck, err error) {
	if err == nil && ack != nil && ack.Code != 0 {
		err = codeError(ack.Code, ack.Err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ot := p.topics[b.topic]
	if ot == nil {
		return
	}
	ot.inflight = false
	if err != nil || ack == nil {
		if err == nil {
			err = ErrUnavailable
		}
		p.n.log.Debug("presence report failed; will report again", "topic", b.topic, "owner", b.owner, "err", err)
		ot.owner, ot.dirty = "", true
		return
	}
	refused := make(map[string]string, len(ack.Refused))
	for i, ref := range ack.Refused {
		refused[ref] = ack.Reasons[i]
	}
	for _, t := range b.joined {
		reason, isRefused := refused[t.ref]
		if isRefused && !t.removed {
			t.removed = true
			delete(ot.entries, t.ref)
			if t.settled {
				// Accepted once, refused by a new owner that other
				// nodes' entries reached first: it is no longer tracked.
				p.n.log.Warn("presence entry refused by the topic's new owner; no longer tracked",
					"topic", t.topic, "key", t.key, "ref", t.ref, "reason", reason)
			}
		}
		if t.settled {
			continue
		}
		if isRefused {
			t.err = fmt.Errorf("%w: %s", ErrPresenceLimit, reason)
		}
		t.settled = true
		close(t.acked)
	}
	if b.reset {
		ot.owner = b.owner
	}
	if ack.Resync {
		ot.owner, ot.dirty = "", true
	}
	if ot.dirty {
		p.scheduleLocked()
	} else if len(ot.entries) == 0 {
		delete(p.topics, b.topic)
	}
}

// reconcile makes the next report of every topic whose owner changed in
// this node's view a Reset to the new owner, and retries failed reports.
func (p *presenceLocal) reconcile() {
	p.mu.Lock()
	defer p.mu.Unlock()
	any := false
	for _, ot := range p.topics {
		owner, err := p.n.ringOwner(ot.topic)
		if err == nil && ot.owner != "" && owner != ot.owner {
			ot.owner = ""
			ot.joins, ot.leaves = nil, nil
			ot.dirty = true
		}
		any = any || ot.dirty && !ot.inflight
	}
	if any {
		p.scheduleLocked()
	}
}
