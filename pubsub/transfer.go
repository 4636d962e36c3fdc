package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// Transfers. A topic's state (epoch, sequence, subscriber nodes, history)
// moves between nodes in one frame when it fits one part. A larger one moves
// in parts, so that it never builds a frame above the link's limit and
// never fills the link's queue, whatever its history holds: the first frame
// (a State answering a claim, or a Handoff) carries the sequence, the nodes
// and the first part of the history, with Xfer naming the transfer;
// StateChunk frames carry the rest, at most transferPartBytes each (but at
// least one entry). The receiver acknowledges each part with a ChunkAck and
// the sender keeps at most transferWindow parts unacknowledged. A full
// queue makes the sender wait and try again; a transfer without progress
// for RequestTimeout ends.
//
// The sender's topic queues requests while its parts are sent (it sits in
// the claiming state, with out set), so its history and sequence cannot
// change under the transfer. Once the last part is queued on the link the
// topic becomes a tombstone and the queued requests are forwarded after it:
// frames forwarded after a move follow the state on the same link, as with
// one frame. A transfer that ends before that leaves the topic with its
// old owner, which serves the queued requests itself. The receiver adopts
// the state only once the last part has arrived; until then its topic
// stays in the claiming state and queues requests.

// transferPartBytes bounds the history one part of a transfer carries.
const transferPartBytes = 256 << 10

// transferWindow is how many parts of a transfer may await their
// acknowledgement.
const transferWindow = 4

// maxIncomingTransfers bounds the transfers a node receives at once.
const maxIncomingTransfers = 4096

// Backoff of a sender whose link queue is full.
const (
	transferRetryMin = 2 * time.Millisecond
	transferRetryMax = 100 * time.Millisecond
)

// errTransferRefused reports a transfer its receiver did not take.
var errTransferRefused = errors.New("pubsub: state transfer refused")

// xferKey names a transfer a node receives: the sender and its id.
type xferKey struct {
	peer string
	id   uint64
}

// transfers holds the transfers a node sends and receives in parts.
type transfers struct {
	mu   sync.Mutex
	next uint64
	out  map[uint64]*outTransfer
	in   map[xferKey]*inTransfer

	// sendHook, when set, replaces how parts are queued, so that tests
	// can stand for a link whose queue is full.
	sendHook atomic.Pointer[func(to string, m wire.Message) error]
}

// sendPart queues one part of a transfer on the link to peer to.
func (n *Node) sendPart(to string, m wire.Message) error {
	if h := n.owned.moves.sendHook.Load(); h != nil {
		return (*h)(to, m)
	}
	return n.peers.sendMsg(to, m)
}

func newTransfers() *transfers {
	return &transfers{out: make(map[uint64]*outTransfer), in: make(map[xferKey]*inTransfer)}
}

// planParts splits entries into consecutive parts and returns the end of
// each in entries. A part holds entries whose encoding takes at most limit
// bytes (first for the first part, which also carries the subscriber
// nodes), and at least one entry but for the first. One part means the
// state fits one frame.
func planParts(entries []wire.HistoryEntry, first, limit int) []int {
	var ends []int
	start, size, max := 0, 0, first
	for i := range entries {
		sz := wire.HistoryEntrySize(len(entries[i].Data))
		if size+sz > max && (i > start || len(ends) == 0) {
			ends = append(ends, i)
			start, size, max = i, 0, limit
		}
		size += sz
	}
	return append(ends, len(entries))
}

// partLimits returns the history bytes the first part and the others of a
// transfer of topic may carry.
func (n *Node) partLimits(topic string, nodes []string) (first, rest int) {
	frame := linkFrameLimit(n.cfg)
	first = min(transferPartBytes, frame-wire.StateOverhead(topic, nodes))
	rest = min(transferPartBytes, frame-wire.StateOverhead(topic, nil))
	return first, rest
}

// outTransfer is a state this node sends in parts. Its fields are guarded
// by mu, taken after ot.mu when ot is set.
type outTransfer struct {
	n       *Node
	id      uint64
	to      string
	topic   string
	ot      *ownedTopic // the owner's topic it moves; nil for a replica's copy
	first   wire.Message
	entries []wire.HistoryEntry
	ends    []int
	handoff bool   // a Handoff: the StateAck answers reqID
	reqID   uint64 // the Handoff's pending request

	mu      sync.Mutex
	sent    int // parts queued on the link
	acked   int // parts acknowledged
	over    bool
	backoff time.Duration
	stall   *timer
	retry   *timer
	waiters []func(error) // called when the transfer commits or ends
}

