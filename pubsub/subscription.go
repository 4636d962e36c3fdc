package pubsub

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// Message is one publication as a subscriber receives it. Data is shared by
// every subscriber of the node and with the copy the node keeps in history
// (as the topic's owner or replica): it must not be modified.
type Message struct {
	Topic string
	// Epoch identifies the topic's history. It changes only when the topic's
	// state was lost (its owner failed with no copy left), so a change of
	// epoch tells a subscriber that sequence numbers started over. Epochs
	// are ordered: a subscription moves only to a greater one.
	Epoch uint64
	// Seq is the owner-assigned position of the message in the topic:
	// strictly increasing within an epoch.
	Seq  uint64
	Data []byte
	// Lost is the number of messages this subscription discarded just
	// before this one (OverflowDropOldest only).
	Lost uint64
}

// Subscription is one subscriber's interest in a topic. Messages wait in a
// bounded buffer (WithBuffer or Config.SubscriptionBuffer messages not yet
// taken by the reader) and are read with Next, or handed to the function
// given to SubscribeFunc. A Subscription is safe for concurrent use, but
// messages come out in order only to a single reader.
//
// The buffer is double: the delivery path appends to in under mu, and the
// reader swaps in for its own drained buffer (out) once per batch, then
// reads out without taking mu, so the two sides meet once per batch rather
// than once per message.
type Subscription struct {
	node     *Node
	topic    string
	fn       func(Message)
	onClose  func(error)
	overflow Overflow
	size     int         // bound on len(in)
	lt       *localTopic // set once by Subscribe; guarded by lt.mu for membership
	tracked  *Tracked    // WithPresence's entry; set before the subscription is shared
	group    string      // queue group (InQueue); "" for a plain subscription
	lq       *localQueue // the queue group's members, set once by Subscribe

	// Reader side: out[pos:] are taken but not yet returned. Guarded by rmu
	// for Next; a dispatcher worker owns them while it runs the handler.
	rmu sync.Mutex
	out []Message
	pos int
	// stopped is set when Unsubscribe or Close ended the subscription: the
	// handler of a SubscribeFunc is not called any more.
	stopped atomic.Bool

	mu        sync.Mutex
	in        []Message
	lost      uint64
	err       error // why the subscription ended; nil while active
	scheduled bool  // queued on, or running in, a dispatcher worker
	finished  bool  // detached from the node and OnClose called
	// While a Since subscription recovers, live messages wait in held so
	// that the history fetched from the owner goes first.
	recovering bool
	held       []Message
	// heldLost counts the held messages dropped to make room (the oldest
	// first); heldLostAt is the last of them. History may bring them back.
	heldLost   uint64
	heldLostAt Position
	// After recovery, messages of floorEpoch up to floor were already
	// handed over (or were asked to be skipped): the live stream may still
	// bring them when this node was behind the requested position.
	floor      uint64
	floorEpoch uint64
	start      Position // where the subscription started, set by Subscribe
	recovered  int      // messages that came from history (Since)
	notify     chan struct{}
	done       chan struct{}
}

