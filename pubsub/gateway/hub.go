package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/ringcast/ringcast/pubsub/internal/shard"
)

// The hub holds the gateway's broker subscriptions: one per topic, shared by
// every local connection that joined the topic. The first join subscribes
// (concurrent first joins share one Subscribe in flight), the last leave
// unsubscribes, and each delivered message is decoded and encoded once, then
// fanned out to the members.
//
// The subscriptions live in a shard.Map keyed by topic. A topic's shard lock
// guards the shard's map and the guarded fields of each topicSub in it; the
// hub holds it across the several steps of a join, a leave or a delivery.
//
// Lock order: the hubShard lock, then conn.mu. Nothing is called on the
// broker, and no I/O is done, while a lock is held.

var (
	errJoinTimeout         = errors.New("gateway: join timeout")
	errConnClosed          = errors.New("gateway: connection closed")
	errSubscribeFailed     = errors.New("gateway: subscribe failed")
	errRecoveryUnsupported = errors.New("gateway: the broker keeps no history")
)

type hub struct {
	h    *Handler
	subs *shard.Map[topicSub, struct{}]
}

// hubShard is one shard of the hub's subscriptions: its RWMutex guards Items
// (the topicSubs by topic) and their guarded fields.
type hubShard = shard.Shard[topicSub, struct{}]

type topicState uint8

const (
	stateSubscribing topicState = iota // Subscribe in flight
	stateActive                        // subscribed; members receive messages
	stateEnded                         // unsubscribed, failed, or ended by the broker
)

// topicSub is the gateway's subscription to one topic.
type topicSub struct {
	hub   *hub
	shard *hubShard
	topic string
	ready chan struct{} // closed once Subscribe returned

	// Guarded by the shard's lock.
	state       topicState
	members     map[*join]struct{}
	waiters     int // joins waiting for Subscribe
	unsubscribe func() error
	err         error // why the subscription failed or ended

	// A private subscription serves one join (joinPrivate: a recovering
	// join, a queue group member) and is not in the hub's map; pre holds
	// what it delivers before the join is attached.
	private bool
	pre     []*broadcast
}

func (hb *hub) init(h *Handler) {
	hb.h = h
	hb.subs = shard.New[topicSub, struct{}]()
}

// shard returns topic's shard, unlocked.
func (hb *hub) shard(topic string) *hubShard { return hb.subs.Shard(topic) }

// join adds j to its topic, subscribing the gateway first if no local
// connection has joined the topic yet. Once j is a member, reply is queued to
// j's connection before any broadcast can be. ctx bounds the wait for a
// Subscribe in flight; the Subscribe itself is bounded by JoinTimeout and the
// gateway's life, not by ctx, as other joins may share it.
func (hb *hub) join(ctx context.Context, j *join, reply outItem) error {
	s := hb.shard(j.topic)
	s.Lock()
	t := s.Items[j.topic]
	creator := false
	if t == nil {
		t = &topicSub{
			hub:     hb,
			shard:   s,
			topic:   j.topic,
			ready:   make(chan struct{}),
			state:   stateSubscribing,
			members: make(map[*join]struct{}),
		}
		s.Items[j.topic] = t
		creator = true
	}
	if t.state == stateActive {
		err := hb.attachLocked(t, j, reply)
		s.Unlock()
		return err
	}
	t.waiters++
	s.Unlock()

	if creator {
		hb.subscribe(t)
	}
	select {
	case <-t.ready:
	case <-ctx.Done():
	}

	s.Lock()
	t.waiters--
	var err error
	switch t.state {
	case stateActive:
		err = hb.attachLocked(t, j, reply)
	case stateSubscribing:
		err = errJoinTimeout
	default:
		err = t.err
	}
	unsub := hb.releaseLocked(t)
	s.Unlock()
	hb.unsubscribe(t.topic, unsub)
	return err
}

// subscribe runs the broker's Subscribe for t and publishes its outcome.
func (hb *hub) subscribe(t *topicSub) {
	ctx, cancel := context.WithTimeout(hb.h.ctx, hb.h.opts.JoinTimeout)
	unsub, err := hb.h.broker.Subscribe(ctx, t.topic, t.deliver, t.closed)
	timedOut := ctx.Err() != nil
	cancel()

	s := t.shard
	s.Lock()
	defer s.Unlock()
	defer close(t.ready)
	if err == nil && t.state == stateEnded {
		// The broker ended the subscription before Subscribe returned.
		err = t.err
		unsub = nil
	}
	if err != nil {
		if timedOut {
			t.err = errJoinTimeout
		} else {
			t.err = fmt.Errorf("%w: %w", errSubscribeFailed, err)
		}
		t.state = stateEnded
		s.DeleteLocked(t.topic, t)
		hb.h.stats.subscribeErrors.Add(1)
		hb.h.log.Warn("gateway: subscribe failed", "topic", t.topic, "err", err)
		return
	}
	t.state = stateActive
	t.unsubscribe = unsub
	hb.h.stats.topics.Add(1)
}

// attachLocked makes j a member of t and queues reply to j's connection. The
// caller holds the lock of t.shard.
func (hb *hub) attachLocked(t *topicSub, j *join, reply outItem) error {
	c := j.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errConnClosed
	}
	t.members[j] = struct{}{}
	j.sub = t
	c.joins[j.topic] = j
	c.enqueueLocked(reply)
	hb.h.stats.joins.Add(1)
	return nil
}

