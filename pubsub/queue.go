package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// MaxQueueGroup is the longest queue group name, in bytes.
const MaxQueueGroup = 255

// ErrInvalidQueueGroup reports a queue group name that is empty, longer
// than MaxQueueGroup, not UTF-8 or holds control characters, or a queue
// subscription asked for with an option it does not take (Since).
var ErrInvalidQueueGroup = errors.New("pubsub: invalid queue group")

// ErrNotQueueMember is returned by Subscription.Ack on a subscription that
// is no member of a queue group.
var ErrNotQueueMember = errors.New("pubsub: not a queue group member")

// queueRefreshEvery is how often a node tells the owner of each topic it
// has queue members for that it still has them; an owner forgets a node
// of a group it has not heard from for queueExpireAfter (see
// queueOwner.sweep). Both are well above a link's latency and well below
// how long a message waits for its acknowledgement.
const (
	queueRefreshEvery = time.Second
	queueExpireAfter  = 5 * queueRefreshEvery
)

// InQueue makes a Subscribe or SubscribeFunc call join the queue group
// group of the topic instead of receiving every message: each message goes
// to one live member of the group, across the cluster (see the package
// documentation, Queue groups). It cannot be combined with Since.
func InQueue(group string) SubscribeOption {
	return func(o *subscribeOptions) { o.queue, o.queueSet = group, true }
}

// SubscribeQueue subscribes to topic as a member of the queue group
// group: every message published to the topic is delivered to exactly one
// live member of the group, wherever in the cluster it is, while plain
// subscribers still receive every message. It returns once the topic's
// owner knows this node has members of the group. Read messages with
// Next; on a durable topic acknowledge each with Ack, or it is delivered
// again to a member after Config.QueueAckTimeout.
func (n *Node) SubscribeQueue(ctx context.Context, topic, group string, opts ...SubscribeOption) (*Subscription, error) {
	return n.subscribe(ctx, topic, nil, append(slices.Clip(opts), InQueue(group)))
}

// SubscribeQueueFunc is SubscribeQueue with a handler, called as
// SubscribeFunc calls it. On a durable topic a message is acknowledged
// when fn returns.
func (n *Node) SubscribeQueueFunc(ctx context.Context, topic, group string, fn func(Message), opts ...SubscribeOption) (*Subscription, error) {
	if fn == nil {
		return nil, errors.New("pubsub: SubscribeQueueFunc with a nil function")
	}
	return n.subscribe(ctx, topic, fn, append(slices.Clip(opts), InQueue(group)))
}

// ValidateQueueGroup reports whether group is a valid queue group name:
// 1 to MaxQueueGroup bytes of UTF-8 without control characters. The
// error wraps ErrInvalidQueueGroup.
func ValidateQueueGroup(group string) error {
	switch {
	case group == "":
		return fmt.Errorf("%w: empty name", ErrInvalidQueueGroup)
	case len(group) > MaxQueueGroup:
		return fmt.Errorf("%w: %d bytes, over %d", ErrInvalidQueueGroup, len(group), MaxQueueGroup)
	case !utf8.ValidString(group):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidQueueGroup)
	case strings.ContainsFunc(group, unicode.IsControl):
		return fmt.Errorf("%w: control character in %q", ErrInvalidQueueGroup, group)
	}
	return nil
}

// Group returns the queue group the subscription is a member of, or ""
// for a plain subscription.
func (s *Subscription) Group() string { return s.group }

// Ack acknowledges a message a queue group member received, on a durable
// topic: the topic's owner then never delivers it again, and the group's
// cursor in the store moves past it once every earlier message is
// acknowledged too. A message not acknowledged within
// Config.QueueAckTimeout is delivered again, to this or another member.
// On a memory topic, where delivery is at most once, Ack does nothing.
// SubscribeQueueFunc acknowledges each message when its handler returns.
// Ack returns ErrNotQueueMember for a plain subscription; it never blocks
// (a lost acknowledgement means the message comes again).
func (s *Subscription) Ack(m Message) error {
	if s.group == "" {
		return ErrNotQueueMember
	}
	if s.lq == nil || !s.lq.acked.Load() || m.Topic != s.topic {
		return nil
	}
	s.node.sendQueueAck(s.topic, s.group, m.Epoch, m.Seq)
	return nil
}

// queueKey names a queue group of a topic.
type queueKey struct{ topic, group string }

// localQueue is one queue group of a topic on the members' side: this
// node's members of it and the owner it is registered with.
type localQueue struct {
	key   queueKey
	ready chan struct{} // closed when the first join was answered
	// acked is set once the owner asked for acknowledgements (a durable
	// topic).
	acked atomic.Bool

	mu        sync.Mutex
	members   []*Subscription // copied on write
	next      int             // round robin over members
	regErr    error           // outcome of the first join
	owner     string          // node last joined with
	refreshed time.Time       // when the last join was sent
	removed   bool
}