func newSubscription(n *Node, topic string, fn func(Message), o subscribeOptions) *Subscription {
	size := o.buffer
	if size <= 0 {
		size = n.cfg.SubscriptionBuffer
	}
	return &Subscription{
		node:       n,
		topic:      topic,
		fn:         fn,
		onClose:    o.onClose,
		overflow:   o.overflow,
		size:       size,
		in:         make([]Message, 0, min(size, 8)), // grows with the traffic
		recovering: o.since != nil,
		notify:     make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
}

// finishRecovery queues the recovered history (entries after since), then
// the live messages held meanwhile that come after it, and ends recovery.
// What was recovered may exceed the buffer's bound.
func (s *Subscription) finishRecovery(entries []wire.HistoryEntry, epoch, since uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := since
	out := make([]Message, 0, len(entries)+len(s.held))
	for _, e := range entries {
		if e.Seq > next {
			out = append(out, Message{Topic: s.topic, Epoch: epoch, Seq: e.Seq, Data: e.Data})
			next = e.Seq
		}
	}
	s.recovered = len(out)
	s.start = Position{Epoch: epoch, Seq: since}
	lost := s.heldLostAfter(epoch, next)
	for _, m := range s.held {
		if m.Epoch == epoch && m.Seq <= next {
			continue
		}
		if m.Epoch == epoch {
			next = m.Seq
		}
		// The messages dropped from held came just before this one.
		m.Lost, lost = lost, 0
		out = append(out, m)
	}
	s.lost += lost // nothing held followed them: the next message says it
	s.recovering, s.held, s.heldLost = false, nil, 0
	s.floor, s.floorEpoch = next, epoch
	if len(out) > 0 {
		s.in = append(s.in, out...)
		s.wakeLocked()
	}
}

// heldLostAfter returns how many of the held messages dropped during
// recovery history does not bring back, history reaching seq in epoch. A
// subscription receives a topic's messages in order and without gaps, so
// the dropped ones are the heldLost numbers up to heldLostAt.
func (s *Subscription) heldLostAfter(epoch, seq uint64) uint64 {
	if s.heldLost == 0 || s.heldLostAt.Epoch != epoch {
		return s.heldLost
	}
	if s.heldLostAt.Seq <= seq {
		return 0
	}
	return min(s.heldLost, s.heldLostAt.Seq-seq)
}

// Topic returns the subscription's topic.
func (s *Subscription) Topic() string { return s.topic }

// Start returns the position the subscription starts after: every message
// it delivers comes after it in the topic's order. With Since it is the
// position asked for; otherwise the newest message the node had delivered
// when Subscribe returned.
func (s *Subscription) Start() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start
}

// Recovered returns the number of messages a Since subscription took from
// the owner's history (0 without Since).
func (s *Subscription) Recovered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovered
}

