package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"
)

// Presence, as Phoenix.Presence sends it: after a join of a topic whose
// broker tracks presence, the client receives
//
//	[jr,null,topic,"presence_state",{"alice":{"metas":[{"phx_ref":"r1",...}]}}]
//
// and then every change as
//
//	[jr,null,topic,"presence_diff",{"joins":{...},"leaves":{...}}]
//
// so that phoenix.js's Presence class (onSync, onJoin, onLeave) works
// unchanged. The gateway follows each topic's set once (one broker watch
// per topic, shared by the local clients) and encodes each diff once.

// Events and limits of presence.
const (
	eventPresenceState = "presence_state"
	eventPresenceDiff  = "presence_diff"

	// MaxPresenceMeta bounds the presence meta a client gives in its join
	// payload, in bytes of JSON.
	MaxPresenceMeta = 1 << 10
)

// Reasons of refused joins, for presence.
const (
	reasonPresencePayload = "invalid presence: want {\"key\": string, \"meta\": object}"
	reasonPresenceKey     = "invalid presence: the key of an authenticated connection is its user"
	reasonPresenceRef     = "invalid presence: phx_ref is reserved"
	reasonPresenceLimit   = "presence limit reached"
	reasonPresenceFailed  = "presence failed"
)

// PresenceMeta is one meta of a presence key: one client's join.
type PresenceMeta struct {
	// Ref identifies the meta in the cluster; clients read it as phx_ref.
	Ref string
	// Data is the meta the client gave (a JSON object, "{}" if none).
	Data json.RawMessage
}

// PresenceDiff is a change of a topic's presence set, by key. With Sync,
// Joins is the whole set, which replaces the one held (Leaves is empty).
type PresenceDiff struct {
	Sync   bool
	Joins  map[string][]PresenceMeta
	Leaves map[string][]PresenceMeta
}

// ErrPresenceLimit is wrapped by a Presencer's Track when the topic's set
// is full; the join is refused with the reason "presence limit reached".
var ErrPresenceLimit = errors.New("gateway: presence limit reached")

// Presencer is implemented by brokers that track presence (a ringcast
// node with Config.Presence does, through package broker; so does a
// MemoryBroker after EnablePresence). The gateway uses it for the topics
// it reports enabled. Its methods may be called concurrently.
type Presencer interface {
	// PresenceEnabled reports whether topic tracks presence.
	PresenceEnabled(topic string) bool
	// Track adds a meta for key, with data (a JSON object), to topic's
	// presence set, and returns once the set holds it, with the meta's
	// ref. untrack removes it; it never blocks and may be called more
	// than once.
	Track(ctx context.Context, topic, key string, data json.RawMessage) (ref string, untrack func(), err error)
	// WatchPresence follows topic's set: fn receives the whole set first
	// (Sync), before WatchPresence returns, then every change in order,
	// never concurrently; it must not block. After stop returns, fn is
	// not called.
	WatchPresence(ctx context.Context, topic string, fn func(PresenceDiff)) (stop func(), err error)
}

// presenceParams is what a join payload says of presence:
// {"presence": {"key": "alice", "meta": {"status": "away"}}}.
type presenceParams struct {
	key  string
	meta json.RawMessage // compact JSON object
}