// queueMembers is the node's table of queue groups it has members of.
type queueMembers struct {
	// reg serialises joins and leaves, so that a leave never overtakes
	// the join that followed it on the same link.
	reg sync.Mutex

	mu     sync.Mutex
	groups map[queueKey]*localQueue
	// staleTold remembers when this node last told an owner to stop
	// sending a group it has no member of.
	staleTold map[queueKey]time.Time
}

func (q *queueMembers) get(k queueKey) *localQueue {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.groups[k]
}

func (q *queueMembers) all() []*localQueue {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]*localQueue, 0, len(q.groups))
	for _, lq := range q.groups {
		out = append(out, lq)
	}
	return out
}

// subscribeQueue is subscribe for a queue group member. q.reg is taken
// here.
func (n *Node) subscribeQueue(ctx context.Context, s *Subscription, o subscribeOptions) (*Subscription, error) {
	if err := ValidateQueueGroup(o.queue); err != nil {
		return nil, err
	}
	if o.since != nil {
		return nil, fmt.Errorf("%w: Since does not apply to a queue group member", ErrInvalidQueueGroup)
	}
	s.group = o.queue
	if fn := s.fn; fn != nil {
		s.fn = func(m Message) {
			fn(m)
			_ = s.Ack(m)
		}
	}
	q := &n.queues
	k := queueKey{s.topic, s.group}
	q.reg.Lock()
	q.mu.Lock()
	if q.groups == nil {
		q.groups = make(map[queueKey]*localQueue)
	}
	lq, ok := q.groups[k]
	if !ok {
		lq = &localQueue{key: k, ready: make(chan struct{})}
		q.groups[k] = lq
	}
	lq.mu.Lock()
	lq.members = append(slices.Clip(lq.members), s)
	lq.mu.Unlock()
	s.lq = lq
	q.mu.Unlock()
	if !ok {
		n.queueJoin(lq, true)
	}
	q.reg.Unlock()
	if err := n.awaitReady(ctx, s, lq.ready); err != nil {
		return nil, err
	}
	lq.mu.Lock()
	err := lq.regErr
	lq.mu.Unlock()
	if err != nil {
		s.end(err)
		n.detach(s)
		return nil, err
	}
	return s, nil
}

// queueJoin tells the topic's owner that this node has members of the
// group; first marks the join SubscribeQueue waits for. q.reg held.
func (n *Node) queueJoin(lq *localQueue, first bool) {
	owner, err := n.ringOwner(lq.key.topic)
	lq.mu.Lock()
	lq.owner, lq.refreshed = owner, time.Now()
	lq.mu.Unlock()
	done := func(err error) {
		if !first {
			return
		}
		lq.mu.Lock()
		lq.regErr = err
		close(lq.ready)
		lq.mu.Unlock()
		if err != nil {
			n.queues.mu.Lock()
			if n.queues.groups[lq.key] == lq {
				delete(n.queues.groups, lq.key)
			}
			n.queues.mu.Unlock()
		}
	}
	switch {
	case err != nil:
		done(err)
	case owner == n.name:
		n.ownerQueueJoin(lq.key, n.name, 0, 0, done)
	default:
		m := &wire.QueueJoin{Topic: lq.key.topic, Group: lq.key.group, Origin: n.name}
		if first {
			m.ReqID = n.pending.add(owner, n.cfg.RequestTimeout, func(_ string, msg wire.Message, err error) {
				if ack, ok := msg.(*wire.QueueJoinAck); ok {
					err = codeError(ack.Code, ack.Err)
				}
				done(err)
			})
		}
		if err := n.peers.sendMsg(owner, m); err != nil {
			if first {
				n.pending.cancel(m.ReqID)
			}
			done(err)
		}
	}
}

// queueDetach removes a member from its group and tells the owner when it
// was the node's last one.
func (n *Node) queueDetach(s *Subscription) {
	lq := s.lq
	if lq == nil {
		return
	}
	q := &n.queues
	q.reg.Lock()
	defer q.reg.Unlock()
	lq.mu.Lock()
	i := slices.Index(lq.members, s)
	if i < 0 {
		lq.mu.Unlock()
		return
	}
	lq.members = slices.Delete(slices.Clone(lq.members), i, i+1)
	last := len(lq.members) == 0
	owner := lq.owner
	if last {
		lq.removed = true
	}
	lq.mu.Unlock()
	if !last {
		return
	}
	q.mu.Lock()
	if q.groups[lq.key] == lq {
		delete(q.groups, lq.key)
	}
	q.mu.Unlock()
	if n.isClosed() {
		return
	}
	n.queueLeave(lq.key, owner)
	if cur, err := n.ringOwner(lq.key.topic); err == nil && cur != owner {
		n.queueLeave(lq.key, cur)
	}
}

