package gateway

import (
	"context"

	"github.com/ringcast/ringcast/pubsub/topics"
)

// Position is a place in a topic's order: an epoch and a sequence number.
type Position = topics.Position

// Recovery describes a subscription made with SubscribeSince.
type Recovery struct {
	// Unsubscribe ends the subscription.
	Unsubscribe func() error
	// Recovered is the number of messages taken from history, delivered
	// before any live one.
	Recovered int
	// Start is the position the subscription resumes after, with the
	// topic's actual epoch.
	Start Position
}

// ErrHistoryGone is wrapped by a Recoverer when history no longer reaches
// back to the requested position; the error should also be a
// *HistoryGoneError telling where the topic is now.
var ErrHistoryGone = topics.ErrHistoryGone

// HistoryGoneError tells a client that asked to resume where the topic is
// now (Current), so that it can start over.
type HistoryGoneError = topics.HistoryGoneError

// Recoverer is implemented by brokers that keep history (a ringcast node
// does; see package broker). It lets a client that reconnects resume where
// it left off: join with {"since": seq, "epoch": "e"}.
type Recoverer interface {
	// SubscribeSince is Subscribe starting right after from: deliver first
	// gets the messages after from that history still holds, then live ones,
	// without gap or duplicate. from.Epoch 0 accepts the current epoch. If
	// history no longer reaches back to from, it returns an error wrapping
	// ErrHistoryGone, preferably a *HistoryGoneError.
	SubscribeSince(ctx context.Context, topic string, from Position, deliver func(Message), closed func(error)) (Recovery, error)
}

// joinSince joins j with its own broker subscription that starts after
// from. Messages the broker delivers before SubscribeSince returns (the
// history) wait in the subscription until j is a member and reply(rec) is
// queued, so the client sees the join reply first, then the recovered
// messages, then live ones.
func (hb *hub) joinSince(ctx context.Context, j *join, r Recoverer, from Position, reply func(Recovery) outItem) error {
	_, err := hb.joinPrivate(ctx, j, func(ctx context.Context, t *topicSub) (func() error, outItem, error) {
		rec, err := r.SubscribeSince(ctx, j.topic, from, t.deliver, t.closed)
		if err != nil {
			return rec.Unsubscribe, outItem{}, err
		}
		return rec.Unsubscribe, reply(rec), nil
	})
	return err
}

// joinPrivate joins j with a broker subscription of its own, not in the
// hub's map (a recovering join's, a queue group member's), which
// subscribe makes within the join timeout. Messages delivered before
// subscribe returns wait in the subscription until j is a member and the
// reply subscribe returned is queued. subscribed is false when the error
// is subscribe's, or the subscription ended before j could join it.
func (hb *hub) joinPrivate(ctx context.Context, j *join, subscribe func(ctx context.Context, t *topicSub) (unsub func() error, reply outItem, err error)) (subscribed bool, err error) {
	// The subscription gets a shard of its own, of which only the lock is
	// used, in the same lock order as the hub's.
	s := new(hubShard)
	t := &topicSub{
		hub:     hb,
		shard:   s,
		topic:   j.topic,
		ready:   make(chan struct{}),
		state:   stateSubscribing,
		members: make(map[*join]struct{}),
		private: true,
	}
	j.private = s
	ctx, cancel := context.WithTimeout(ctx, hb.h.opts.JoinTimeout)
	unsub, reply, err := subscribe(ctx, t)
	cancel()
	s.Lock()
	defer close(t.ready)
	if err == nil && t.state == stateEnded {
		err = t.err
		unsub = nil
	}
	if err != nil {
		t.state = stateEnded
		s.Unlock()
		if unsub != nil {
			hb.unsubscribe(j.topic, unsub)
		}
		return false, err
	}
	t.state = stateActive
	t.unsubscribe = unsub
	hb.h.stats.topics.Add(1)
	if err := hb.attachLocked(t, j, reply); err != nil {
		unsub := hb.releaseLocked(t)
		s.Unlock()
		hb.unsubscribe(j.topic, unsub)
		return true, err
	}
	for _, b := range t.pre {
		j.conn.deliver(j, b)
	}
	t.pre = nil
	s.Unlock()
	return true, nil
}
