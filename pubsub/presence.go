package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/pubsub/topics"
)

// Presence: who is on a topic, across the cluster. The topic's owner holds
// the set (presence_owner.go); each node reports its own local entries to
// it (presence_local.go); nodes that watch the topic keep a copy that the
// owner's changes keep up to date (presence_watch.go).

// Defaults and limits of presence.
const (
	// DefaultPresenceMaxEntries bounds the entries of one topic's
	// presence set when PresenceRule.MaxEntries is zero.
	DefaultPresenceMaxEntries = 100_000
	// DefaultPresenceMaxMetas bounds the metas (entries) of one key of a
	// topic when PresenceRule.MaxMetasPerKey is zero.
	DefaultPresenceMaxMetas = 100
	// MaxPresenceKeyLen bounds a presence key, in bytes.
	MaxPresenceKeyLen = 255
	// MaxPresenceData bounds the data of one presence entry, in bytes.
	MaxPresenceData = 4 << 10
)

var (
	// ErrPresenceOff is returned by Track, WatchPresence and Presence for
	// a topic that no Config.Presence rule matches.
	ErrPresenceOff = errors.New("pubsub: presence is off for the topic")
	// ErrPresenceLimit is returned by Track when the topic's owner refused
	// the entry: the topic has MaxEntries entries, or the key has
	// MaxMetasPerKey metas.
	ErrPresenceLimit = errors.New("pubsub: presence limit reached")
	// ErrInvalidPresence is returned by Track for a key that is empty,
	// longer than MaxPresenceKeyLen or not valid UTF-8 without control
	// characters, or data longer than MaxPresenceData.
	ErrInvalidPresence = errors.New("pubsub: invalid presence")
)

// PresenceRule turns presence tracking on for the topics Pattern matches,
// with bounds. Pattern follows Durability.Pattern's syntax: an exact topic
// name, a prefix followed by "*" ("rooms:*", a namespace), or "*"; a topic
// follows its most specific rule.
type PresenceRule struct {
	Pattern string
	// MaxEntries bounds the entries (metas of every key) of one topic.
	// Default DefaultPresenceMaxEntries.
	MaxEntries int
	// MaxMetasPerKey bounds the entries of one key of a topic (a user's
	// connections). Default DefaultPresenceMaxMetas.
	MaxMetasPerKey int
}

// presenceRules are a node's PresenceRules, ordered for matching: exact
// names first, then patterns by decreasing prefix length.
type presenceRules []PresenceRule

func newPresenceRules(rules []PresenceRule) (presenceRules, error) {
	out := slices.Clone(rules)
	seen := make(map[string]bool, len(out))
	for i := range out {
		r := &out[i]
		p := r.Pattern
		if err := checkPattern("Presence", p); err != nil {
			return nil, err
		}
		switch {
		case r.MaxEntries < 0 || r.MaxMetasPerKey < 0:
			return nil, fmt.Errorf("%w: Presence pattern %q: negative bound", ErrInvalidConfig, p)
		case seen[p]:
			return nil, fmt.Errorf("%w: Presence pattern %q given twice", ErrInvalidConfig, p)
		}
		seen[p] = true
		if r.MaxEntries == 0 {
			r.MaxEntries = DefaultPresenceMaxEntries
		}
		if r.MaxMetasPerKey == 0 {
			r.MaxMetasPerKey = DefaultPresenceMaxMetas
		}
	}
	slices.SortStableFunc(out, func(a, b PresenceRule) int { return comparePatterns(a.Pattern, b.Pattern) })
	return out, nil
}

// match returns the rule topic follows, or nil (presence off).
func (rs presenceRules) match(topic string) *PresenceRule {
	for i := range rs {
		if patternMatches(rs[i].Pattern, topic) {
			return &rs[i]
		}
	}
	return nil
}

// PresenceEnabled reports whether the node tracks presence for topic
// (a Config.Presence rule matches it).
func (n *Node) PresenceEnabled(topic string) bool { return n.presenceRules.match(topic) != nil }

// Meta is one presence of a key on a topic: one connection, device or
// subscriber of a user.
type Meta struct {
	// Ref identifies the entry in the cluster; it is unique and never
	// reused (Phoenix's phx_ref).
	Ref string
	// Node is the node where the entry was tracked.
	Node string
	// Data is what the tracker gave (a JSON object for the gateway). It
	// is shared: do not modify it.
	Data []byte
}

// Presence is a topic's presence set, or a part of it: the metas of each
// key.
type Presence map[string][]Meta

// Len returns the number of metas of every key.
func (p Presence) Len() int {
	n := 0
	for _, m := range p {
		n += len(m)
	}
	return n
}

// PresenceDiff is one change of a topic's presence set, as a watcher
// receives it: the metas that joined and the metas that left, by key. A
// meta whose data changed leaves and joins with the same Ref.
type PresenceDiff struct {
	Topic string
	// Sync says that Joins is the whole set, and that the watcher must
	// replace what it holds with it (Leaves is empty): the first diff of a
	// watch is one, and so is the diff that follows an overflow of the
	// watch's buffer.
	Sync   bool
	Joins  Presence
	Leaves Presence
}

// Tracked is one presence entry tracked by this node (Track,
// WithPresence). It stays in the topic's presence set until Untrack, or
// until the node leaves or fails.
type Tracked struct {
	node  *Node
	topic string
	key   string
	ref   string
	data  []byte

	// Guarded by the node's presenceLocal.mu.
	acked   chan struct{} // closed once the owner accepted or refused the entry
	err     error         // why the owner refused it
	settled bool
	removed bool
	sent    bool // part of a report already: untracking it needs a leave
}

