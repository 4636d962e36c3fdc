package pubsub

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
// forwards late requests there until every view agrees.
type topicState uint8

const (
	stateClaiming topicState = iota
	stateReady
	stateMoved
)

// maxQueued bounds the requests held for one topic while it is claimed.
const maxQueued = 4096

// drainedFor is how long a member that stopped owning topics is still asked
// in claims: past it, it has handed everything off or is gone.
const drainedFor = time.Minute

// maxHops bounds how often a request is forwarded between nodes whose views
// of the ring disagree.
const maxHops = 4

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

	replicaView *ring.View // view replicas was computed from
	replicas    []string   // replica peers in that view
}

// ownerOp is a request held while a topic is being claimed.
type ownerOp struct {
	pub   *pubReq
	sub   *subReq
	hist  *histReq
	unsub string // origin node of an unsubscribe
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
type ownerTable struct{ m *topicMap[ownedTopic] }

func newOwnerTable() *ownerTable { return &ownerTable{m: newTopicMap[ownedTopic]()} }

func (t *ownerTable) get(topic string) *ownedTopic { return t.m.get(topic) }

// acquire returns the topic's state, creating it in the claiming state if
// absent; created tells the caller to start the claim.
func (t *ownerTable) acquire(n *Node, topic string) (ot *ownedTopic, created bool) {
	return t.m.acquire(topic, func() *ownedTopic {
		return &ownedTopic{name: topic, hist: newHistory(n.cfg.HistorySize, n.cfg.HistoryTTL)}
	})
}

// drop removes ot from the table and marks it gone. ot.mu held.
func (t *ownerTable) drop(ot *ownedTopic) {
	ot.gone.Store(true)
	t.m.drop(ot.name, ot)
}

func (t *ownerTable) all() []*ownedTopic { return t.m.values() }

func newEpoch() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	e := binary.BigEndian.Uint64(b[:]) >> 1
	if e == 0 {
		e = 1
	}
	return e
}

