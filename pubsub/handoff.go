package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// moveLocked hands a ready topic to another node: its state goes in one
// frame when it fits one part, in parts otherwise (see transfer.go), as a
// reply to reqID when the new owner asked, a hand-off otherwise, and the
// topic becomes a tombstone forwarding to the new owner. Frames forwarded
// later follow the state on the same link, so they arrive after it. A
// state sent in parts has not left yet when moveLocked returns: the topic
// queues requests until its last part is queued, and stays here if the
// transfer fails.
func (n *Node) moveLocked(ot *ownedTopic, to string, reqID uint64, handoff bool) error {
	st := &wire.State{
		ReqID:   reqID,
		Topic:   ot.name,
		Found:   true,
		Epoch:   ot.epoch,
		Seq:     ot.seq,
		Nodes:   slices.Clone(ot.nodes),
		History: ot.hist.all(),
	}
	var msg wire.Message = st
	if handoff {
		msg = &wire.Handoff{ReqID: reqID, Topic: ot.name, Epoch: ot.epoch, Seq: ot.seq, Nodes: st.Nodes, History: st.History}
	}
	first, rest := n.partLimits(ot.name, st.Nodes)
	if ends := planParts(st.History, first, rest); len(ends) > 1 {
		n.sendParts(ot, to, msg, st, ends)
		return nil
	}
	if err := n.peers.sendMsg(to, msg); err != nil {
		return err
	}
	n.movedLocked(ot, to)
	return nil
}

// movedLocked makes ot, whose state has left for to, a tombstone.
func (n *Node) movedLocked(ot *ownedTopic, to string) {
	ot.state, ot.movedTo, ot.nodes = stateMoved, to, nil
	if ot.dur != nil {
		// The new owner claims the topic in the store: this node's claim
		// is void, and what waited for it goes there.
		ot.dur.token, ot.dur.next = 0, ot.seq
		n.failDurableLocked(ot, nil)
	}
	// Empty, with the configured bounds: the topic may be handed back
	// onto this tombstone.
	ot.hist = n.retention.newHistory()
	n.stats.handoffs.Add(1)
	n.log.Debug("topic moved", "topic", ot.name, "to", to, "seq", ot.seq)
}

// handoff pushes a ready topic to its new owner and calls done (if not nil)
// with the outcome once the new owner acknowledged it. A topic whose state
// is already on its way calls done when that transfer is over.
func (n *Node) handoff(ot *ownedTopic, to string, done func(error)) {
	ot.mu.Lock()
	defer ot.mu.Unlock()
	if x := ot.out; x != nil && done != nil && !ot.gone.Load() {
		x.mu.Lock()
		x.waiters = append(x.waiters, done)
		x.mu.Unlock()
		return
	}
	if ot.state != stateReady || ot.gone.Load() {
		if done != nil {
			done(nil)
		}
		return
	}
	// The wait for the acknowledgement starts once the state has left:
	// a state in parts takes as long as its transfer progresses.
	id := n.pending.add(to, 0, func(_ string, msg wire.Message, err error) {
		if ack, ok := msg.(*wire.StateAck); ok {
			err = codeError(ack.Code, ack.Err)
		}
		if err != nil {
			n.log.Warn("topic hand-off not acknowledged", "topic", ot.name, "to", to, "err", err)
		}
		if done != nil {
			done(err)
		}
	})
	if err := n.moveLocked(ot, to, id, true); err != nil {
		n.pending.cancel(id)
		n.log.Warn("topic hand-off failed", "topic", ot.name, "to", to, "err", err)
		if done != nil {
			done(err)
		}
		return
	}
	if ot.out == nil {
		n.awaitStateAck(id) // sent in one frame (or in parts, all queued already)
	}
}

// awaitStateAck fails the hand-off request id if its acknowledgement has
// not come within RequestTimeout.
func (n *Node) awaitStateAck(id uint64) {
	n.timers.after(n.cfg.RequestTimeout, func() {
		if r := n.pending.take(id); r != nil {
			r.fn("", nil, fmt.Errorf("%w: no acknowledgement of the hand-off", ErrUnavailable))
		}
	})
}

