package pubsub

import (
	"fmt"
	"sync"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/pubsub/topics"
)

// presenceOwners holds the presence sets of the topics this node owns.
// A set is made by the first report or watch that reaches the owner and
// holds, per origin node, the entries that node reported. It is not handed
// off: when the ring moves a topic, every node reports its entries again
// to the new owner (a Reset), and the old owner drops its set.
type presenceOwners struct {
	n *Node

	mu   sync.Mutex
	sets map[string]*presenceSet
}

// presenceSet is one topic's presence set on its owner.
type presenceSet struct {
	topic string
	rule  *PresenceRule

	mu       sync.Mutex
	origins  map[string]map[string]wire.PresenceEntry // origin node -> ref -> entry
	keys     map[string]int                           // metas per key
	count    int                                      // entries in all
	watchers map[string]struct{}                      // nodes sent every change
	dropped  bool                                     // no longer in the table
	// chains holds, per origin whose Reset spans several frames (More),
	// the refusals so far: the last frame's PresenceAck carries them all.
	chains map[string]*wire.PresenceAck
	// seq numbers the diffs sent to the watchers (PresenceDiff.Seq).
	seq uint64
}

func newPresenceOwners(n *Node) *presenceOwners {
	return &presenceOwners{n: n, sets: make(map[string]*presenceSet)}
}

// lockSet returns topic's set, made if need be, locked (s.mu) and not
// dropped: a set dropped meanwhile is replaced by a new one.
func (o *presenceOwners) lockSet(topic string, rule *PresenceRule) *presenceSet {
	for {
		s := o.set(topic, rule)
		s.mu.Lock()
		if !s.dropped {
			return s
		}
		s.mu.Unlock()
	}
}

// set returns topic's set, made if need be.
func (o *presenceOwners) set(topic string, rule *PresenceRule) *presenceSet {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.sets[topic]
	if s == nil {
		s = &presenceSet{
			topic:    topic,
			rule:     rule,
			origins:  make(map[string]map[string]wire.PresenceEntry),
			keys:     make(map[string]int),
			watchers: make(map[string]struct{}),
		}
		o.sets[topic] = s
	}
	return s
}

func (o *presenceOwners) all() []*presenceSet {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]*presenceSet, 0, len(o.sets))
	for _, s := range o.sets {
		out = append(out, s)
	}
	return out
}

// drop removes s from the table; s.mu held.
func (o *presenceOwners) drop(s *presenceSet) {
	o.mu.Lock()
	if o.sets[s.topic] == s {
		delete(o.sets, s.topic)
	}
	o.mu.Unlock()
	s.dropped = true
}

// check says whether this node may hold topic's set: a valid topic with
// presence on, that this node owns in its view.
func (o *presenceOwners) check(topic string) (*PresenceRule, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	rule := o.n.presenceRules.match(topic)
	if rule == nil {
		return nil, fmt.Errorf("%w: %q", ErrPresenceOff, topic)
	}
	owner, err := o.n.ringOwner(topic)
	if err != nil {
		return nil, err
	}
	if owner != o.n.name {
		return nil, fmt.Errorf("%w: %s does not own %q (%s does)", ErrNoOwner, o.n.name, topic, owner)
	}
	return rule, nil
}

// report applies an origin's report to the topic's set, passes what
// changed on to the watchers, and returns the acknowledgement.
func (o *presenceOwners) report(origin string, m *wire.PresenceReport) *wire.PresenceAck {
	ack := &wire.PresenceAck{ReqID: m.ReqID}
	rule, err := o.check(m.Topic)
	if err != nil {
		ack.Code, ack.Err = errorCode(err), err.Error()
		return ack
	}
	s := o.lockSet(m.Topic, rule)
	o.applyLocked(s, origin, m, ack)
	s.mu.Unlock()
	return ack
}

