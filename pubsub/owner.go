package pubsub

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/shard"
	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/ring"
)

// The owner side of a topic goes through three states. A node that becomes
// the owner of a topic it holds no state for first claims it: it asks the
// member that would own the topic without it (the previous owner after a
// join) for the topic's sequence, subscriber nodes and history, and queues
// publishes and subscriptions until the answer comes or ClaimTimeout
// passes. A ready topic is sequenced here. When the ring moves the topic
// elsewhere, its state is pushed to the new owner and a moved tombstone
// forwards late requests there until every view agrees. A state sent in
// parts (see transfer.go) keeps its topic in the claiming state, queueing
// requests, on both sides until the last part has left the sender and
// reached the receiver.
type topicState uint8

const (
	stateClaiming topicState = iota
	stateReady
	stateMoved
)

// maxQueued bounds the requests held for one topic while it is claimed.
const maxQueued = 4096

type ownedTopic struct {
	name string

	mu    sync.Mutex
	state topicState
	// gone is set, under mu, when the topic leaves the owner table:
	// whoever still holds this value (a request that looked it up, a Topic
	// handle) must look the topic up again.
	gone    atomic.Bool
	active  int64 // Node.now() at the last publish, subscription or adoption
	movedTo string
	epoch   uint64
	seq     uint64
	nodes   []string // subscriber nodes, copied on write
	hist    history
	queued  []ownerOp
	local   *localTopic // this node's subscribers of the topic, if any (see deliverOwned)

	// out is the transfer sending this topic's state to its next owner,
	// in the claiming state: the state stays here until it commits.
	out *outTransfer
	// in is the hand-off this node receives for the topic, if any.
	in *handoffIn

	replicaView *ring.View // view replicas was computed from
	replicas    []string   // replica peers in that view

	// claimStart is when the topic's claim started (monotime), 0 when no
	// claim is timed: see Stats.ClaimDuration.
	claimStart atomic.Int64

	// dur is the state of a durable topic (see durable.go), nil for a
	// memory-only one; it is set when the state is created.
	dur *durableTopic
}

// ownerOp is a request held while a topic is being claimed.
type ownerOp struct {
	pub   *pubReq
	sub   *subReq
	hist  *histReq
	state *stateReq
	unsub string // origin node of an unsubscribe
}

// stateReq is another node's claim, held while this node sends the topic's
// state in parts: it is answered once the state has left or stayed.
type stateReq struct {
	from string
	m    wire.StateRequest
}

// handoffIn is a hand-off received in parts. A claim that finishes
// meanwhile leaves its answer here: the hand-off wins, and the claim's
// answer serves if the hand-off fails.
type handoffIn struct {
	created  bool        // the hand-off created the topic's state: no claim runs
	claimed  bool        // a claim finished meanwhile, with fallback
	fallback *wire.State // that claim's best answer (nil: none)
}

// histReq is a history request from another node, held while the topic is
// claimed.
type histReq struct {
	from string
	m    wire.HistoryRequest
}

// pubReq is a publish travelling toward the topic's owner.
type pubReq struct {
	topic  string
	data   []byte
	origin string
	reqID  uint64
	ack    Ack
	hops   uint8
	done   chan pubResult // set when the origin is this node and waits
}

// retain returns a heap copy of r for a publish that outlives the call
// that sequences it (queued during a claim, waiting for replicas). Publish
// keeps its own request on the stack: the common case, sequenced at once,
// allocates nothing for it. r.done must be set before: the copy shares it.
func (r *pubReq) retain() *pubReq {
	c := *r
	return &c
}

type pubResult struct {
	epoch, seq uint64
	err        error
}

// subReq registers a subscriber node with the topic's owner.
type subReq struct {
	topic    string
	origin   string
	reqID    uint64
	since    uint64
	hasSince bool
	hops     uint8
	// done is set when the origin is this node; it is called exactly once,
	// with the owner's lock held when the owner is this node too.
	done func(owner string, epoch, seq uint64, err error)
}

// ownerTable holds the topics this node owns, is claiming, or has moved
// (tombstones).
type ownerTable struct {
	m     *shard.Map[ownedTopic, struct{}]
	keep  *retention
	moves *transfers // topic states sent and received in parts
	// durable returns the durable state of a new topic, nil for a
	// memory-only one.
	durable func(topic string) *durableTopic
}

func newOwnerTable(keep *retention, durable func(string) *durableTopic) *ownerTable {
	return &ownerTable{m: shard.New[ownedTopic, struct{}](), keep: keep, moves: newTransfers(), durable: durable}
}

func (t *ownerTable) get(topic string) *ownedTopic { return t.m.Get(topic) }

// acquire returns the topic's state, creating it in the claiming state if
// absent; created tells the caller to start the claim.
func (t *ownerTable) acquire(topic string) (ot *ownedTopic, created bool) {
	return t.m.GetOrAdd(topic, func() *ownedTopic {
		return &ownedTopic{name: topic, hist: t.keep.newHistory(), dur: t.durable(topic)}
	})
}

// drop removes ot from the table and marks it gone. ot.mu held.
func (t *ownerTable) drop(ot *ownedTopic) {
	ot.gone.Store(true)
	t.m.Delete(ot.name, ot)
}

func (t *ownerTable) all() []*ownedTopic { return t.m.Values() }

// epochRandomBits is the random low part of an epoch (see newEpoch).
const epochRandomBits = 22

// lastEpoch is the greatest epoch this process has made.
var lastEpoch atomic.Uint64

// newEpoch returns the epoch of a topic that starts afresh. Epochs are
// ordered: the high bits are the time in milliseconds, so that a topic
// started later has a greater epoch (across nodes, as far as their clocks
// agree), and the low bits are random, so that two nodes starting one
// topic in the same millisecond (on two sides of a partition) pick
// different epochs. On one node epochs always increase. The value stays
// below 2^63.
func newEpoch() uint64 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := uint64(time.Now().UnixMilli())<<epochRandomBits | uint64(binary.BigEndian.Uint32(b[:]))&(1<<epochRandomBits-1)
	for {
		last := lastEpoch.Load()
		next := max(e, last+1)
		if lastEpoch.CompareAndSwap(last, next) {
			return next
		}
	}
}

// laterState reports whether a topic's state at (epoch, seq) is ahead of
// one at (curEpoch, curSeq) in the topic's order, so that an owner holding
// the second takes the first instead: the greater epoch wins, and within
// an epoch the greater sequence number. A state without messages (seq 0)
// gives way to any state that has some and wins over none.
func laterState(epoch, seq, curEpoch, curSeq uint64) bool {
	switch {
	case seq == 0:
		return false
	case curSeq == 0 || epoch == curEpoch:
		return seq > curSeq
	default:
		return epoch > curEpoch
	}
}

// relock locks ot, an owner state looked up by find; while the state it
// holds has left the table (gone: dropped between the lookup and the lock)
// it looks again. It returns nil, locking nothing, when find finds nothing.
func relock(ot *ownedTopic, find func() *ownedTopic) *ownedTopic {
	for ot != nil {
		ot.mu.Lock()
		if !ot.gone.Load() {
			return ot
		}
		ot.mu.Unlock()
		ot = find()
	}
	return nil
}

// lockOwned returns the topic's owner state, locked, or nil when the table
// has none.
func (n *Node) lockOwned(topic string) *ownedTopic {
	find := func() *ownedTopic { return n.owned.get(topic) }
	return relock(find(), find)
}