// parsePresence reads the "presence" member of a join payload (raw may
// be empty: no presence options). It returns a refusal reason or "".
func parsePresence(raw json.RawMessage) (presenceParams, string) {
	if len(raw) == 0 || string(raw) == jsonNull {
		return presenceParams{}, ""
	}
	var p struct {
		Key  *string         `json:"key"`
		Meta json.RawMessage `json:"meta"`
	}
	if err := json.Unmarshal(raw, &p); err != nil || raw[0] != '{' {
		return presenceParams{}, reasonPresencePayload
	}
	out := presenceParams{}
	if p.Key != nil {
		out.key = *p.Key
		if out.key == "" {
			return presenceParams{}, reasonPresencePayload
		}
	}
	if len(p.Meta) > 0 && string(p.Meta) != jsonNull {
		if p.Meta[0] != '{' || len(p.Meta) > MaxPresenceMeta {
			return presenceParams{}, reasonPresencePayload
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(p.Meta, &fields); err != nil {
			return presenceParams{}, reasonPresencePayload
		}
		if _, ok := fields["phx_ref"]; ok {
			return presenceParams{}, reasonPresenceRef
		}
		if _, ok := fields["phx_ref_prev"]; ok {
			return presenceParams{}, reasonPresenceRef
		}
		var b bytes.Buffer
		if err := json.Compact(&b, p.Meta); err != nil {
			return presenceParams{}, reasonPresencePayload
		}
		out.meta = b.Bytes()
	}
	return out, ""
}

// joinPresence is a join's part in its topic's presence: the topic's
// shared watch, and the join's own meta if it is tracked.
type joinPresence struct {
	pt      *presenceTopic
	untrack func()
	ended   bool // guarded by pt.mu
	once    sync.Once
}

// presenceHub holds the gateway's presence watches, one per topic.
type presenceHub struct {
	h *Handler

	mu     sync.Mutex
	topics map[string]*presenceTopic
}

// presenceTopic is the gateway's copy of one topic's presence set and the
// joins that receive its changes.
type presenceTopic struct {
	hub   *presenceHub
	topic string
	ready chan struct{} // closed once the watch started or failed
	users int           // guarded by hub.mu: joins holding the watch
	stop  func()        // guarded by hub.mu

	mu      sync.Mutex
	err     error
	state   map[string]map[string]json.RawMessage // key -> ref -> meta
	members map[*join]struct{}
	// The presence_state payload is kept encoded by key, so that a join
	// copies it rather than encode the whole set: frags holds each key's
	// `"key":{"metas":[...]}`, keys the keys in order.
	frags map[string][]byte
	keys  []string
}

// presencer returns the broker's Presencer when it tracks topic.
func (h *Handler) presencer(topic string) Presencer {
	p, ok := h.broker.(Presencer)
	if !ok || !p.PresenceEnabled(topic) {
		return nil
	}
	return p
}

// startPresence tracks j's client (if it has a key) and takes j's topic's
// watch, before j joins; attachPresence then sends the set. It returns
// the refusal reason of a failure.
func (c *conn) startPresence(ctx context.Context, p Presencer, j *join, pp presenceParams) string {
	key := c.identity.User
	switch {
	case key != "" && pp.key != "" && pp.key != key:
		return reasonPresenceKey
	case key == "":
		key = pp.key
	}
	jp := &joinPresence{}
	if key != "" {
		meta := pp.meta
		if meta == nil {
			meta = json.RawMessage(emptyObject)
		}
		_, untrack, err := p.Track(ctx, j.topic, key, meta)
		if err != nil {
			c.h.log.Info("gateway: presence refused", "conn", c.id, "topic", j.topic, "err", err)
			if errors.Is(err, ErrPresenceLimit) {
				return reasonPresenceLimit
			}
			if ctx.Err() != nil {
				return reasonJoinTimeout
			}
			return reasonPresenceFailed
		}
		jp.untrack = untrack
	}
	pt, err := c.h.presence.acquire(ctx, p, j.topic)
	if err != nil {
		if jp.untrack != nil {
			jp.untrack()
		}
		c.h.log.Warn("gateway: presence watch failed", "topic", j.topic, "err", err)
		if ctx.Err() != nil {
			return reasonJoinTimeout
		}
		return reasonPresenceFailed
	}
	jp.pt = pt
	j.presence = jp
	return ""
}

// attachPresence makes j receive its topic's changes, after the set as it
// is now (presence_state). It is also how a join that replaces another
// on the same connection gets the set again under its new join_ref.
func (j *join) attachPresence() {
	jp := j.presence
	if jp == nil {
		return
	}
	pt := jp.pt
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if jp.ended {
		return
	}
	pt.members[j] = struct{}{}
	payload := pt.appendStateLocked(nil)
	c := j.conn
	c.mu.Lock()
	if c.joins[j.topic] == j {
		c.enqueueLocked(outItem{raw: appendJSONMessage(nil, j.joinRef, optString{}, j.topic, eventPresenceState, payload)})
	}
	c.mu.Unlock()
}

// endPresence removes j from its topic's presence: its meta leaves, and
// the watch ends with the topic's last local join. It never blocks on the
// broker and may be called more than once.
func (j *join) endPresence() {
	jp := j.presence
	if jp == nil {
		return
	}
	jp.once.Do(func() {
		pt := jp.pt
		pt.mu.Lock()
		jp.ended = true
		delete(pt.members, j)
		pt.mu.Unlock()
		if jp.untrack != nil {
			jp.untrack()
		}
		pt.hub.release(pt)
	})
}

func (ph *presenceHub) init(h *Handler) {
	ph.h = h
	ph.topics = make(map[string]*presenceTopic)
}

// acquire returns topic's watch, started if no local join holds it yet
// (concurrent first joins share the one in flight).
func (ph *presenceHub) acquire(ctx context.Context, p Presencer, topic string) (*presenceTopic, error) {
	ph.mu.Lock()
	pt := ph.topics[topic]
	creator := pt == nil
	if creator {
		pt = &presenceTopic{
			hub:     ph,
			topic:   topic,
			ready:   make(chan struct{}),
			state:   make(map[string]map[string]json.RawMessage),
			members: make(map[*join]struct{}),
			frags:   make(map[string][]byte),
		}
		ph.topics[topic] = pt
	}
	pt.users++
	ph.mu.Unlock()
	if creator {
		wctx, cancel := context.WithTimeout(ph.h.ctx, ph.h.opts.JoinTimeout)
		stop, err := p.WatchPresence(wctx, topic, pt.apply)
		cancel()
		ph.mu.Lock()
		pt.stop = stop
		if err != nil && ph.topics[topic] == pt {
			delete(ph.topics, topic) // the next join tries again
		}
		ph.mu.Unlock()
		pt.mu.Lock()
		pt.err = err
		pt.mu.Unlock()
		close(pt.ready)
	}
	select {
	case <-pt.ready:
	case <-ctx.Done():
		ph.release(pt)
		return nil, ctx.Err()
	}
	pt.mu.Lock()
	err := pt.err
	pt.mu.Unlock()
	if err != nil {
		ph.release(pt)
		return nil, err
	}
	return pt, nil
}

// release gives up one join's hold of pt; the last one stops the watch.
func (ph *presenceHub) release(pt *presenceTopic) {
	ph.mu.Lock()
	pt.users--
	var stop func()
	if pt.users == 0 {
		if ph.topics[pt.topic] == pt {
			delete(ph.topics, pt.topic)
		}
		stop, pt.stop = pt.stop, nil
	}
	ph.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// apply is the broker's watch callback: it updates the copy and sends the
// change, encoded once, to every member.
func (pt *presenceTopic) apply(d PresenceDiff) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	joins, leaves := d.Joins, d.Leaves
	if d.Sync {
		joins, leaves = pt.replaceLocked(d.Joins)
	} else {
		for key, metas := range leaves {
			for _, m := range metas {
				if refs := pt.state[key]; refs != nil {
					delete(refs, m.Ref)
					if len(refs) == 0 {
						delete(pt.state, key)
					}
				}
			}
			pt.touchLocked(key)
		}
		for key, metas := range joins {
			refs := pt.state[key]
			if refs == nil {
				refs = make(map[string]json.RawMessage, len(metas))
				pt.state[key] = refs
			}
			for _, m := range metas {
				refs[m.Ref] = m.Data
			}
			pt.touchLocked(key)
		}
	}
	if len(pt.members) == 0 || len(joins) == 0 && len(leaves) == 0 {
		return
	}
	payload := append([]byte(`{"joins":`), appendPresenceMetas(nil, joins)...)
	payload = append(payload, `,"leaves":`...)
	payload = appendPresenceMetas(payload, leaves)
	payload = append(payload, '}')
	b := newBroadcast(pt.topic, eventPresenceDiff, payload, false, 0, 0)
	for j := range pt.members {
		c := j.conn
		c.mu.Lock()
		if c.joins[j.topic] == j {
			c.enqueueLocked(outItem{bc: b, joinRef: j.joinRef})
		}
		c.mu.Unlock()
	}
}

// replaceLocked replaces the copy with set and returns what joined and
// what left.
func (pt *presenceTopic) replaceLocked(set map[string][]PresenceMeta) (joins, leaves map[string][]PresenceMeta) {
	joins, leaves = map[string][]PresenceMeta{}, map[string][]PresenceMeta{}
	next := make(map[string]map[string]json.RawMessage, len(set))
	for key, metas := range set {
		refs := make(map[string]json.RawMessage, len(metas))
		for _, m := range metas {
			refs[m.Ref] = m.Data
			if old, ok := pt.state[key][m.Ref]; !ok || !bytes.Equal(old, m.Data) {
				joins[key] = append(joins[key], m)
			}
		}
		next[key] = refs
	}
	for key, refs := range pt.state {
		for ref, data := range refs {
			if nd, ok := next[key][ref]; !ok || !bytes.Equal(nd, data) {
				leaves[key] = append(leaves[key], PresenceMeta{Ref: ref, Data: data})
			}
		}
	}
	pt.state = next
	clear(pt.frags)
	pt.keys = pt.keys[:0]
	for _, key := range slices.Sorted(maps.Keys(next)) {
		pt.touchLocked(key)
	}
	return joins, leaves
}

// touchLocked encodes key's metas again after they changed.
func (pt *presenceTopic) touchLocked(key string) {
	i, found := slices.BinarySearch(pt.keys, key)
	refs := pt.state[key]
	if len(refs) == 0 {
		if found {
			pt.keys = slices.Delete(pt.keys, i, i+1)
		}
		delete(pt.frags, key)
		return
	}
	if !found {
		pt.keys = slices.Insert(pt.keys, i, key)
	}
	pt.frags[key] = appendPresenceKey(pt.frags[key][:0], key, refs)
}

// appendStateLocked appends the presence_state payload.
func (pt *presenceTopic) appendStateLocked(dst []byte) []byte {
	n := 2
	for _, f := range pt.frags {
		n += len(f) + 1
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, '{')
	for i, key := range pt.keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, pt.frags[key]...)
	}
	return append(dst, '}')
}