// queueLeave tells owner that this node has no member of the group left.
func (n *Node) queueLeave(k queueKey, owner string) {
	if owner == "" {
		return
	}
	if owner == n.name {
		n.ownerQueueLeave(k, n.name, 0)
		return
	}
	if err := n.peers.sendMsg(owner, &wire.QueueLeave{Topic: k.topic, Group: k.group, Origin: n.name}); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

// refreshQueues joins every group again with the topic's owner when the
// owner changed, and every queueRefreshEvery anyway, so that a new owner,
// or one that dropped the entry, learns it.
func (n *Node) refreshQueues(now time.Time) {
	q := &n.queues
	for _, lq := range q.all() {
		owner, err := n.ringOwner(lq.key.topic)
		if err != nil {
			continue
		}
		lq.mu.Lock()
		due := !lq.removed && lq.regErr == nil && isClosedChan(lq.ready) &&
			(owner != lq.owner || now.Sub(lq.refreshed) >= queueRefreshEvery)
		lq.mu.Unlock()
		if !due {
			continue
		}
		q.reg.Lock()
		lq.mu.Lock()
		removed := lq.removed
		lq.mu.Unlock()
		if !removed {
			n.queueJoin(lq, false)
		}
		q.reg.Unlock()
	}
}

func isClosedChan(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// deliverQueue hands a message an owner sent to this node's members of a
// group to one of them: the next in turn that is live and has room. It
// reports false when the node has no member of the group. A message no
// member has room for is dropped (memory topic) or left to be delivered
// again (durable topic) and counted as dropped. It never blocks.
func (n *Node) deliverQueue(k queueKey, epoch, seq uint64, data []byte, acked bool) bool {
	lq := n.queues.get(k)
	if lq == nil {
		return false
	}
	if acked && !lq.acked.Load() {
		lq.acked.Store(true)
	}
	m := Message{Topic: k.topic, Epoch: epoch, Seq: seq, Data: data}
	lq.mu.Lock()
	members := lq.members
	if len(members) == 0 {
		lq.mu.Unlock()
		return false
	}
	start := lq.next
	for i := range members {
		j := (start + i) % len(members)
		if members[j].pushQueue(&m) {
			lq.next = j + 1
			lq.mu.Unlock()
			n.stats.delivered.Add(1)
			return true
		}
	}
	lq.mu.Unlock()
	n.stats.dropped.Add(1)
	return true
}

// pushQueue buffers m for a queue member if it is live and has room; it
// never ends the subscription, since another member may take m.
func (s *Subscription) pushQueue(m *Message) bool {
	if s.stopped.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || len(s.in) >= s.size {
		return false
	}
	s.in = append(s.in, *m)
	if len(s.in) == 1 {
		s.wakeLocked()
	}
	return true
}

// handleQueueDeliver delivers a message an owner chose this node for, and
// tells an owner that sends a group this node has no member of to stop.
func (n *Node) handleQueueDeliver(from string, body []byte) {
	var m wire.QueueDeliver
	if err := m.DecodeBody(body); err != nil {
		n.malformed(from, wire.FrameQueueDeliver, err)
		return
	}
	k := queueKey{m.Topic, m.Group}
	if n.deliverQueue(k, m.Epoch, m.Seq, m.Data, m.Acked) {
		return
	}
	n.stats.unrouted.Add(1)
	if ValidateTopic(m.Topic) != nil || ValidateQueueGroup(m.Group) != nil {
		return
	}
	q := &n.queues
	q.mu.Lock()
	now := time.Now()
	if at, ok := q.staleTold[k]; ok && now.Sub(at) < staleAnswerEvery {
		q.mu.Unlock()
		return
	}
	if q.staleTold == nil || len(q.staleTold) >= 1024 {
		for t, at := range q.staleTold {
			if now.Sub(at) >= staleAnswerEvery {
				delete(q.staleTold, t)
			}
		}
		if q.staleTold == nil {
			q.staleTold = make(map[queueKey]time.Time)
		}
	}
	q.staleTold[k] = now
	q.mu.Unlock()
	if err := n.peers.sendMsg(from, &wire.QueueLeave{Topic: m.Topic, Group: m.Group, Origin: n.name, Hops: maxHops}); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

// sendQueueAck tells the topic's owner that a member acknowledged a
// message.
func (n *Node) sendQueueAck(topic, group string, epoch, seq uint64) {
	owner, err := n.ringOwner(topic)
	if err != nil {
		return
	}
	if owner == n.name {
		n.ownerQueueAck(queueKey{topic, group}, n.name, epoch, seq)
		return
	}
	if err := n.peers.sendMsg(owner, &wire.QueueAck{Topic: topic, Group: group, Epoch: epoch, Seq: seq}); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

// endQueueMembers ends every queue member with ErrClosed (Close).
func (n *Node) endQueueMembers(stopOnly bool) {
	for _, lq := range n.queues.all() {
		lq.mu.Lock()
		members := lq.members
		lq.mu.Unlock()
		for _, s := range members {
			s.stopped.Store(true)
			if !stopOnly && s.end(ErrClosed) && s.fn == nil {
				n.queueDetach(s)
			}
		}
	}
}
