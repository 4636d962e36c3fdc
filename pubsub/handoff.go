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
// frame (a reply to reqID when the new owner asked, a hand-off otherwise)
// and the topic becomes a tombstone forwarding to the new owner. Frames
// forwarded later follow the state on the same link, so they arrive after
// it.
func (n *Node) moveLocked(ot *ownedTopic, to string, reqID uint64, handoff bool) error {
	var st wire.Message = &wire.State{
		ReqID:   reqID,
		Topic:   ot.name,
		Found:   true,
		Epoch:   ot.epoch,
		Seq:     ot.seq,
		Nodes:   slices.Clone(ot.nodes),
		History: ot.hist.all(),
	}
	if handoff {
		st = &wire.Handoff{ReqID: reqID, Topic: ot.name, Epoch: ot.epoch, Seq: ot.seq, Nodes: slices.Clone(ot.nodes), History: ot.hist.all()}
	}
	if err := n.peers.sendMsg(to, st); err != nil {
		return err
	}
	ot.state, ot.movedTo, ot.nodes = stateMoved, to, nil
	// Empty, with the configured bounds: the topic may be handed back
	// onto this tombstone.
	ot.hist = n.retention.newHistory()
	n.stats.handoffs.Add(1)
	n.log.Debug("topic moved", "topic", ot.name, "to", to, "seq", ot.seq)
	return nil
}

// handoff pushes a ready topic to its new owner and calls done (if not nil)
// with the outcome once the new owner acknowledged it.
func (n *Node) handoff(ot *ownedTopic, to string, done func(error)) {
	ot.mu.Lock()
	defer ot.mu.Unlock()
	if ot.state != stateReady || ot.gone.Load() {
		if done != nil {
			done(nil)
		}
		return
	}
	id := n.pending.add(to, n.cfg.RequestTimeout, func(_ string, msg wire.Message, err error) {
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
	}
}

// onStateRequest answers a node claiming a topic: it gets the state if this
// node holds it ready, and the topic moves to it.
func (n *Node) onStateRequest(from string, req *wire.StateRequest) {
	if ot := n.lockOwned(req.Topic); ot != nil {
		defer ot.mu.Unlock()
		if req.Peek {
			st := &wire.State{ReqID: req.ReqID, Topic: ot.name}
			if ot.state == stateReady {
				st.Found, st.Epoch, st.Seq = true, ot.epoch, ot.seq
			}
			_ = n.peers.sendMsg(from, st)
			return
		}
		if ot.state == stateReady {
			if err := n.moveLocked(ot, from, req.ReqID, false); err == nil {
				return
			}
		}
	}
	st := &wire.State{Topic: req.Topic}
	if rt := n.replicas.get(req.Topic); rt != nil && !req.Peek {
		if rs := n.replicas.state(rt, req.Topic); rs != nil {
			st = rs
		}
	}
	st.ReqID = req.ReqID
	_ = n.peers.sendMsg(from, st)
}

// onHandoff adopts a topic pushed by its previous owner.
func (n *Node) onHandoff(from string, st *wire.Handoff) {
	if err := ValidateTopic(st.Topic); err != nil {
		n.stats.badFrames.Add(1)
		n.log.Warn("hand-off of an invalid topic refused", "peer", from, "err", err)
		return
	}
	find := func() *ownedTopic {
		ot, _ := n.owned.acquire(st.Topic)
		return ot
	}
	ot := relock(find(), find)
	n.adoptLocked(ot, st.State())
	n.runQueuedLocked(ot)
	ot.mu.Unlock()
	_ = n.peers.sendMsg(from, &wire.StateAck{ReqID: st.ReqID})
	if n.leaving.Load() {
		// Pushed here by a node that has not yet seen this one drain: pass
		// it on to the owner without this node.
		if m, err := n.view().Owner(st.Topic); err == nil {
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
