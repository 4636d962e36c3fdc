package pubsub

import (
	"slices"
	"sync"
	"time"
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
