package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
)

// memoryPresence is a MemoryBroker's presence: one set per topic in this
// process, changes handed to the watchers synchronously, in order.
type memoryPresence struct {
	mu      sync.Mutex
	enabled func(topic string) bool
	next    uint64
	topics  map[string]*memoryPresenceTopic
}

type memoryPresenceTopic struct {
	keys     map[string]map[string]json.RawMessage // key -> ref -> meta
	watchers map[*memoryWatcher]struct{}
}

type memoryWatcher struct {
	fn      func(PresenceDiff)
	stopped bool
}

// The MemoryBroker tracks presence once EnablePresence was called.
var _ Presencer = (*MemoryBroker)(nil)

// EnablePresence makes the broker track presence for the topics enabled
// reports true for (nil: none), so that the gateway sends presence_state
// and presence_diff to clients that join them. Its sets have no bounds.
func (b *MemoryBroker) EnablePresence(enabled func(topic string) bool) {
	b.presence.mu.Lock()
	defer b.presence.mu.Unlock()
	b.presence.enabled = enabled
}

// PresenceEnabled implements Presencer.
func (b *MemoryBroker) PresenceEnabled(topic string) bool {
	b.presence.mu.Lock()
	defer b.presence.mu.Unlock()
	return b.presence.enabled != nil && b.presence.enabled(topic)
}

func (p *memoryPresence) topic(name string) *memoryPresenceTopic {
	if p.topics == nil {
		p.topics = make(map[string]*memoryPresenceTopic)
	}
	t := p.topics[name]
	if t == nil {
		t = &memoryPresenceTopic{keys: make(map[string]map[string]json.RawMessage), watchers: make(map[*memoryWatcher]struct{})}
		p.topics[name] = t
	}
	return t
}

// Track implements Presencer.
func (b *MemoryBroker) Track(ctx context.Context, topic, key string, data json.RawMessage) (string, func(), error) {
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	if !b.PresenceEnabled(topic) {
		return "", nil, fmt.Errorf("gateway: presence is off for %q", topic)
	}
	p := &b.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	ref := "m" + strconv.FormatUint(p.next, 10)
	data = append(json.RawMessage(nil), data...)
	t := p.topic(topic)
	if t.keys[key] == nil {
		t.keys[key] = make(map[string]json.RawMessage)
	}
	t.keys[key][ref] = data
	t.sendLocked(PresenceDiff{Joins: map[string][]PresenceMeta{key: {{Ref: ref, Data: data}}}})
	var once sync.Once
	return ref, func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			delete(t.keys[key], ref)
			if len(t.keys[key]) == 0 {
				delete(t.keys, key)
			}
			t.sendLocked(PresenceDiff{Leaves: map[string][]PresenceMeta{key: {{Ref: ref, Data: data}}}})
		})
	}, nil
}

// WatchPresence implements Presencer.
func (b *MemoryBroker) WatchPresence(ctx context.Context, topic string, fn func(PresenceDiff)) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !b.PresenceEnabled(topic) {
		return nil, fmt.Errorf("gateway: presence is off for %q", topic)
	}
	p := &b.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.topic(topic)
	w := &memoryWatcher{fn: fn}
	t.watchers[w] = struct{}{}
	set := make(map[string][]PresenceMeta, len(t.keys))
	for key, refs := range t.keys {
		for ref, data := range refs {
			set[key] = append(set[key], PresenceMeta{Ref: ref, Data: data})
		}
	}
	fn(PresenceDiff{Sync: true, Joins: set})
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.stopped = true
		delete(t.watchers, w)
	}, nil
}

func (t *memoryPresenceTopic) sendLocked(d PresenceDiff) {
	for w := range t.watchers {
		if !w.stopped {
			w.fn(d)
		}
	}
}