// sendParts starts sending st in parts to peer to; ot, when not nil, is the
// owner's topic it moves, locked by the caller. first is st, or the
// Handoff it makes.
func (n *Node) sendParts(ot *ownedTopic, to string, first wire.Message, st *wire.State, ends []int) {
	x := &outTransfer{
		n: n, to: to, topic: st.Topic, ot: ot, first: first,
		entries: st.History, ends: ends, backoff: transferRetryMin,
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.stall = n.timers.after(n.cfg.RequestTimeout, x.stalled)
	t := n.owned.moves
	t.mu.Lock()
	t.next++
	x.id = t.next
	t.out[x.id] = x
	t.mu.Unlock()
	switch m := first.(type) {
	case *wire.State:
		m.History, m.Xfer = st.History[:ends[0]], x.id
	case *wire.Handoff:
		m.History, m.Xfer, x.handoff, x.reqID = st.History[:ends[0]], x.id, true, m.ReqID
	}
	if ot != nil {
		ot.state, ot.out = stateClaiming, x
	}
	n.log.Debug("topic state sent in parts", "topic", st.Topic, "to", to, "parts", len(ends), "entries", len(st.History))
	x.pumpLocked()
}

// lock takes the transfer's locks: the topic's first.
func (x *outTransfer) lock() {
	if x.ot != nil {
		x.ot.mu.Lock()
	}
	x.mu.Lock()
}

func (x *outTransfer) unlock() {
	x.mu.Unlock()
	if x.ot != nil {
		x.ot.mu.Unlock()
	}
}

// pump sends what the window allows; it runs when a queue-full wait ends.
func (x *outTransfer) pump() {
	x.lock()
	defer x.unlock()
	x.pumpLocked()
}

// part returns the message carrying part i.
func (x *outTransfer) part(i int) wire.Message {
	if i == 0 {
		return x.first
	}
	return &wire.StateChunk{
		Xfer: x.id, Topic: x.topic, Index: uint64(i), Last: i == len(x.ends)-1,
		History: x.entries[x.ends[i-1]:x.ends[i]],
	}
}

// pumpLocked queues parts while the window has room. A full queue is
// tried again after a backoff; any other failure ends the transfer.
func (x *outTransfer) pumpLocked() {
	for !x.over && x.sent < len(x.ends) && x.sent-x.acked < transferWindow {
		err := x.n.sendPart(x.to, x.part(x.sent))
		if errors.Is(err, ErrQueueFull) {
			if x.retry == nil {
				x.retry = x.n.timers.after(x.backoff, x.pump)
			} else {
				x.retry.reset(x.backoff)
			}
			x.backoff = min(2*x.backoff, transferRetryMax)
			return
		}
		if err != nil {
			x.endLocked(err, false)
			return
		}
		x.backoff = transferRetryMin
		x.sent++
		if x.sent == len(x.ends) {
			x.commitLocked()
		}
	}
}

// commitLocked runs once the last part is queued: the state has left.
func (x *outTransfer) commitLocked() {
	x.finishLocked()
	n := x.n
	if x.ot != nil && x.ot.out == x {
		x.ot.out = nil
		n.movedLocked(x.ot, x.to)
		n.runQueuedLocked(x.ot)
	}
	if x.handoff {
		// The receiver answers the last part with the StateAck once it
		// has adopted the state.
		n.awaitStateAck(x.reqID)
	}
	for _, w := range x.waiters {
		w(nil)
	}
}

// endLocked ends the transfer before its last part left: the owner keeps
// the topic and serves what was queued meanwhile. notify tells the
// receiver to drop what it gathered.
func (x *outTransfer) endLocked(err error, notify bool) {
	x.finishLocked()
	n := x.n
	if notify && x.sent > 0 {
		_ = n.peers.sendMsg(x.to, &wire.StateChunk{Xfer: x.id, Topic: x.topic, Abort: true})
	}
	level := slog.LevelWarn
	if errors.Is(err, errTransferRefused) {
		level = slog.LevelDebug // the receiver no longer needs it
	}
	n.log.Log(context.Background(), level, "topic state transfer ended", "topic", x.topic, "to", x.to, "sent", x.sent, "parts", len(x.ends), "err", err)
	if x.ot != nil && x.ot.out == x {
		x.ot.out = nil
		x.ot.state = stateReady
		n.runQueuedLocked(x.ot)
	}
	if x.handoff {
		if r := n.pending.take(x.reqID); r != nil {
			r.fn("", nil, err)
		}
	}
	for _, w := range x.waiters {
		w(err)
	}
}

// finishLocked marks the transfer over, stops its timers and forgets it.
func (x *outTransfer) finishLocked() {
	x.over = true
	x.stall.stop()
	if x.retry != nil {
		x.retry.stop()
	}
	t := x.n.owned.moves
	t.mu.Lock()
	delete(t.out, x.id)
	t.mu.Unlock()
}

// stalled ends a transfer whose receiver acknowledged nothing for
// RequestTimeout.
func (x *outTransfer) stalled() {
	x.lock()
	defer x.unlock()
	if !x.over {
		x.endLocked(fmt.Errorf("%w: no progress for %v", ErrUnavailable, x.n.cfg.RequestTimeout), true)
	}
}

// cancelLocked ends a transfer whose topic took another state meanwhile
// (a hand-off reached it). ot.mu held.
func (x *outTransfer) cancelLocked() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.over {
		x.ot.out = nil // the caller decides the topic's state
		x.endLocked(fmt.Errorf("%w: the topic's state changed", ErrUnavailable), true)
	}
}

// onChunkAck moves a transfer's window on, or ends it when the receiver
// refused it.
func (n *Node) onChunkAck(from string, m *wire.ChunkAck) {
	t := n.owned.moves
	t.mu.Lock()
	x := t.out[m.Xfer]
	t.mu.Unlock()
	if x == nil || x.to != from {
		return // committed or ended already
	}
	x.lock()
	defer x.unlock()
	switch {
	case x.over:
	case m.Code != codeOK:
		x.endLocked(fmt.Errorf("%w: %w", errTransferRefused, codeError(m.Code, m.Err)), false)
	case m.Index >= uint64(x.sent):
		x.endLocked(fmt.Errorf("%w: part %d acknowledged before it was sent", errTransferRefused, m.Index), true)
	case int(m.Index) >= x.acked:
		x.acked = int(m.Index) + 1
		x.stall.reset(n.cfg.RequestTimeout)
		x.pumpLocked()
	}
}