// Ref returns the entry's reference, unique in the cluster.
func (t *Tracked) Ref() string { return t.ref }

// Key returns the entry's key.
func (t *Tracked) Key() string { return t.key }

// Topic returns the entry's topic.
func (t *Tracked) Topic() string { return t.topic }

// Untrack removes the entry from the topic's presence set: watchers see it
// leave. It never blocks and is idempotent.
func (t *Tracked) Untrack() {
	if t != nil {
		t.node.presenceOut.untrack(t)
	}
}

// Track adds an entry for key, with data, to topic's presence set, and
// returns once the topic's owner holds it: from then on, Presence and
// watchers on every node see it, until Untrack or until this node leaves
// the cluster or is declared failed (its entries are then removed by the
// owner). A key may have several entries (a user's connections), each
// with its own Ref. Track fails with ErrPresenceOff if no Config.Presence
// rule matches topic, ErrInvalidPresence for a bad key or data, and
// ErrPresenceLimit if the owner refused the entry for the rule's bounds.
// If ctx ends first, the entry is removed and ctx's error returned.
func (n *Node) Track(ctx context.Context, topic, key string, data []byte) (*Tracked, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	if n.presenceRules.match(topic) == nil {
		return nil, fmt.Errorf("%w: %q", ErrPresenceOff, topic)
	}
	if problem := topics.NameProblem(key, MaxPresenceKeyLen); problem != "" {
		return nil, fmt.Errorf("%w: key: %s", ErrInvalidPresence, problem)
	}
	if len(data) > MaxPresenceData {
		return nil, fmt.Errorf("%w: data of %d bytes exceeds %d", ErrInvalidPresence, len(data), MaxPresenceData)
	}
	if n.isClosed() {
		return nil, ErrClosed
	}
	t := &Tracked{node: n, topic: topic, key: key, ref: n.presenceOut.newRef(), data: slices.Clone(data), acked: make(chan struct{})}
	n.presenceOut.track(t)
	select {
	case <-t.acked:
	case <-ctx.Done():
		t.Untrack()
		return nil, ctx.Err()
	case <-n.done:
		return nil, ErrClosed
	}
	n.presenceOut.mu.Lock()
	err := t.err
	n.presenceOut.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return t, nil
}

// WithPresence tracks key, with data, in the topic's presence set for as
// long as the subscription lasts (see Track): Subscribe fails if Track
// does, and the entry is removed when the subscription ends.
func WithPresence(key string, data []byte) SubscribeOption {
	return func(o *subscribeOptions) { o.presence = &presenceOption{key: key, data: data} }
}

type presenceOption struct {
	key  string
	data []byte
}

// Presence returns topic's presence set, as its owner holds it. On a node
// that watches the topic it is the node's copy, up to date with every
// change the owner has sent; otherwise the owner is asked.
func (n *Node) Presence(ctx context.Context, topic string) (Presence, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	if n.presenceRules.match(topic) == nil {
		return nil, fmt.Errorf("%w: %q", ErrPresenceOff, topic)
	}
	if p, ok := n.presenceIn.snapshot(topic); ok {
		return p, nil
	}
	w, err := n.WatchPresence(ctx, topic)
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	d, err := w.Next(ctx)
	if err != nil {
		return nil, err
	}
	return d.Joins, nil
}

// newIncarnation returns a random prefix for the refs of this run of the
// node, so that refs stay unique when a node restarts under its name.
func newIncarnation() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// The presence frames from peers (see inbound.go's table).

func (n *Node) onPresenceReport(from string, m *wire.PresenceReport) {
	origin := m.Origin
	if origin == "" {
		origin = from
	}
	ack := n.presenceOwners.report(origin, m)
	if m.ReqID == 0 {
		return
	}
	if err := n.peers.sendMsg(from, ack); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

func (n *Node) onPresenceWatch(from string, m *wire.PresenceWatch) {
	n.presenceOwners.watch(from, m, func(s *wire.PresenceSync) {
		if err := n.peers.sendMsg(from, s); err != nil {
			n.stats.sendErrors.Add(1)
		}
	})
}

// onPresenceUnwatch handles both directions: a watcher that stops, and an
// owner that no longer holds the topic's set.
func (n *Node) onPresenceUnwatch(from string, m *wire.PresenceUnwatch) {
	n.presenceOwners.unwatch(from, m.Topic)
	n.presenceIn.ownerDropped(from, m.Topic)
}

func (n *Node) onPresenceSync(from string, m *wire.PresenceSync) { n.presenceIn.part(from, m) }

func (n *Node) onPresenceDiff(from string, m *wire.PresenceDiff) { n.presenceIn.diff(from, m) }

// presenceDeparted removes the entries of members that left or failed.
func (n *Node) presenceDeparted(gone []string) {
	n.presenceOwners.departed(gone)
	n.presenceIn.dropOrigins(gone)
}

// presenceReconcile follows ring changes: sets this node no longer owns
// are dropped, local entries are reported again to new owners, and copies
// sync with new owners.
func (n *Node) presenceReconcile() {
	if len(n.presenceRules) == 0 {
		return
	}
	n.presenceOwners.reconcile()
	n.presenceOut.reconcile()
	n.presenceIn.reconcile()
}
