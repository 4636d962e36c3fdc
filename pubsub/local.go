package pubsub

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/shard"
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
	owner       string          // node this topic is registered (or registering) with
	former      string          // owner it stays registered with until owner confirms
	confirmed   bool            // the owner acknowledged the registration
	regAt       time.Time       // when the registration in flight was sent
	removed     bool            // no longer in the table (last subscriber left)
	based       bool            // epoch and last are known
	epoch       uint64
	last        uint64            // seq of the last message delivered
	pending     map[uint64][]byte // messages after a gap, by seq
	gapTimer    *timer            // armed while pending is not empty
	repairing   bool              // a history request for the gap is out
	gapDeadline time.Time         // when the oldest gap is given up
	// behindSince is when an owner first confirmed the registration in an
	// epoch older than the one this node follows (zero: it has not).
	behindSince time.Time
	// refusedTo and refusedAt name the node last told to stop sending here
	// (see refuseStale) and when.
	refusedTo string
	refusedAt time.Time
}

// localTable holds the topics this node has local subscribers for.
type localTable struct {
	m     *shard.Map[localTopic, localShard]
	stats *counters
	log   *slog.Logger
}

// localShard is the node's state for one shard of topics besides the
// shard's local topics.
type localShard struct {
	// mu serialises a topic's registration changes: first subscriber and
	// registration, last subscriber and unregistration, re-registration.
	// Without it an unsubscribe could overtake the subscribe that followed
	// it and leave that subscription deaf. It is the outermost lock, taken
	// before the shard's own.
	mu sync.Mutex
	// staleTold remembers, guarded by mu, when this node last answered a
	// stale delivery of a topic (see unsubscribeStale).
	staleTold map[string]time.Time
}

func newLocalTable(stats *counters, log *slog.Logger) *localTable {
	return &localTable{m: shard.New[localTopic, localShard](), stats: stats, log: log}
}

// reg returns the registration state of topic's shard.
func (t *localTable) reg(topic string) *localShard { return &t.m.Shard(topic).Local }

func (t *localTable) get(topic string) *localTopic { return t.m.Get(topic) }

// add attaches s to its topic, creating the topic on the first subscriber.
// It reports whether s is the first (0→1), in which case the caller
// registers the topic with its owner.
func (t *localTable) add(s *Subscription) (*localTopic, bool) {
	sh := t.m.Shard(s.topic)
	sh.Lock()
	defer sh.Unlock()
	lt, ok := sh.Items[s.topic]
	if !ok {
		lt = &localTopic{name: s.topic, ready: make(chan struct{})}
		sh.Items[s.topic] = lt
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
	sh := t.m.Shard(s.topic)
	sh.Lock()
	defer sh.Unlock()
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
	sh.DeleteLocked(lt.name, lt)
	lt.removed = true
	if lt.gapTimer != nil {
		lt.gapTimer.stop()
	}
	lt.pending = nil
	return lt.owner, lt.owner != ""
}

// forget removes lt from the table if it is still there (failed first
// registration).
func (t *localTable) forget(lt *localTopic) { t.m.Delete(lt.name, lt) }

// all returns every local topic (for ring changes and shutdown).
func (t *localTable) all() []*localTopic { return t.m.Values() }
