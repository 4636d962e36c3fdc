// Package shard splits a map keyed by topic name into Count shards, each
// with its own lock, so that a node with many topics does not serialise on
// one lock. The node's tables (owned, replica and local topics) and the
// gateway's hub all use it; one hash places a topic in the same shard of
// each.
package shard

import (
	"sync"

	"github.com/cespare/xxhash/v2"
)

// Count is the number of shards of every Map.
const Count = 64

// Of returns the index of key's shard.
func Of(key string) int { return int(xxhash.Sum64String(key) % Count) }

// Map maps keys to *V in Count shards. Each shard also holds an X: state of
// the caller's that is kept per shard of the same hash (a registration lock,
// a small cache), so that one struct holds all of a shard. The zero value
// is not usable: call New.
//
// The shard lock guards the shard's map; X is guarded as its owner says
// (it may carry locks of its own); each value guards its own contents. Methods that take no shard lock (Get, GetOrAdd, ...) lock
// it themselves; Shard hands the shard to callers that need several steps
// under one lock.
type Map[V, X any] struct {
	shards [Count]Shard[V, X]
}

// Shard is one shard of a Map.
type Shard[V, X any] struct {
	sync.RWMutex // guards Items

	// Items is the shard's part of the map.
	Items map[string]*V
	// Local is the caller's per-shard state, guarded as the caller says.
	Local X
}

// New returns an empty Map.
func New[V, X any]() *Map[V, X] {
	m := &Map[V, X]{}
	for i := range m.shards {
		m.shards[i].Items = make(map[string]*V)
	}
	return m
}

// Shard returns key's shard, unlocked.
func (m *Map[V, X]) Shard(key string) *Shard[V, X] { return &m.shards[Of(key)] }

// Get returns key's value, or nil.
func (m *Map[V, X]) Get(key string) *V {
	sh := &m.shards[Of(key)]
	sh.RLock()
	v := sh.Items[key]
	sh.RUnlock()
	return v
}

// GetOrAdd returns key's value, adding the one create makes if there is
// none; added reports which. create runs under the shard lock.
func (m *Map[V, X]) GetOrAdd(key string, create func() *V) (v *V, added bool) {
	sh := &m.shards[Of(key)]
	sh.Lock()
	defer sh.Unlock()
	if v = sh.Items[key]; v != nil {
		return v, false
	}
	v = create()
	sh.Items[key] = v
	return v, true
}

// Delete removes key if its value is still v (nil: whatever it is) and
// reports whether it did.
func (m *Map[V, X]) Delete(key string, v *V) bool {
	sh := &m.shards[Of(key)]
	sh.Lock()
	defer sh.Unlock()
	return sh.DeleteLocked(key, v)
}

// DeleteLocked is Delete for a caller that holds the shard's lock.
func (s *Shard[V, X]) DeleteLocked(key string, v *V) bool {
	cur := s.Items[key]
	if cur == nil || v != nil && cur != v {
		return false
	}
	delete(s.Items, key)
	return true
}

// Len returns the number of keys.
func (m *Map[V, X]) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.RLock()
		n += len(sh.Items)
		sh.RUnlock()
	}
	return n
}

// Values returns a snapshot of the values, in no order.
func (m *Map[V, X]) Values() []*V {
	var out []*V
	for i := range m.shards {
		sh := &m.shards[i]
		sh.RLock()
		for _, v := range sh.Items {
			out = append(out, v)
		}
		sh.RUnlock()
	}
	return out
}

// Keys returns a snapshot of the keys, in no order.
func (m *Map[V, X]) Keys() []string {
	var out []string
	for i := range m.shards {
		sh := &m.shards[i]
		sh.RLock()
		for k := range sh.Items {
			out = append(out, k)
		}
		sh.RUnlock()
	}
	return out
}