// applyLocked applies m to s and sends the change to the watchers. s.mu
// held, so that every watcher receives the changes in the order they were
// made.
func (o *presenceOwners) applyLocked(s *presenceSet, origin string, m *wire.PresenceReport, ack *wire.PresenceAck) {
	chain, inChain := s.chains[origin]
	if m.Reset {
		inChain = false // a new Reset starts over
	}
	cur, known := s.origins[origin]
	if !m.Reset && !known {
		// This owner holds nothing from origin (it took the topic over,
		// or restarted): the origin must send everything.
		ack.Resync = true
		return
	}
	diff := &wire.PresenceDiff{Topic: m.Topic, Origin: origin, Reset: m.Reset, More: m.More}
	if m.Reset {
		for _, e := range cur {
			s.removeLocked(e)
		}
		cur = make(map[string]wire.PresenceEntry, len(m.Joins))
		s.origins[origin] = cur
	}
	for _, ref := range m.Leaves {
		if e, ok := cur[ref]; ok {
			delete(cur, ref)
			s.removeLocked(e)
			diff.Leaves = append(diff.Leaves, ref)
		}
	}
	for _, e := range m.Joins {
		if old, ok := cur[e.Ref]; ok {
			// The same entry again (its data changed): it replaces the old.
			delete(cur, e.Ref)
			s.removeLocked(old)
		}
		if reason := s.refuseLocked(&e); reason != "" {
			ack.Refused = append(ack.Refused, e.Ref)
			ack.Reasons = append(ack.Reasons, reason)
			continue
		}
		e.Data = append([]byte(nil), e.Data...) // the body is the link's buffer
		cur[e.Ref] = e
		s.keys[e.Key]++
		s.count++
		diff.Joins = append(diff.Joins, e)
	}
	switch {
	case m.More:
		// Part of a Reset: its refusals go with the last part's answer.
		if !inChain {
			chain = &wire.PresenceAck{}
		}
		chain.Refused = append(chain.Refused, ack.Refused...)
		chain.Reasons = append(chain.Reasons, ack.Reasons...)
		ack.Refused, ack.Reasons = nil, nil
		if s.chains == nil {
			s.chains = make(map[string]*wire.PresenceAck)
		}
		s.chains[origin] = chain
	case inChain:
		ack.Refused = append(chain.Refused, ack.Refused...)
		ack.Reasons = append(chain.Reasons, ack.Reasons...)
		delete(s.chains, origin)
	}
	// Watchers gather a Reset's parts until the last: every part goes out,
	// even one that changed nothing.
	if m.Reset || m.More || inChain || len(diff.Joins) > 0 || len(diff.Leaves) > 0 {
		o.sendLocked(s, diff)
	}
}

// refuseLocked returns why e may not join s, or "".
func (s *presenceSet) refuseLocked(e *wire.PresenceEntry) string {
	switch {
	case e.Ref == "" || len(e.Ref) > MaxPresenceKeyLen:
		return "invalid ref"
	case topics.NameProblem(e.Key, MaxPresenceKeyLen) != "":
		return "invalid key: " + topics.NameProblem(e.Key, MaxPresenceKeyLen)
	case len(e.Data) > MaxPresenceData:
		return fmt.Sprintf("data of %d bytes exceeds %d", len(e.Data), MaxPresenceData)
	case s.count >= s.rule.MaxEntries:
		return fmt.Sprintf("topic %q has %d presence entries, the most allowed", s.topic, s.rule.MaxEntries)
	case s.keys[e.Key] >= s.rule.MaxMetasPerKey:
		return fmt.Sprintf("key %q has %d presence entries on %q, the most allowed", e.Key, s.rule.MaxMetasPerKey, s.topic)
	}
	return ""
}

func (s *presenceSet) removeLocked(e wire.PresenceEntry) {
	s.count--
	if s.keys[e.Key]--; s.keys[e.Key] <= 0 {
		delete(s.keys, e.Key)
	}
}