// onStateRequest answers a node claiming a topic: it gets the state if this
// node holds it ready, and the topic moves to it. While the state is being
// sent elsewhere, the request waits for that transfer's outcome.
func (n *Node) onStateRequest(from string, req *wire.StateRequest) {
	if ot := n.lockOwned(req.Topic); ot != nil {
		answered := n.answerStateLocked(ot, from, req)
		ot.mu.Unlock()
		if answered {
			return
		}
	}
	n.answerFromReplica(from, req)
}

// answerStateLocked answers req from the owner's state, and reports false
// when this node does not hold it. ot.mu held.
func (n *Node) answerStateLocked(ot *ownedTopic, from string, req *wire.StateRequest) bool {
	holds := ot.state == stateReady || ot.out != nil
	switch {
	case req.Peek:
		st := &wire.State{ReqID: req.ReqID, Topic: ot.name}
		if holds {
			st.Found, st.Epoch, st.Seq = true, ot.epoch, ot.seq
		}
		_ = n.peers.sendMsg(from, st)
		return true
	case ot.out != nil:
		if len(ot.queued) >= maxQueued {
			return false
		}
		ot.queued = append(ot.queued, ownerOp{state: &stateReq{from: from, m: *req}})
		return true
	case ot.state == stateReady:
		return n.moveLocked(ot, from, req.ReqID, false) == nil
	}
	return false
}

// answerFromReplica answers a claim with this node's replica copy, if it
// keeps one, or says it holds nothing.
func (n *Node) answerFromReplica(from string, req *wire.StateRequest) {
	st := &wire.State{Topic: req.Topic}
	if rt := n.replicas.get(req.Topic); rt != nil && !req.Peek {
		if rs := n.replicas.state(rt, req.Topic); rs != nil {
			st = rs
		}
	}
	st.ReqID = req.ReqID
	first, rest := n.partLimits(st.Topic, st.Nodes)
	if ends := planParts(st.History, first, rest); len(ends) > 1 {
		n.sendParts(nil, from, st, st, ends)
		return
	}
	_ = n.peers.sendMsg(from, st)
}

// onHandoff adopts a topic pushed by its previous owner. A state in parts
// is adopted once its last part arrives; meanwhile the topic, if this node
// was not serving it, queues requests.
func (n *Node) onHandoff(from string, m *wire.Handoff) {
	if err := ValidateTopic(m.Topic); err != nil {
		n.stats.badFrames.Add(1)
		n.log.Warn("hand-off of an invalid topic refused", "kind", "invalid-topic", "peer", from, "err", err)
		return
	}
	created := false
	find := func() *ownedTopic {
		ot, c := n.owned.acquire(m.Topic)
		created = created || c
		return ot
	}
	ot := relock(find(), find)
	if m.Xfer == 0 {
		n.adoptLocked(ot, m.State())
		n.leaseAdoptedLocked(ot)
		n.runQueuedLocked(ot)
		ot.mu.Unlock()
		n.handoffAdopted(from, ot, m.ReqID)
		return
	}
	if ot.in != nil || ot.out != nil {
		ot.mu.Unlock()
		n.refusePart(from, m.Xfer, 0, "topic already moving")
		return
	}
	in := &handoffIn{created: created && ot.state == stateClaiming}
	ot.in = in
	ot.mu.Unlock()
	n.receiveState(from, m.State(), nil, func(st *wire.State, err error) {
		n.handoffReceived(from, ot, in, m.ReqID, st, err)
	})
}