// leave removes j from its topic. It reports whether j was still a member
// (the broker may have ended the subscription meanwhile) and returns the
// unsubscribe to run, outside any lock, if j was the topic's last member.
func (hb *hub) leave(j *join) (bool, func() error) {
	j.endPresence()
	s := hb.shard(j.topic)
	if j.private != nil {
		s = j.private
	}
	s.Lock()
	defer s.Unlock()
	c := j.conn
	c.mu.Lock()
	t := j.sub
	member := false
	if t != nil {
		_, member = t.members[j]
		delete(t.members, j)
	}
	if c.joins[j.topic] == j {
		delete(c.joins, j.topic)
	}
	j.sub = nil
	c.dropHeldLocked(j)
	c.mu.Unlock()
	if t == nil {
		return false, nil
	}
	return member, hb.releaseLocked(t)
}

// releaseLocked ends t if nothing uses it any more and returns its
// unsubscribe. The caller holds the lock of t.shard.
func (hb *hub) releaseLocked(t *topicSub) func() error {
	if t.state != stateActive || len(t.members) > 0 || t.waiters > 0 {
		return nil
	}
	t.state = stateEnded
	t.shard.DeleteLocked(t.topic, t)
	hb.h.stats.topics.Add(-1)
	unsub := t.unsubscribe
	t.unsubscribe = nil
	return unsub
}

// unsubscribe runs a broker unsubscribe returned by join or leave.
func (hb *hub) unsubscribe(topic string, unsub func() error) {
	if unsub == nil {
		return
	}
	if err := unsub(); err != nil {
		hb.h.log.Warn("gateway: unsubscribe failed", "topic", topic, "err", err)
	}
}

// closed is the broker's closed callback: the broker ended the subscription.
// Every member gets phx_error and is no longer joined.
func (t *topicSub) closed(err error) {
	h := t.hub.h
	s := t.shard
	s.Lock()
	defer s.Unlock()
	if t.state == stateEnded {
		return
	}
	if t.state == stateActive {
		h.stats.topics.Add(-1)
	}
	t.state = stateEnded
	t.err = fmt.Errorf("%w: %w", errSubscribeFailed, err)
	t.unsubscribe = nil
	s.DeleteLocked(t.topic, t)
	for j := range t.members {
		j.endPresence()
		c := j.conn
		c.mu.Lock()
		if c.joins[t.topic] == j {
			delete(c.joins, t.topic)
		}
		j.sub = nil
		c.dropHeldLocked(j)
		c.enqueueLocked(outItem{raw: appendJSONMessage(nil, j.joinRef, j.joinRef, t.topic, eventError, []byte(emptyObject))})
		c.mu.Unlock()
	}
	h.stats.channelErrors.Add(uint64(len(t.members)))
	t.members = nil
	h.log.Warn("gateway: broker ended subscription", "topic", t.topic, "err", err)
}

// deliver is the broker's deliver callback. The message is encoded once here
// and shared by every member's queue.
func (t *topicSub) deliver(m Message) {
	h := t.hub.h
	event, payload, binary, err := DecodeEnvelope(m.Data)
	if err == nil && !binary && (!json.Valid(payload) || !utf8.Valid(payload)) {
		err = fmt.Errorf("%w: payload is not valid UTF-8 JSON", ErrMalformedEnvelope)
	}
	if err != nil {
		h.stats.errors.Add(1)
		h.log.Warn("gateway: dropping undecodable message", "topic", t.topic, "seq", m.Seq, "err", err)
		return
	}
	b := newBroadcast(t.topic, event, payload, binary, m.Seq, m.Epoch)
	s := t.shard
	if t.private {
		s.Lock()
		defer s.Unlock()
		if t.state == stateSubscribing {
			t.pre = append(t.pre, b)
			return
		}
	} else {
		s.RLock()
		defer s.RUnlock()
	}
	if t.state != stateActive || len(t.members) == 0 {
		return
	}
	for j := range t.members {
		j.conn.deliver(j, b)
	}
}

// broadcast is one message encoded for every receiver on this gateway. Only
// the receiver's join_ref is written per receiver, in front of body.
type broadcast struct {
	binary bool
	// body is, for text: null,"topic","event",payload]
	// and for binary: topic, event, payload.
	body []byte
	// meta is the end of a text message for a receiver that opted in to
	// metadata; it replaces the final ']' of body: ,{"seq":n,"epoch":e}]
	meta               []byte
	topicLen, eventLen int
}

func newBroadcast(topic, event string, payload []byte, binary bool, seq, epoch uint64) *broadcast {
	b := &broadcast{binary: binary, topicLen: len(topic), eventLen: len(event)}
	if binary {
		buf := make([]byte, 0, len(topic)+len(event)+len(payload))
		buf = append(buf, topic...)
		buf = append(buf, event...)
		b.body = append(buf, payload...)
		return b
	}
	buf := make([]byte, 0, len(topic)+len(event)+len(payload)+48)
	buf = append(buf, jsonNull+","...)
	buf = appendJSONString(buf, topic)
	buf = append(buf, ',')
	buf = appendJSONString(buf, event)
	buf = append(buf, ',')
	buf = append(buf, payload...)
	buf = append(buf, ']')
	n := len(buf)
	buf = appendMetaSuffix(buf, seq, epoch)
	b.body, b.meta = buf[:n:n], buf[n:]
	return b
}