// Done is closed when the subscription ends: by Unsubscribe, by overflow
// (ErrSlowConsumer) or by the node closing (ErrClosed). Buffered messages
// may still be read with Next after that.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription ended, or nil while it is active.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Next returns the next message, waiting for one until ctx is done. When the
// subscription has ended it first returns what was buffered, then the reason
// (ErrUnsubscribed, ErrSlowConsumer or ErrClosed). Next must not be used on
// a subscription made with SubscribeFunc.
func (s *Subscription) Next(ctx context.Context) (Message, error) {
	for {
		s.rmu.Lock()
		if s.pos < len(s.out) || s.take() {
			m := s.out[s.pos]
			s.out[s.pos] = Message{}
			s.pos++
			s.rmu.Unlock()
			return m, nil
		}
		s.rmu.Unlock()
		s.mu.Lock()
		err, empty := s.err, len(s.in) == 0
		s.mu.Unlock()
		if !empty {
			continue
		}
		if err != nil {
			return Message{}, err
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

// take swaps the reader's drained buffer for the messages waiting in in. It
// reports whether it got any. The reader side (rmu, or the dispatcher
// worker) must be held.
func (s *Subscription) take() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.in) == 0 {
		return false
	}
	s.out, s.in = s.in, s.out[:0]
	s.pos = 0
	if s.lost > 0 {
		s.out[0].Lost += s.lost
		s.lost = 0
	}
	return true
}

// Unsubscribe ends the subscription. Messages already buffered can still be
// read with Next. For SubscribeFunc, no call of the function starts after
// Unsubscribe returns; one already under way may finish. Unsubscribe is idempotent and always
// returns nil; the error is there for interface compatibility.
func (s *Subscription) Unsubscribe() error {
	s.stopped.Store(true)
	if s.end(ErrUnsubscribed) {
		s.node.detach(s)
	}
	return nil
}

// push buffers a copy of m; it never blocks. It reports false when the subscription
// overflowed under OverflowClose and has just ended.
func (s *Subscription) push(m *Message) bool {
	s.mu.Lock()
	if s.err != nil || m.Seq <= s.floor && m.Epoch == s.floorEpoch {
		s.mu.Unlock()
		return true
	}
	if s.recovering {
		if len(s.held) >= s.size && !s.makeRoomLocked(&s.held) {
			s.mu.Unlock()
			return false
		}
		s.held = append(s.held, *m)
		s.mu.Unlock()
		return true
	}
	if len(s.in) >= s.size && !s.makeRoomLocked(&s.in) {
		s.mu.Unlock()
		return false
	}
	// Field by field into the slot, as history.add does: a struct store
	// goes through the bulk write barrier while the collector runs. Slots
	// past len(in) are zero (the reader clears what it takes).
	s.in = slices.Grow(s.in, 1)
	s.in = s.in[:len(s.in)+1]
	e := &s.in[len(s.in)-1]
	e.Topic, e.Epoch, e.Seq, e.Data, e.Lost = m.Topic, m.Epoch, m.Seq, m.Data, 0
	if len(s.in) == 1 {
		// The reader sleeps only after it saw in empty.
		s.wakeLocked()
	}
	s.mu.Unlock()
	return true
}

// makeRoomLocked applies the overflow policy to a full queue q: drop its
// oldest message, or end the subscription (reported as false).
func (s *Subscription) makeRoomLocked(q *[]Message) bool {
	if s.overflow == OverflowClose {
		s.err = ErrSlowConsumer
		close(s.done)
		s.wakeLocked()
		s.scheduleLocked()
		return false
	}
	if q == &s.held {
		s.heldLost++
		s.heldLostAt = Position{Epoch: (*q)[0].Epoch, Seq: (*q)[0].Seq}
	} else {
		s.lost += 1 + (*q)[0].Lost // and what was lost before it
	}
	(*q)[0] = Message{}
	*q = (*q)[1:]
	s.node.stats.dropped.Add(1)
	return true
}

// end marks the subscription ended with err; it reports whether this call
// ended it.
func (s *Subscription) end(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.err = err
	close(s.done)
	s.wakeLocked()
	return true
}

// wakeLocked tells the reader that something changed: the Next caller, or
// the dispatcher for a SubscribeFunc subscription.
func (s *Subscription) wakeLocked() {
	if s.fn == nil {
		select {
		case s.notify <- struct{}{}:
		default:
		}
		return
	}
	s.scheduleLocked()
}

func (s *Subscription) scheduleLocked() {
	if !s.scheduled {
		s.scheduled = true
		s.node.dispatch.enqueue(s)
	}
}

// dispatchBatch is how the dispatcher reads from a subscription: it hands
// what is buffered to the handler (at most dispatchMax messages per turn, so
// that one busy subscription does not hold a worker), and finishes an ended
// subscription (detaching it and calling OnClose). It reports whether the
// subscription must be scheduled again. Only one worker runs a subscription
// at a time, so it owns out and pos meanwhile.
func (s *Subscription) dispatchBatch() bool {
	const dispatchMax = 256
	if s.fn != nil && s.stopped.Load() {
		// Ended by Unsubscribe or Close: what is buffered is not handed on.
		clear(s.out)
		s.out, s.pos = s.out[:0], 0
		s.mu.Lock()
		clear(s.in)
		s.in = s.in[:0]
		s.mu.Unlock()
	}
	if s.fn != nil && !s.stopped.Load() && (s.pos < len(s.out) || s.take()) {
		end := min(len(s.out), s.pos+dispatchMax)
		for ; s.pos < end && !s.stopped.Load(); s.pos++ {
			m := s.out[s.pos]
			s.out[s.pos] = Message{}
			s.fn(m)
		}
		return true
	}
	s.mu.Lock()
	if s.fn != nil && len(s.in) > 0 {
		s.mu.Unlock()
		return true
	}
	s.scheduled = false
	finish := s.err != nil && !s.finished
	if finish {
		s.finished = true
	}
	err := s.err
	s.mu.Unlock()
	if finish {
		s.node.detach(s)
		if s.onClose != nil && err != ErrUnsubscribed {
			s.onClose(err)
		}
	}
	return false
}
