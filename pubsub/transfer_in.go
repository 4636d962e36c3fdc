package pubsub

import (
	"fmt"
	"slices"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// The receiving side of a transfer in parts (see transfer.go).

// inTransfer is a state this node receives in parts. Its fields are
// guarded by the transfers' mu; a transfer leaves the table exactly once,
// and whoever takes it out calls done.
type inTransfer struct {
	key   xferKey
	st    *wire.State // the first frame's fields, and the history gathered
	next  uint64      // index of the part expected next
	last  uint64      // sequence number of the newest entry gathered
	keep  int         // entries worth keeping: this node's HistorySize
	timer *timer
	want  func() bool // nil, or whether the state is still wanted
	done  func(st *wire.State, err error)
}

// receiveState gathers the state whose first frame is st, from peer from,
// and calls done once with the whole state, or with an error when the
// transfer ends without it. A state in one frame is passed on at once.
// want, if not nil, is asked at every part whether the state is still
// needed; when it is not the sender is told to stop.
func (n *Node) receiveState(from string, st *wire.State, want func() bool, done func(*wire.State, error)) {
	if st.Xfer == 0 {
		done(st, nil)
		return
	}
	x := &inTransfer{
		key: xferKey{from, st.Xfer}, st: st, next: 1,
		keep: max(n.cfg.HistorySize, 0), want: want, done: done,
	}
	if !ascending(0, st.History) {
		n.refusePart(from, st.Xfer, 0, "history out of order")
		done(nil, fmt.Errorf("%w: history of %q out of order", errTransferRefused, st.Topic))
		return
	}
	if k := len(st.History); k > 0 {
		x.last = st.History[k-1].Seq
	}
	t := n.owned.moves
	t.mu.Lock()
	if len(t.in) >= maxIncomingTransfers || t.in[x.key] != nil {
		t.mu.Unlock()
		n.refusePart(from, st.Xfer, 0, "too many transfers")
		done(nil, fmt.Errorf("%w: %d transfers under way", errTransferRefused, maxIncomingTransfers))
		return
	}
	t.in[x.key] = x
	x.timer = n.timers.after(n.transferIdle(), func() { n.expireTransfer(x) })
	t.mu.Unlock()
	n.ackPart(from, st.Xfer, 0)
}

// transferIdle is how long a receiver waits for the next part: longer
// than its sender waits for an acknowledgement, so that a sender that has
// queued its last part is never left with a receiver that gave up.
func (n *Node) transferIdle() time.Duration { return 2 * n.cfg.RequestTimeout }

// onStateChunk takes one part of a transfer.
func (n *Node) onStateChunk(from string, m *wire.StateChunk) {
	key := xferKey{from, m.Xfer}
	t := n.owned.moves
	t.mu.Lock()
	x := t.in[key]
	t.mu.Unlock()
	if x == nil {
		if !m.Abort {
			n.refusePart(from, m.Xfer, m.Index, "unknown transfer")
		}
		return
	}
	wanted := x.want == nil || x.want()
	t.mu.Lock()
	if t.in[key] != x {
		t.mu.Unlock()
		return
	}
	var err error
	switch {
	case m.Abort:
		err = fmt.Errorf("%w: the sender gave up", ErrUnavailable)
	case !wanted:
		err = fmt.Errorf("%w: state no longer wanted", errTransferRefused)
	case m.Index != x.next || m.Topic != x.st.Topic || !ascending(x.last, m.History):
		err = fmt.Errorf("%w: part %d of %q out of order", errTransferRefused, m.Index, m.Topic)
	default:
		x.add(m.History)
		x.next++
	}
	end := err != nil || m.Last
	if end {
		delete(t.in, key)
		x.timer.stop()
	} else {
		x.timer.reset(n.transferIdle())
	}
	t.mu.Unlock()
	switch {
	case err != nil && !m.Abort:
		n.refusePart(from, m.Xfer, m.Index, err.Error())
	case err == nil:
		n.ackPart(from, m.Xfer, m.Index)
	}
	if end {
		if err != nil {
			x.done(nil, err)
			return
		}
		x.done(x.st, nil)
	}
}

// add appends a part's entries, keeping no more than the newest x.keep
// (adoption keeps no more than that) beyond a slack that amortizes the
// copy.
func (x *inTransfer) add(h []wire.HistoryEntry) {
	if len(h) == 0 {
		return
	}
	x.last = h[len(h)-1].Seq
	x.st.History = append(x.st.History, h...)
	if k := len(x.st.History); k > 2*x.keep+histBlock {
		x.st.History = slices.Clone(x.st.History[k-x.keep:])
	}
}

// expireTransfer ends a transfer whose next part did not come in time.
func (n *Node) expireTransfer(x *inTransfer) {
	t := n.owned.moves
	t.mu.Lock()
	mine := t.in[x.key] == x
	if mine {
		delete(t.in, x.key)
	}
	t.mu.Unlock()
	if mine {
		n.log.Warn("topic state transfer timed out", "topic", x.st.Topic, "peer", x.key.peer, "parts", x.next)
		x.done(nil, fmt.Errorf("%w: no part of %q for %v", ErrUnavailable, x.st.Topic, n.transferIdle()))
	}
}

func (n *Node) ackPart(to string, xfer, index uint64) {
	if err := n.peers.sendMsg(to, &wire.ChunkAck{Xfer: xfer, Index: index}); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

func (n *Node) refusePart(to string, xfer, index uint64, why string) {
	if err := n.peers.sendMsg(to, &wire.ChunkAck{Xfer: xfer, Index: index, Code: codeUnavailable, Err: why}); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

// ascending reports whether the entries' sequence numbers increase, from
// above after.
func ascending(after uint64, h []wire.HistoryEntry) bool {
	for i := range h {
		if h[i].Seq <= after {
			return false
		}
		after = h[i].Seq
	}
	return true
}