// sendLocked sends a change to every watcher of s: this node's own copy
// directly, the others in a PresenceDiff frame encoded once.
func (o *presenceOwners) sendLocked(s *presenceSet, diff *wire.PresenceDiff) {
	s.seq++
	diff.Seq = s.seq
	var frame []byte
	for w := range s.watchers {
		if w == o.n.name {
			o.n.presenceIn.diff(o.n.name, diff)
			continue
		}
		if frame == nil {
			frame = wire.EncodeFrame(diff)
		}
		if err := o.n.peers.sendTo(w, frame); err != nil {
			o.n.stats.sendErrors.Add(1)
			o.n.log.Debug("presence change not sent to a watcher", "topic", s.topic, "watcher", w, "err", err)
		}
	}
}

// watch makes node a watcher of topic and returns the set in frames of at
// most chunk entry bytes, the last one without More. The frames go out
// (or, for this node, are applied) under the set's lock, before any later
// change: send is called for each.
func (o *presenceOwners) watch(node string, m *wire.PresenceWatch, send func(*wire.PresenceSync)) {
	rule, err := o.check(m.Topic)
	if err != nil {
		send(&wire.PresenceSync{ReqID: m.ReqID, Topic: m.Topic, Code: errorCode(err), Err: err.Error()})
		return
	}
	s := o.lockSet(m.Topic, rule)
	s.watchers[node] = struct{}{}
	chunk := presenceChunk(o.n.cfg)
	cur := &wire.PresenceSync{ReqID: m.ReqID, Topic: m.Topic, Seq: s.seq}
	size := 0
	for origin, entries := range s.origins {
		for _, e := range entries {
			es := wire.PresenceEntrySize(&e) + len(origin)
			if size+es > chunk && len(cur.Entries) > 0 {
				cur.More = true
				send(cur)
				cur = &wire.PresenceSync{ReqID: m.ReqID, Topic: m.Topic, Seq: s.seq}
				size = 0
			}
			cur.Origins = append(cur.Origins, origin)
			cur.Entries = append(cur.Entries, e)
			size += es
		}
	}
	send(cur)
	s.mu.Unlock()
}

// unwatch stops sending topic's changes to node.
func (o *presenceOwners) unwatch(node, topic string) {
	o.mu.Lock()
	s := o.sets[topic]
	o.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	delete(s.watchers, node)
	if s.emptyLocked() {
		o.drop(s)
	}
	s.mu.Unlock()
}

// emptyLocked reports whether s holds nothing worth keeping: no watcher,
// no entry. Origins with no entry left are kept otherwise, so that their
// next joins need no Reset.
func (s *presenceSet) emptyLocked() bool { return len(s.watchers) == 0 && s.count == 0 }

// departed removes the entries of members that left or failed, telling the
// watchers, and stops sending to them.
func (o *presenceOwners) departed(gone []string) {
	for _, s := range o.all() {
		s.mu.Lock()
		for _, name := range gone {
			delete(s.watchers, name)
			cur, ok := s.origins[name]
			if !ok {
				continue
			}
			for _, e := range cur {
				s.removeLocked(e)
			}
			delete(s.origins, name)
			delete(s.chains, name)
			o.sendLocked(s, &wire.PresenceDiff{Topic: s.topic, Origin: name, Reset: true})
		}
		if s.emptyLocked() {
			o.drop(s)
		}
		s.mu.Unlock()
	}
}

// reconcile drops the sets of topics this node no longer owns in its view:
// their watchers and reporters move to the new owner by themselves.
func (o *presenceOwners) reconcile() {
	for _, s := range o.all() {
		owner, err := o.n.ringOwner(s.topic)
		s.mu.Lock()
		lost := err == nil && owner != o.n.name
		if lost || s.emptyLocked() {
			o.drop(s)
		}
		if lost {
			// Tell the watchers, which may not see the change yet, or ever
			// (the view came back to this node before theirs moved).
			for w := range s.watchers {
				if w == o.n.name {
					o.n.presenceIn.ownerDropped(o.n.name, s.topic)
				} else if err := o.n.peers.sendMsg(w, &wire.PresenceUnwatch{Topic: s.topic}); err != nil {
					o.n.stats.sendErrors.Add(1)
				}
			}
		}
		s.mu.Unlock()
	}
}