// ownedTopicFor returns the topic's owner state, starting a claim when it
// is new here.
func (n *Node) ownedTopicFor(topic string) *ownedTopic {
	ot, created := n.owned.acquire(n, topic)
	if created {
		n.startClaim(ot)
	}
	return ot
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

// lockOwnedFor is lockOwned for a topic this node owns: it starts a claim
// when the table has no state for it.
func (n *Node) lockOwnedFor(topic string) *ownedTopic {
	find := func() *ownedTopic { return n.ownedTopicFor(topic) }
	return relock(find(), find)
}

// publishOwned sequences a publish for which this node is the owner; ot is
// the topic's state if the caller has already looked it up, nil if not. It
// reports false when the result will come later through replyPublish (the
// topic is being claimed, or has moved and the request was forwarded).
func (n *Node) publishOwned(ot *ownedTopic, req *pubReq) (pubResult, bool) {
	if ot == nil {
		ot = n.ownedTopicFor(req.topic)
	}
	ot.mu.Lock()
	for ot.gone.Load() {
		// Dropped from the owner table since the caller looked it up (a
		// tombstone every view has moved past): route the request afresh.
		ot.mu.Unlock()
		owner, err := n.ringOwner(req.topic)
		if err != nil {
			return pubResult{err: err}, true
		}
		if owner != n.name {
			if err := n.sendPublish(req, owner); err != nil {
				return pubResult{err: err}, true
			}
			return pubResult{}, false
		}
		ot = n.ownedTopicFor(req.topic)
		ot.mu.Lock()
	}
	defer ot.mu.Unlock()
	return n.publishLocked(ot, req)
}

func (n *Node) publishLocked(ot *ownedTopic, req *pubReq) (pubResult, bool) {
	switch ot.state {
	case stateClaiming:
		if len(ot.queued) >= maxQueued {
			return pubResult{err: fmt.Errorf("%w: topic %q is changing owner and its queue is full", ErrUnavailable, req.topic)}, true
		}
		if req.origin == n.name && req.done == nil && req.reqID == 0 {
			req.done = make(chan pubResult, 1)
		}
		ot.queued = append(ot.queued, ownerOp{pub: req.retain()})
		return pubResult{}, false
	case stateMoved:
		if err := n.sendPublish(req, ot.movedTo); err != nil {
			return pubResult{err: err}, true
		}
		return pubResult{}, false
	}
	ot.seq++
	now := n.now()
	ot.active = now
	res := pubResult{epoch: ot.epoch, seq: ot.seq}
	ot.hist.add(ot.seq, now, req.data)
	peers := n.replicaPeers(ot)
	replied := n.replicate(ot, peers, req, res, now)
	n.fanout(ot, peers, ot.seq, req.data)
	n.stats.sequenced.Add(1)
	return res, replied
}

// fanout sends one message to every subscriber node: one frame, encoded
// once and shared, per remote node; a direct call for this node. Replicas
// among them (replicated) already have it: their copy came as a Deliver.
// ot.mu held, which keeps frames of one topic in sequence order on every
// link.
func (n *Node) fanout(ot *ownedTopic, replicated []string, seq uint64, data []byte) {
	var (
		buf   *[]byte
		frame []byte
	)
	for _, node := range ot.nodes {
		if node == n.name {
			n.deliverOwned(ot, seq, data)
			continue
		}
		if slices.Contains(replicated, node) {
			continue
		}
		if buf == nil {
			buf = getFrameBuf()
			m := wire.Deliver{Topic: ot.name, Epoch: ot.epoch, Seq: seq, Data: data}
			frame = m.AppendFrame(*buf)
		}
		if err := n.sendTo(node, frame); err != nil {
			n.stats.sendErrors.Add(1)
		}
	}
	if buf != nil {
		putFrameBuf(buf, frame)
	}
}

// deliverOwned hands a message to this node's own subscribers through the
// local topic remembered in ot, saving the table lookup on every publish;
// it looks the topic up again when the remembered one is gone. ot.mu held.
func (n *Node) deliverOwned(ot *ownedTopic, seq uint64, data []byte) {
	if ot.local != nil && n.deliverTo(ot.local, n.name, ot.epoch, seq, data) {
		return
	}
	ot.local = n.local.get(ot.name)
	if ot.local == nil || !n.deliverTo(ot.local, n.name, ot.epoch, seq, data) {
		n.stats.unrouted.Add(1)
	}
}

// replyPublish returns a publish result to its origin.
func (n *Node) replyPublish(req *pubReq, res pubResult) {
	if req.done != nil {
		req.done <- res
		return
	}
	if req.reqID == 0 {
		return
	}
	ack := &wire.PublishAck{ReqID: req.reqID, Epoch: res.epoch, Seq: res.seq, Code: errorCode(res.err)}
	if res.err != nil {
		ack.Err = res.err.Error()
	}
	if req.origin == n.name {
		// This node's own request came back to it through nodes whose views
		// disagreed: its waiter is in the pending table.
		n.pending.complete(n.name, req.reqID, ack)
		return
	}
	if err := n.sendMsg(req.origin, ack); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

// sendPublish forwards req toward target, the owner as this node sees it.
func (n *Node) sendPublish(req *pubReq, target string) error {
	if req.hops >= maxHops {
		return fmt.Errorf("%w: %q forwarded %d times between nodes that disagree on its owner", ErrNoOwner, req.topic, req.hops)
	}
	// A request of this node's that came back to it (nodes whose views
	// disagree) already has its waiter; only one added here is cancelled
	// when the frame cannot be sent.
	added := req.origin == n.name && req.ack != AckNone && req.reqID == 0
	if added {
		if req.done == nil {
			req.done = make(chan pubResult, 1)
		}
		done := req.done
		// The caller's context bounds the wait too, but a request whose
		// answer was lost (forwarded toward an owner that failed) must not
		// hold it longer than RequestTimeout.
		req.reqID = n.pending.add(target, n.cfg.RequestTimeout, func(_ string, msg wire.Message, err error) {
			var res pubResult
			if ack, ok := msg.(*wire.PublishAck); ok {
				res = pubResult{epoch: ack.Epoch, seq: ack.Seq, err: codeError(ack.Code, ack.Err)}
			} else {
				res.err = err
			}
			done <- res
		})
	}
	buf := getFrameBuf()
	m := wire.Publish{ReqID: req.reqID, Origin: req.origin, Topic: req.topic, Data: req.data, Ack: uint8(req.ack), Hops: req.hops + 1}
	frame := m.AppendFrame(*buf)
	err := n.sendTo(target, frame)
	putFrameBuf(buf, frame)
	if err != nil {
		if added {
			n.pending.cancel(req.reqID)
		}
		return err
	}
	n.stats.forwarded.Add(1)
	return nil
}

// ownerSubscribe registers req.origin as a subscriber node of the topic
// when this node holds its state or owns it in the ring (claiming it then),
// and sends the request on to the ring's owner otherwise: for a subscribe
// from a peer, and when the state the caller saw has gone since (a
// tombstone dropped, an idle topic forgotten).
func (n *Node) ownerSubscribe(req *subReq) {
	ot := n.lockOwned(req.topic)
	if ot == nil {
		owner, err := n.ringOwner(req.topic)
		if err != nil {
			n.replySubscribe(req, 0, 0, err)
			return
		}
		if owner != n.name {
			if err := n.sendSubscribe(req, owner); err != nil {
				n.replySubscribe(req, 0, 0, err)
			}
			return
		}
		ot = n.lockOwnedFor(req.topic)
	}
	defer ot.mu.Unlock()
	n.subscribeLocked(ot, req)
}

func (n *Node) subscribeLocked(ot *ownedTopic, req *subReq) {
	switch ot.state {
	case stateClaiming:
		if len(ot.queued) >= maxQueued {
			n.replySubscribe(req, 0, 0, fmt.Errorf("%w: topic %q is changing owner and its queue is full", ErrUnavailable, req.topic))
			return
		}
		ot.queued = append(ot.queued, ownerOp{sub: req})
		return
	case stateMoved:
		if err := n.sendSubscribe(req, ot.movedTo); err != nil {
			n.replySubscribe(req, 0, 0, err)
		}
		return
	}
	ot.active = n.now()
	if !slices.Contains(ot.nodes, req.origin) {
		ot.nodes = append(slices.Clip(ot.nodes), req.origin)
		n.syncReplicaNodes(ot, n.replicaPeers(ot))
	}
	if !req.hasSince || req.since >= ot.seq {
		n.replySubscribe(req, ot.epoch, ot.seq, nil)
		return
	}
	// The subscriber node missed messages while it moved between owners:
	// send it what history holds, in order, before anything newer. The
	// answer's sequence number is where that replay starts from: nothing
	// before it can be had (evicted, or numbers skipped by a failover), so
	// the subscriber moves past it at once instead of waiting for it.
	entries := ot.hist.since(req.since)
	resume := ot.seq
	if len(entries) > 0 {
		resume = entries[0].Seq - 1
	}
	n.replySubscribe(req, ot.epoch, max(resume, req.since), nil)
	for _, e := range entries {
		if req.origin == n.name {
			n.deliver(n.name, ot.name, ot.epoch, e.Seq, e.Data)
			continue
		}
		m := &wire.Deliver{Topic: ot.name, Epoch: ot.epoch, Seq: e.Seq, Data: e.Data}
		if err := n.sendMsg(req.origin, m); err != nil {
			n.stats.sendErrors.Add(1)
			return
		}
	}
}

func (n *Node) replySubscribe(req *subReq, epoch, seq uint64, err error) {
	if req.done != nil {
		req.done(n.name, epoch, seq, err)
		return
	}
	ack := &wire.SubscribeAck{ReqID: req.reqID, Epoch: epoch, Seq: seq, Code: errorCode(err)}
	if err != nil {
		ack.Err = err.Error()
	}
	if req.origin == n.name {
		// Came back through nodes whose views disagreed (see replyPublish).
		n.pending.complete(n.name, req.reqID, ack)
		return
	}
	if err := n.sendMsg(req.origin, ack); err != nil {
		n.stats.sendErrors.Add(1)
	}
}

// sendSubscribe forwards req toward target.
func (n *Node) sendSubscribe(req *subReq, target string) error {
	if req.hops >= maxHops {
		return fmt.Errorf("%w: %q forwarded %d times between nodes that disagree on its owner", ErrNoOwner, req.topic, req.hops)
	}
	added := req.origin == n.name && req.reqID == 0 // see sendPublish
	if added {
		done := req.done
		req.reqID = n.pending.add(target, n.cfg.RequestTimeout, func(from string, msg wire.Message, err error) {
			if ack, ok := msg.(*wire.SubscribeAck); ok {
				done(from, ack.Epoch, ack.Seq, codeError(ack.Code, ack.Err))
				return
			}
			done("", 0, 0, err)
		})
	}
	m := &wire.Subscribe{ReqID: req.reqID, Origin: req.origin, Topic: req.topic, Since: req.since, HasSince: req.hasSince, Hops: req.hops + 1}
	if err := n.sendMsg(target, m); err != nil {
		if added {
			n.pending.cancel(req.reqID)
		}
		return err
	}
	return nil
}

// ownerUnsubscribe removes origin from the topic's subscriber nodes. When
// the state it was sent for has gone since, the request goes where the
// ring says.
func (n *Node) ownerUnsubscribe(topic, origin string, hops uint8) {
	ot := n.lockOwned(topic)
	if ot == nil {
		owner, err := n.ringOwner(topic)
		switch {
		case err != nil:
		case owner != n.name:
			if hops < maxHops {
				_ = n.sendMsg(owner, &wire.Unsubscribe{Topic: topic, Origin: origin, Hops: hops + 1})
			}
		default:
			// Owned here but not claimed yet (after a failover): the claim
			// will start from this node's replica copy, which must not list
			// the node any more. A claim that started meanwhile, from the
			// copy as it was, queues the request instead.
			n.replicas.removeNode(topic, origin)
			if ot := n.lockOwned(topic); ot != nil {
				n.unsubscribeLocked(ot, origin, hops)
				ot.mu.Unlock()
			}
		}
		return
	}
	defer ot.mu.Unlock()
	n.unsubscribeLocked(ot, origin, hops)
}

func (n *Node) unsubscribeLocked(ot *ownedTopic, origin string, hops uint8) {
	switch ot.state {
	case stateClaiming:
		if len(ot.queued) < maxQueued {
			ot.queued = append(ot.queued, ownerOp{unsub: origin})
		}
	case stateMoved:
		if hops < maxHops {
			_ = n.sendMsg(ot.movedTo, &wire.Unsubscribe{Topic: ot.name, Origin: origin, Hops: hops + 1})
		}
	default:
		if i := slices.Index(ot.nodes, origin); i >= 0 {
			ot.nodes = slices.Delete(slices.Clone(ot.nodes), i, i+1)
			n.syncReplicaNodes(ot, n.replicaPeers(ot))
		}
	}
}

// startClaim gathers the topic's state before this node serves it: from
// the member that would own the topic without this node (the previous
// owner, after a join), from the topic's replicas, and from this node's own
// replica copy. An owner's state wins; failing that, the most advanced
// replica copy (the owner failed). With nobody to ask, or nobody holding
// anything, the topic starts afresh.
func (n *Node) startClaim(ot *ownedTopic) {
	n.startClaimTry(ot, 1)
}

// claimJoinWait is how often a claim checks whether a join has finished.
const claimJoinWait = 10 * time.Millisecond

// maxClaimTries bounds how often a claim that found nothing starts over
// because the view changed while it ran.
const maxClaimTries = 3

func (n *Node) startClaimTry(ot *ownedTopic, try int) {
	if n.joining.Load() > 0 && !n.isClosed() {
		// The cluster already routes to this node, but its own view does
		// not show the cluster yet: whom to ask is not known. Wait for the
		// join to finish (it is bounded by the gossip TCP timeout).
		time.AfterFunc(claimJoinWait, func() { n.startClaimTry(ot, try) })
		return
	}
	// Decide whom to ask on the newest membership gossip has reported: a
	// node that has just joined learns the cluster before its view shows it.
	view := n.ring.Refresh()
	c := &claim{ot: ot, try: try, view: view}
	if rt := n.replicas.get(ot.name); rt != nil {
		c.offer(rt.state(n, ot.name))
	}
	var targets []string
	if cand, err := n.previousOwner(ot.name); err == nil && cand != n.name {
		targets = append(targets, cand)
	}
	for _, p := range replicaNames(n.view(), ot.name, n.cfg.ReplicationFactor, n.name) {
		if !slices.Contains(targets, p) {
			targets = append(targets, p)
		}
	}
	// A member draining before it leaves is off the ring but may still hold
	// the topic: ask it too, or its hand-off would be overtaken by a claim.
	n.drained.Range(func(name, since any) bool {
		if p := name.(string); p != n.name && !slices.Contains(targets, p) && time.Since(since.(time.Time)) < drainedFor {
			targets = append(targets, p)
		}
		return true
	})
	c.waiting = len(targets)
	if c.waiting == 0 {
		c.finish(n, c.best)
		return
	}
	for _, t := range targets {
		id := n.pending.add(t, n.cfg.ClaimTimeout, func(_ string, msg wire.Message, _ error) {
			st, _ := msg.(*wire.State)
			c.reply(n, st)
		})
		if err := n.sendMsg(t, &wire.StateRequest{ReqID: id, Topic: ot.name}); err != nil {
			n.pending.cancel(id)
			c.reply(n, nil)
		}
	}
}

// claim collects the answers to one topic's claim.
type claim struct {
	ot      *ownedTopic
	try     int
	view    *ring.View // the view the claim chose its targets in
	mu      sync.Mutex
	waiting int
	best    *wire.State
	over    bool
}

// offer considers one answer: an owner's state beats any replica copy; among
// equals the higher sequence number wins.
func (c *claim) offer(st *wire.State) {
	if st == nil || !st.Found {
		return
	}
	switch {
	case c.best == nil:
	case c.best.Replica && !st.Replica:
	case c.best.Replica == st.Replica && st.Seq > c.best.Seq:
	default:
		return
	}
	c.best = st
}

func (c *claim) reply(n *Node, st *wire.State) {
	c.mu.Lock()
	c.offer(st)
	c.waiting--
	// An owner's state is authoritative: no need to wait for the rest.
	ready := !c.over && (c.waiting == 0 || c.best != nil && !c.best.Replica)
	best := c.best
	if ready {
		c.over = true
	}
	c.mu.Unlock()
	if ready {
		c.finish(n, best)
	}
}

// finish makes the claimed topic ready with the state gathered and runs
// the requests queued meanwhile, in arrival order.
func (c *claim) finish(n *Node, st *wire.State) {
	ot := c.ot
	if st == nil && c.try < maxClaimTries && n.ring.Refresh() != c.view {
		// Nobody had the topic, but membership changed meanwhile: the
		// previous owner may be among the members this claim did not ask.
		n.startClaimTry(ot, c.try+1)
		return
	}
	ot.mu.Lock()
	if ot.state != stateClaiming {
		ot.mu.Unlock()
		return
	}
	n.adoptLocked(ot, st)
	if st != nil && st.Replica {
		ot.seq += failoverSeqGap
		n.stats.failovers.Add(1)
		n.log.Info("topic rebuilt from replicas", "topic", ot.name, "epoch", ot.epoch, "replicated", st.Seq, "next", ot.seq+1)
	}
	n.replicas.drop(ot.name)
	n.runQueuedLocked(ot)
	ot.mu.Unlock()
	if n.leaving.Load() {
		// The claim finished while this node drains: pass the topic on.
		if m, err := n.view().Owner(ot.name); err == nil && m.Name != n.name {
			n.handoff(ot, m.Name, nil)
		}
	}
}

// adoptLocked merges a topic state received from another node and makes
// the topic ready. Sequence numbers never go backwards within an epoch.
func (n *Node) adoptLocked(ot *ownedTopic, st *wire.State) {
	found := st != nil && st.Found
	switch {
	case !found && ot.state == stateReady:
	case !found:
		ot.epoch, ot.seq, ot.nodes = newEpoch(), 0, nil
		ot.hist = newHistory(n.cfg.HistorySize, n.cfg.HistoryTTL)
		n.log.Debug("topic starts afresh", "topic", ot.name, "epoch", ot.epoch)
	case ot.state != stateReady || st.Seq > ot.seq || st.Epoch == ot.epoch && st.Seq == ot.seq:
		nodes := ot.nodes
		if ot.state != stateReady {
			nodes = nil
		}
		ot.epoch, ot.seq = st.Epoch, max(st.Seq, ot.seqIfEpoch(st.Epoch))
		ot.hist.replace(st.History)
		ot.nodes = mergeNodes(nodes, st.Nodes)
		n.log.Debug("topic state adopted", "topic", ot.name, "epoch", ot.epoch, "seq", ot.seq, "nodes", len(ot.nodes))
	default:
		ot.nodes = mergeNodes(ot.nodes, st.Nodes)
	}
	ot.state, ot.movedTo = stateReady, ""
	ot.active = n.now()
}

func (ot *ownedTopic) seqIfEpoch(epoch uint64) uint64 {
	if ot.state == stateReady && ot.epoch == epoch {
		return ot.seq
	}
	return 0
}

func mergeNodes(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func (n *Node) runQueuedLocked(ot *ownedTopic) {
	queued := ot.queued
	ot.queued = nil
	for _, op := range queued {
		switch {
		case op.pub != nil:
			if res, ok := n.publishLocked(ot, op.pub); ok {
				n.replyPublish(op.pub, res)
			}
		case op.sub != nil:
			n.subscribeLocked(ot, op.sub)
		case op.hist != nil:
			n.replyHistoryLocked(ot, op.hist.from, &op.hist.m)
		default:
			n.unsubscribeLocked(ot, op.unsub, 0)
		}
	}
}

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
	if err := n.sendMsg(to, st); err != nil {
		return err
	}
	ot.state, ot.movedTo, ot.nodes = stateMoved, to, nil
	// Empty, with the configured bounds: the topic may be handed back
	// onto this tombstone.
	ot.hist = newHistory(n.cfg.HistorySize, n.cfg.HistoryTTL)
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
			_ = n.sendMsg(from, st)
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
		if rs := rt.state(n, req.Topic); rs != nil {
			st = rs
		}
	}
	st.ReqID = req.ReqID
	_ = n.sendMsg(from, st)
}

// onHandoff adopts a topic pushed by its previous owner.
func (n *Node) onHandoff(from string, st *wire.Handoff) {
	if err := ValidateTopic(st.Topic); err != nil {
		n.stats.badFrames.Add(1)
		n.log.Warn("hand-off of an invalid topic refused", "peer", from, "err", err)
		return
	}
	find := func() *ownedTopic {
		ot, _ := n.owned.acquire(n, st.Topic)
		return ot
	}
	ot := relock(find(), find)
	n.adoptLocked(ot, st.State())
	n.runQueuedLocked(ot)
	ot.mu.Unlock()
	_ = n.sendMsg(from, &wire.StateAck{ReqID: st.ReqID})
	if n.leaving.Load() {
		// Pushed here by a node that has not yet seen this one drain: pass
		// it on to the owner without this node.
		if m, err := n.view().Owner(st.Topic); err == nil {
			n.handoff(ot, m.Name, nil)
		}
	}
}
