package pubsub

import (
	"sync"

	"github.com/cespare/xxhash/v2"
)

const shardCount = 64

func shardOf(topic string) int { return int(xxhash.Sum64String(topic) % shardCount) }

// topicMap is a map from topic to *V split in shards, so that nodes with
// many topics do not serialise on one lock. Each value has its own lock for
// its contents; the shard lock only guards membership.
type topicMap[V any] struct {
	shards [shardCount]struct {
		mu sync.Mutex
		m  map[string]*V
	}
}

func newTopicMap[V any]() *topicMap[V] {
	t := &topicMap[V]{}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*V)
	}
	return t
}

func (t *topicMap[V]) get(topic string) *V {
	sh := &t.shards[shardOf(topic)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[topic]
}

// acquire returns the topic's value, creating it with create if absent;
// created reports which.
func (t *topicMap[V]) acquire(topic string, create func() *V) (v *V, created bool) {
	sh := &t.shards[shardOf(topic)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if v = sh.m[topic]; v != nil {
		return v, false
	}
	v = create()
	sh.m[topic] = v
	return v, true
}

// drop removes the topic if its value is still v (nil: whatever it is).
func (t *topicMap[V]) drop(topic string, v *V) {
	sh := &t.shards[shardOf(topic)]
	sh.mu.Lock()
	if cur := sh.m[topic]; cur != nil && (v == nil || cur == v) {
		delete(sh.m, topic)
	}
	sh.mu.Unlock()
}

// each calls fn for a snapshot of the entries, without any shard lock held.
func (t *topicMap[V]) each(fn func(topic string, v *V)) {
	type kv struct {
		k string
		v *V
	}
	var all []kv
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, v := range sh.m {
			all = append(all, kv{k, v})
		}
		sh.mu.Unlock()
	}
	for _, e := range all {
		fn(e.k, e.v)
	}
}

// len returns the number of entries.
func (t *topicMap[V]) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// values returns a snapshot of the values.
func (t *topicMap[V]) values() []*V {
	var out []*V
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for _, v := range sh.m {
			out = append(out, v)
		}
		sh.mu.Unlock()
	}
	return out
}
