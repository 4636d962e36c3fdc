package pubsub

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// historyRetry is the pause before asking an owner again that could not
// serve a history request yet.
const historyRetry = 50 * time.Millisecond

// historyPage is what an owner says about a range of a topic's history.
type historyPage struct {
	owner   string // the node that answered (fetchHistory only)
	epoch   uint64
	seq     uint64 // the topic's last sequence number
	oldest  uint64 // lowest retained sequence number (seq+1 when none)
	entries []wire.HistoryEntry
}

// historyReplyBytes bounds the data in one History frame; a longer range is
// fetched in several pages. A page holds at least one message, and never
// more than the link's frame limit (linkFrameLimit) leaves room for: 32 KiB
// above MaxPayload cover the entries' headers and the frame's fields.
func (n *Node) historyReplyBytes() int {
	return min(max(n.cfg.MaxPayload, 256<<10), n.cfg.MaxPayload+32<<10)
}

// lockServedOrClaim returns the owner state of a topic this node serves, locked,
// starting a claim when the ring says this node owns a topic it holds no
// state for (a history request can be the first to arrive after a
// failover). It returns nil when another node serves the topic.
func (n *Node) lockServedOrClaim(topic string) *ownedTopic {
	if ot := n.lockOwned(topic); ot != nil {
		return ot
	}
	if owner, err := n.ownerName(topic); err != nil || owner != n.name {
		return nil
	}
	return n.lockOwnedOrClaim(topic)
}

func (n *Node) historyPageLocked(ot *ownedTopic, after, until uint64) historyPage {
	p := historyPage{epoch: ot.epoch, seq: ot.seq, oldest: ot.hist.oldest()}
	if p.oldest == 0 {
		p.oldest = ot.seq + 1
	}
	p.entries = ot.hist.window(after, until, n.historyReplyBytes())
	return p
}

// onHistoryRequest answers a subscriber node that repairs a gap or a
// subscription that recovers with Since. A topic being claimed answers once
// it is ready.
func (n *Node) onHistoryRequest(from string, m *wire.HistoryRequest) {
	if ValidateTopic(m.Topic) != nil {
		n.replyHistoryLocked(nil, from, m)
		return
	}
	if ot := n.lockServedOrClaim(m.Topic); ot != nil {
		defer ot.mu.Unlock()
		if ot.state == stateClaiming && len(ot.queued) < maxQueued {
			ot.queued = append(ot.queued, ownerOp{hist: &histReq{from: from, m: *m}})
			return
		}
		n.replyHistoryLocked(ot, from, m)
		return
	}
	n.replyHistoryLocked(nil, from, m)
}

// replyHistoryLocked answers m from ot (nil: not served here): at once
// from the in-memory history, or later from the store when the request
// reaches back before it (a durable topic). ot.mu held.
func (n *Node) replyHistoryLocked(ot *ownedTopic, from string, m *wire.HistoryRequest) {
	send := func(p historyPage, err error) {
		reply := &wire.History{ReqID: m.ReqID, Topic: m.Topic}
		if err != nil {
			reply.Code, reply.Err = errorCode(err), err.Error()
		} else {
			reply.Epoch, reply.Seq, reply.Oldest, reply.Entries = p.epoch, p.seq, p.oldest, p.entries
			if m.Limit > 0 && len(reply.Entries) > int(m.Limit) {
				reply.Entries = reply.Entries[:m.Limit]
			}
		}
		if err := n.peers.sendMsg(from, reply); err != nil {
			n.stats.sendErrors.Add(1)
		}
	}
	if ot == nil || ot.state != stateReady {
		send(historyPage{}, fmt.Errorf("%w: %s does not serve %q", ErrUnavailable, n.name, m.Topic))
		return
	}
	n.pageLocked(ot, m.After, m.Until, int(m.Limit), send)
}

// pageLocked reads a page of a ready topic's history and passes it to
// done: at once from memory, or on another goroutine from the store when
// the page reaches back before the in-memory history of a durable topic.
// ot.mu held.
func (n *Node) pageLocked(ot *ownedTopic, after, until uint64, limit int, done func(historyPage, error)) {
	if storeHistory(ot, after) {
		n.readStoreHistory(ot.name, historyPage{epoch: ot.epoch, seq: ot.seq}, after, until, limit, done)
		return
	}
	done(n.historyPageLocked(ot, after, until), nil)
}

