package gateway

import (
	"context"
	"errors"
	"sync"
)

// ErrBrokerClosed is returned by a closed MemoryBroker, and passed to the
// closed callbacks of the subscriptions it ends.
var ErrBrokerClosed = errors.New("gateway: broker closed")

// MemoryBroker is a Broker inside one process: no cluster, no network. It
// serves tests, examples, and programs that embed the gateway without a
// ringcast cluster.
//
// Publish delivers synchronously, in the caller's goroutine, to every
// subscription of the topic, one publish of a topic at a time; so deliver
// callbacks must not block (as the Broker contract requires) and must not call
// back into the broker. Sequence numbers start at 1 per topic; the epoch is 1.
// It keeps the last MemoryHistory messages of each topic for SubscribeSince
// (it is a Recoverer), and one record per topic ever used, so it suits a
// bounded set of topics. All methods are safe for concurrent use; the zero value is not
// usable, call NewMemoryBroker.
type MemoryBroker struct {
	mu       sync.Mutex
	topics   map[string]*memoryTopic
	closed   bool
	presence memoryPresence // memory_presence.go
}

type memoryTopic struct {
	mu   sync.Mutex // serializes the publishes of the topic, so deliveries are in order
	seq  uint64
	subs map[*memorySub]struct{}
	hist []Message // the last MemoryHistory messages, oldest first
}

// MemoryHistory is the number of recent messages a MemoryBroker keeps per
// topic.
const MemoryHistory = 1024

type memorySub struct {
	deliver func(Message)
	closed  func(error)
}

// memoryEpoch is the epoch of every message of a MemoryBroker.
const memoryEpoch = 1

// NewMemoryBroker returns an empty MemoryBroker.
func NewMemoryBroker() *MemoryBroker {
	return &MemoryBroker{topics: make(map[string]*memoryTopic)}
}

func (b *MemoryBroker) topic(name string) (*memoryTopic, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBrokerClosed
	}
	t := b.topics[name]
	if t == nil {
		t = &memoryTopic{subs: make(map[*memorySub]struct{})}
		b.topics[name] = t
	}
	return t, nil
}

// Subscribe implements Broker. The subscription works as soon as Subscribe returns.
func (b *MemoryBroker) Subscribe(ctx context.Context, topic string, deliver func(Message), closed func(error)) (func() error, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := b.topic(topic)
	if err != nil {
		return nil, err
	}
	s := &memorySub{deliver: deliver, closed: closed}
	t.mu.Lock()
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	var once sync.Once
	return func() error {
		once.Do(func() {
			t.mu.Lock()
			delete(t.subs, s)
			t.mu.Unlock()
		})
		return nil
	}, nil
}

// Publish implements Broker: it delivers data to every subscription of topic
// before it returns the message's sequence number.
func (b *MemoryBroker) Publish(ctx context.Context, topic string, data []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t, err := b.topic(topic)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	m := Message{Topic: topic, Epoch: memoryEpoch, Seq: t.seq, Data: data}
	if len(t.hist) == MemoryHistory {
		copy(t.hist, t.hist[1:])
		t.hist = t.hist[:MemoryHistory-1]
	}
	t.hist = append(t.hist, m)
	for s := range t.subs {
		s.deliver(m)
	}
	return t.seq, nil
}

// SubscribeSince implements Recoverer: the messages after from that the
// topic's history holds are delivered before SubscribeSince returns, then
// live ones.
func (b *MemoryBroker) SubscribeSince(ctx context.Context, topic string, from Position, deliver func(Message), closed func(error)) (Recovery, error) {
	if err := ctx.Err(); err != nil {
		return Recovery{}, err
	}
	t, err := b.topic(topic)
	if err != nil {
		return Recovery{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	oldest := t.seq + 1
	if len(t.hist) > 0 {
		oldest = t.hist[0].Seq
	}
	if from.Epoch != 0 && from.Epoch != memoryEpoch || from.Seq > t.seq || from.Seq < t.seq && from.Seq+1 < oldest {
		return Recovery{}, &HistoryGoneError{Topic: topic, Requested: from, Current: Position{Epoch: memoryEpoch, Seq: t.seq}}
	}
	n := 0
	for _, m := range t.hist {
		if m.Seq > from.Seq {
			deliver(m)
			n++
		}
	}
	s := &memorySub{deliver: deliver, closed: closed}
	t.subs[s] = struct{}{}
	var once sync.Once
	unsub := func() error {
		once.Do(func() {
			t.mu.Lock()
			delete(t.subs, s)
			t.mu.Unlock()
		})
		return nil
	}
	return Recovery{Unsubscribe: unsub, Recovered: n, Start: Position{Epoch: memoryEpoch, Seq: from.Seq}}, nil
}

// CloseTopic ends every subscription of topic as a failing broker would: each
// one's closed callback gets err (ErrBrokerClosed if err is nil). The topic
// stays usable for new subscriptions.
func (b *MemoryBroker) CloseTopic(topic string, err error) {
	if err == nil {
		err = ErrBrokerClosed
	}
	b.mu.Lock()
	t := b.topics[topic]
	b.mu.Unlock()
	if t != nil {
		t.end(err)
	}
}

// Close ends every subscription (their closed callbacks get ErrBrokerClosed)
// and makes later Subscribe and Publish calls fail with ErrBrokerClosed.
// Close is idempotent.
func (b *MemoryBroker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	topics := make([]*memoryTopic, 0, len(b.topics))
	for _, t := range b.topics {
		topics = append(topics, t)
	}
	b.mu.Unlock()
	for _, t := range topics {
		t.end(ErrBrokerClosed)
	}
	return nil
}

func (t *memoryTopic) end(err error) {
	t.mu.Lock()
	subs := t.subs
	t.subs = make(map[*memorySub]struct{})
	for s := range subs {
		s.closed(err)
	}
	t.mu.Unlock()
}
