package pubsub

import (
	"context"
	"errors"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// Subscribe subscribes to topic and returns once the topic's owner has
// accepted the subscription: every message published after Subscribe
// returns is delivered, in order, once. Read messages with Next.
func (n *Node) Subscribe(ctx context.Context, topic string, opts ...SubscribeOption) (*Subscription, error) {
	return n.subscribe(ctx, topic, nil, opts)
}

// SubscribeFunc is Subscribe for callers that do not want a goroutine per
// subscription: fn is called for each message, in order, on one of the
// node's dispatcher workers (Config.Workers). Calls for one subscription
// never overlap; calls for different subscriptions run concurrently. fn
// must return quickly and must not block on other subscriptions (hand slow
// work to a goroutine of your own): a blocked fn holds a worker, and its
// buffer overflowing ends the subscription like any slow consumer. Use
// OnClose to learn that the node ended the subscription. Neither fn nor the
// OnClose function may call Close or Shutdown directly (see Close).
func (n *Node) SubscribeFunc(ctx context.Context, topic string, fn func(Message), opts ...SubscribeOption) (*Subscription, error) {
	if fn == nil {
		return nil, errors.New("pubsub: SubscribeFunc with a nil function")
	}
	return n.subscribe(ctx, topic, fn, opts)
}

func (n *Node) subscribe(ctx context.Context, topic string, fn func(Message), opts []SubscribeOption) (*Subscription, error) {
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	if n.isClosed() {
		return nil, ErrClosed
	}
	var tracked *Tracked
	if o.presence != nil {
		t, err := n.Track(ctx, topic, o.presence.key, o.presence.data)
		if err != nil {
			return nil, err
		}
		tracked = t
	}
	s := newSubscription(n, topic, fn, o)
	s.tracked = tracked
	if o.queueSet {
		s, err := n.subscribeQueue(ctx, s, o)
		if err != nil {
			tracked.Untrack()
		}
		return s, err
	}
	reg := &n.local.reg(topic).mu
	reg.Lock()
	lt, first := n.local.add(s)
	if first {
		n.register(lt, true)
	}
	reg.Unlock()
	if err := n.awaitReady(ctx, s, lt.ready); err != nil {
		return nil, err
	}
	lt.mu.Lock()
	err := lt.regErr
	lt.mu.Unlock()
	if err == nil && o.since != nil {
		err = n.recover(ctx, s, lt, *o.since)
	} else if err == nil {
		lt.mu.Lock()
		start := Position{Epoch: lt.epoch, Seq: lt.last}
		lt.mu.Unlock()
		s.mu.Lock()
		s.start = start
		s.mu.Unlock()
	}
	if err != nil {
		s.end(err)
		n.detach(s)
		return nil, err
	}
	return s, nil
}

// awaitReady waits until ready is closed (the registration s's Subscribe
// started was answered), ctx ends (s ends and is detached), or the node
// closes.
func (n *Node) awaitReady(ctx context.Context, s *Subscription, ready <-chan struct{}) error {
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		s.end(ctx.Err())
		n.detach(s)
		return ctx.Err()
	case <-n.done:
		return ErrClosed
	}
}

// register sends the topic's registration to its owner (0→1, or again
// after the owner changed). first marks the registration Subscribe waits
// for.
func (n *Node) register(lt *localTopic, first bool) {
	owner, err := n.ownerName(lt.name)
	lt.mu.Lock()
	req := &subReq{topic: lt.name, origin: n.name, since: lt.last, hasSince: lt.based}
	if err == nil && owner != lt.owner && lt.confirmed {
		// Until the new owner confirms, the old one still sends here.
		lt.former = lt.owner
	}
	lt.confirmed, lt.regAt = false, time.Now()
	if err == nil {
		lt.owner = owner
	}
	lt.mu.Unlock()
	req.done = func(owner string, epoch, seq uint64, err error) {
		n.onRegistered(lt, first, owner, epoch, seq, err)
	}
	n.log.Debug("registering topic with its owner", "topic", lt.name, "owner", owner, "first", first, "since", req.since, "resume", req.hasSince, "err", err)
	switch {
	case err != nil:
		req.done("", 0, 0, err)
	case owner == n.name:
		n.ownerSubscribe(req)
	default:
		if err := n.router.sendSubscribe(req, owner); err != nil {
			req.done("", 0, 0, err)
		}
	}
}