// handoffReceived ends a hand-off received in parts: the state is adopted,
// or, when the transfer failed, the topic goes back to the claim it was
// under (or starts one).
func (n *Node) handoffReceived(from string, ot *ownedTopic, in *handoffIn, reqID uint64, st *wire.State, err error) {
	ot.mu.Lock()
	if ot.in == in {
		ot.in = nil
	}
	if err != nil {
		claiming := ot.state == stateClaiming && ot.out == nil && !ot.gone.Load()
		switch {
		case claiming && in.claimed:
			n.settleClaimLocked(ot, in.fallback)
			ot.mu.Unlock()
			n.passOnIfLeaving(ot)
		case claiming && in.created:
			if owner, oerr := n.ringOwner(ot.name); oerr == nil && owner != n.name {
				// Not this node's topic: the sender kept it, and what
				// was queued here goes to the owner.
				ot.state, ot.movedTo = stateMoved, owner
				n.runQueuedLocked(ot)
				ot.mu.Unlock()
				return
			}
			ot.mu.Unlock()
			n.startClaim(ot)
		default:
			ot.mu.Unlock()
		}
		return
	}
	if ot.gone.Load() {
		// Dropped meanwhile (a tombstone every view moved past): adopt
		// into the table's current state.
		ot.mu.Unlock()
		find := func() *ownedTopic { ot, _ := n.owned.acquire(st.Topic); return ot }
		ot = relock(find(), find)
	}
	n.adoptLocked(ot, st)
	n.leaseAdoptedLocked(ot)
	n.runQueuedLocked(ot)
	ot.mu.Unlock()
	n.handoffAdopted(from, ot, reqID)
}

// leaseAdoptedLocked claims a durable topic handed off to this node in
// the store at once, rather than at its next publish. The previous owner
// may have committed messages after its state left (their commits were
// under way): the claim fences those still in flight, which then come
// here as publishes, and learns the store's head past the ones that made
// it, which applyLeaseLocked sends to the subscriber nodes from the
// store. Without it, a topic that has no next publish would leave its
// subscribers short of its last messages. ot.mu held.
func (n *Node) leaseAdoptedLocked(ot *ownedTopic) {
	if ot.dur != nil && ot.dur.token == 0 && ot.state == stateReady && !ot.gone.Load() {
		n.leaseLocked(ot)
	}
}

// handoffAdopted acknowledges an adopted hand-off, and passes the topic on
// when this node is draining.
func (n *Node) handoffAdopted(from string, ot *ownedTopic, reqID uint64) {
	_ = n.peers.sendMsg(from, &wire.StateAck{ReqID: reqID})
	if n.leaving.Load() {
		// Pushed here by a node that has not yet seen this one drain: pass
		// it on to the owner without this node.
		if m, err := n.view().Owner(ot.name); err == nil {
			n.handoff(ot, m.Name, nil)
		}
	}
}

// linger keeps a draining node forwarding requests to the new owners until
// none has arrived for lingerQuiet (other nodes' views have caught up), or
// ctx is done.
func (n *Node) linger(ctx context.Context) {
	t := time.NewTicker(lingerQuiet / 5)
	defer t.Stop()
	start := time.Now()
	for {
		last := time.Unix(0, n.lastRequest.Load())
		if start.After(last) {
			last = start
		}
		if time.Since(last) >= lingerQuiet {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lingerQuiet is how long a draining node must see no request before it
// leaves: several gossip rounds at the default timings.
const lingerQuiet = 300 * time.Millisecond

// handOffAll moves every owned topic to its owner in the ring without this
// node and waits for the acknowledgements.
func (n *Node) handOffAll(ctx context.Context) error {
	v := n.view()
	type move struct {
		ot *ownedTopic
		to string
	}
	var moves []move
	for _, ot := range n.owned.all() {
		if m, err := v.Owner(ot.name); err == nil {
			moves = append(moves, move{ot, m.Name})
		} // else no other owner: the topic ends with this node
	}
	var (
		mu      sync.Mutex
		errs    []error
		left    = len(moves)
		waited  = make(chan struct{})
		settled = func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if left--; left == 0 {
				close(waited)
			}
		}
	)
	if left == 0 {
		close(waited)
	}
	for _, mv := range moves {
		n.handoff(mv.ot, mv.to, settled)
	}
	select {
	case <-waited:
	case <-ctx.Done():
		// Close fails whatever is still waiting.
		return fmt.Errorf("pubsub: hand-off: %w", ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("pubsub: hand-off of %d topics failed: %w", len(errs), errors.Join(errs...))
	}
	return nil
}