// requestHistory asks the topic's owner for a page of history without
// blocking. A request that cannot be sent returns its error; otherwise done
// gets the answer (or the timeout) later, on another goroutine, so a caller
// may hold its own locks. A local owner's in-memory history is read at
// once, and done runs before requestHistory returns, with the topic's lock
// held; a page from the store comes on another goroutine.
func (n *Node) requestHistory(owner, topic string, after, until uint64, done func(historyPage, error)) error {
	if owner == n.name {
		ot := n.lockServedOrClaim(topic)
		if ot == nil {
			return fmt.Errorf("%w: %q is changing owner", ErrUnavailable, topic)
		}
		defer ot.mu.Unlock()
		if ot.state != stateReady {
			return fmt.Errorf("%w: %q is changing owner", ErrUnavailable, topic)
		}
		n.pageLocked(ot, after, until, 0, done)
		return nil
	}
	id := n.pending.add(owner, n.cfg.RequestTimeout, func(_ string, msg wire.Message, err error) {
		h, ok := msg.(*wire.History)
		if !ok {
			done(historyPage{}, err)
			return
		}
		if err := codeError(h.Code, h.Err); err != nil {
			done(historyPage{}, err)
			return
		}
		done(historyPage{epoch: h.Epoch, seq: h.Seq, oldest: h.Oldest, entries: h.Entries}, nil)
	})
	if err := n.peers.sendMsg(owner, &wire.HistoryRequest{ReqID: id, Topic: topic, After: after, Until: until}); err != nil {
		n.pending.cancel(id)
		return err
	}
	return nil
}

// servingOwner returns the node to ask about topic: the owner in this
// node's view, or where this node moved the topic to while every view
// catches up.
func (n *Node) servingOwner(topic string) (string, error) {
	ot := n.owned.get(topic)
	if ot == nil {
		return n.ringOwner(topic)
	}
	ot.mu.Lock()
	defer ot.mu.Unlock()
	if ot.state == stateMoved && !ot.gone.Load() {
		return ot.movedTo, nil
	}
	return n.name, nil
}

// fetchHistory collects the history of topic in (after, until] from its
// owner, page by page, waiting until ctx is done. An owner that is not
// serving the topic yet (it is taking it over) is asked again.
func (n *Node) fetchHistory(ctx context.Context, topic string, after, until uint64) (historyPage, error) {
	var all historyPage
	for {
		owner, err := n.servingOwner(topic)
		if err != nil {
			return historyPage{}, err
		}
		ch := make(chan struct {
			p   historyPage
			err error
		}, 1)
		err = n.requestHistory(owner, topic, after, until, func(p historyPage, err error) {
			ch <- struct {
				p   historyPage
				err error
			}{p, err}
		})
		var r struct {
			p   historyPage
			err error
		}
		if err != nil {
			r.err = err
		} else {
			select {
			case r = <-ch:
			case <-ctx.Done():
				return historyPage{}, ctx.Err()
			case <-n.done:
				return historyPage{}, ErrClosed
			}
		}
		if errors.Is(r.err, ErrUnavailable) {
			select {
			case <-time.After(historyRetry):
				continue
			case <-ctx.Done():
				return historyPage{}, fmt.Errorf("%w (last: %w)", ctx.Err(), r.err)
			case <-n.done:
				return historyPage{}, ErrClosed
			}
		}
		if r.err != nil {
			return historyPage{}, r.err
		}
		if all.epoch == 0 {
			all.owner, all.epoch, all.oldest = owner, r.p.epoch, r.p.oldest
		} else if r.p.epoch != all.epoch {
			return historyPage{}, fmt.Errorf("%w: %q changed epoch while its history was read", ErrUnavailable, topic)
		}
		all.seq = r.p.seq
		all.entries = append(all.entries, r.p.entries...)
		if len(r.p.entries) == 0 {
			return all, nil
		}
		after = r.p.entries[len(r.p.entries)-1].Seq
		if after >= until {
			return all, nil
		}
	}
}

// recover brings a new Since subscription up to date: it fetches the
// history between the requested position and what the node has delivered
// so far, then releases what arrived live meanwhile. A position the topic
// cannot resume from (another epoch, evicted history, or beyond the last
// message the owner sequenced) is a *HistoryGoneError naming where the
// topic is.
func (n *Node) recover(ctx context.Context, s *Subscription, lt *localTopic, from Position) error {
	lt.mu.Lock()
	epoch, last := lt.epoch, lt.last
	lt.mu.Unlock()
	gone := &HistoryGoneError{Topic: s.topic, Requested: from, Current: Position{Epoch: epoch, Seq: last}}
	if from.Epoch != 0 && from.Epoch != epoch {
		return gone
	}
	if from.Seq > last {
		// This node may only be behind the owner (messages on their way);
		// a position beyond the owner's last message was never reached, and
		// waiting for it would mute the subscription until the topic got
		// there: the caller starts over from where the topic is.
		p, err := n.fetchHistory(ctx, s.topic, math.MaxUint64, math.MaxUint64)
		if err != nil {
			return err
		}
		if p.epoch != epoch || p.seq < from.Seq {
			gone.Current = Position{Epoch: p.epoch, Seq: p.seq}
			return gone
		}
	}
	var entries []wire.HistoryEntry
	if from.Seq < last {
		p, err := n.fetchHistory(ctx, s.topic, from.Seq, last)
		if err != nil {
			return err
		}
		gone.Oldest = p.oldest
		if p.epoch != epoch {
			gone.Current.Epoch = p.epoch
			return gone
		}
		if p.oldest > from.Seq+1 {
			return gone
		}
		entries = p.entries
	}
	s.finishRecovery(entries, epoch, from.Seq)
	return nil
}