// appendPresenceMap appends a set in Phoenix's form:
// {"key":{"metas":[{"phx_ref":"r",...}]}}, keys and refs sorted.
func appendPresenceMap(dst []byte, state map[string]map[string]json.RawMessage) []byte {
	dst = append(dst, '{')
	for i, key := range slices.Sorted(maps.Keys(state)) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendPresenceKey(dst, key, state[key])
	}
	return append(dst, '}')
}

// appendPresenceKey appends one key of a set: "key":{"metas":[...]},
// the metas in the order of their refs.
func appendPresenceKey(dst []byte, key string, refs map[string]json.RawMessage) []byte {
	dst = appendJSONString(dst, key)
	dst = append(dst, `:{"metas":[`...)
	for k, ref := range slices.Sorted(maps.Keys(refs)) {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = appendPresenceMeta(dst, ref, refs[ref])
	}
	return append(dst, "]}"...)
}

// appendPresenceMetas is appendPresenceMap for a diff's joins or leaves.
func appendPresenceMetas(dst []byte, p map[string][]PresenceMeta) []byte {
	state := make(map[string]map[string]json.RawMessage, len(p))
	for key, metas := range p {
		refs := make(map[string]json.RawMessage, len(metas))
		for _, m := range metas {
			refs[m.Ref] = m.Data
		}
		state[key] = refs
	}
	return appendPresenceMap(dst, state)
}

// appendPresenceMeta appends the meta data with phx_ref first. Data that
// is not a JSON object (it came from elsewhere than a client's join) is
// kept under "data".
func appendPresenceMeta(dst []byte, ref string, data json.RawMessage) []byte {
	dst = append(dst, `{"phx_ref":`...)
	dst = appendJSONString(dst, ref)
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0 || string(data) == emptyObject:
	case data[0] == '{' && json.Valid(data):
		if inner := bytes.TrimSpace(data[1 : len(data)-1]); len(inner) > 0 {
			dst = append(dst, ',')
			dst = append(dst, inner...)
		}
	case json.Valid(data):
		dst = append(dst, `,"data":`...)
		dst = append(dst, data...)
	default:
		dst = append(dst, `,"data":`...)
		dst = appendJSONString(dst, string(data))
	}
	return append(dst, '}')
}