// onRegistered applies an owner's answer to a registration. When the owner
// is this node it runs under the owner's topic lock, so no message
// sequenced after the registration can be delivered before it.
func (n *Node) onRegistered(lt *localTopic, first bool, owner string, epoch, seq uint64, err error) {
	lt.mu.Lock()
	if err == nil {
		if owner != "" {
			lt.owner = owner
		}
		lt.confirmed = n.settleRegistration(lt, owner, epoch, seq)
	} else if !first {
		n.log.Warn("re-registering subscriptions failed; will retry", "topic", lt.name, "err", err)
	}
	if first {
		lt.regErr = err
		close(lt.ready)
	}
	lt.mu.Unlock()
	if first && err != nil {
		n.local.forget(lt)
	}
}

// epochWait is how long a local topic waits for its owner to take in the
// newer epoch the topic follows before it follows the owner's older one.
func (n *Node) epochWait() time.Duration { return 5 * n.cfg.ClaimTimeout }

// settleRegistration moves lt to the position an owner confirmed its
// registration at, and reports whether the registration is settled; one
// that is not is made again after reregisterAfter (see reconcile).
//
// An owner may confirm an epoch older than the one lt has delivered
// messages of: after a partition heals, the owner the ring settles on may
// not yet hold the other side's newer state, which its former owner is
// handing over. lt then keeps its position and asks again until the owner
// has caught up; only if the owner is still behind after epochWait (the
// newer state was lost with the nodes that held it) does lt follow the
// owner's epoch. lt.mu held.
func (n *Node) settleRegistration(lt *localTopic, owner string, epoch, seq uint64) bool {
	if lt.based && epoch != lt.epoch && !lt.takesEpoch(epoch) {
		now := time.Now()
		if lt.behindSince.IsZero() {
			lt.behindSince = now
			n.log.Info("owner is behind the epoch this node follows; waiting for it", "topic", lt.name, "owner", owner, "following", lt.epoch, "owner_epoch", epoch)
		}
		if now.Sub(lt.behindSince) < n.epochWait() {
			return false
		}
		n.log.Warn("owner never took in the newer epoch; following its own", "topic", lt.name, "owner", owner, "from", lt.epoch, "to", epoch)
	}
	lt.behindSince, lt.former = time.Time{}, ""
	switch {
	case !lt.based || epoch != lt.epoch:
		lt.based, lt.epoch, lt.last, lt.pending = true, epoch, seq, nil
	case seq > lt.last:
		// A resumed registration: the owner holds nothing between what
		// this node delivered and seq.
		if skipped := seq - lt.last; !failoverSkip(skipped) {
			n.stats.gaps.Add(1)
			n.stats.lost.Add(skipped)
			n.log.Info("sequence numbers skipped on resume", "topic", lt.name, "from", lt.last+1, "to", seq)
		}
		lt.last = seq
		for s := range lt.pending {
			if s <= seq {
				delete(lt.pending, s)
			}
		}
		n.local.drainPending(lt, false)
	}
	if owner != "" && owner == lt.refusedTo {
		// This node told the owner to stop sending here: the registration
		// may have reached it first, by another way. Make it once more.
		lt.refusedTo = ""
		return false
	}
	return true
}

// detach removes s from its topic and tells the owner when it was the last
// local subscriber (N→0).
func (n *Node) detach(s *Subscription) {
	s.tracked.Untrack()
	if s.group != "" {
		n.queueDetach(s)
		return
	}
	reg := &n.local.reg(s.topic).mu
	reg.Lock()
	defer reg.Unlock()
	owner, last := n.local.remove(s)
	if !last {
		return
	}
	n.unregister(s.topic, owner)
	// The owner recorded may be stale (it failed, or the topic moved before
	// this node re-registered): tell the current one too, or it would keep
	// sending to a node without subscribers.
	if cur, err := n.ownerName(s.topic); err == nil && cur != owner {
		n.unregister(s.topic, cur)
	}
}

// unregister tells owner that this node has no subscriber for topic left.
func (n *Node) unregister(topic, owner string) {
	if owner == n.name {
		n.ownerUnsubscribe(topic, n.name, 0)
		return
	}
	if err := n.peers.sendMsg(owner, &wire.Unsubscribe{Topic: topic, Origin: n.name}); err != nil && !n.isClosed() {
		n.log.Debug("unsubscribe not sent", "topic", topic, "owner", owner, "err", err)
	}
}
