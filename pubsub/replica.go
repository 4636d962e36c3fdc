package pubsub

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/shard"
	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/ring"
)

// Replication. Every message a topic's owner sequences is copied to the
// next ReplicationFactor-1 members of the ring (its replicas), which keep
// the topic's epoch, last sequence number and history. When the owner fails,
// the member that takes the topic over rebuilds it from the replicas (its
// own copy first, see claim.go), so the sequence continues in the same epoch
// and acknowledged messages are still in history for subscribers to recover.

// replicaTopic is this node's copy of a topic it is a replica of.
type replicaTopic struct {
	mu     sync.Mutex
	epoch  uint64
	seq    uint64
	hist   history
	nodes  []string // subscriber nodes, as the owner last said
	active int64    // Node.now() when the owner last sent anything
	// gone is set, under mu, when the copy leaves the table: a writer that
	// looked it up before must look again.
	gone bool
}

// replicaTable holds the copies this node keeps as a replica.
type replicaTable struct {
	m    *shard.Map[replicaTopic, struct{}]
	keep *retention
}

func newReplicaTable(keep *retention) *replicaTable {
	return &replicaTable{m: shard.New[replicaTopic, struct{}](), keep: keep}
}

func (t *replicaTable) get(topic string) *replicaTopic { return t.m.Get(topic) }

func (t *replicaTable) acquire(topic string) *replicaTopic {
	rt, _ := t.m.GetOrAdd(topic, func() *replicaTopic {
		return &replicaTopic{hist: t.keep.newHistory()}
	})
	return rt
}

// lock returns the topic's copy, locked, creating it if absent.
func (t *replicaTable) lock(topic string) *replicaTopic {
	return t.relock(topic, t.acquire(topic))
}

// relock locks rt, the topic's copy as looked up; while the copy it holds
// has left the table (dropped between the lookup and the lock) it takes
// the table's current one.
func (t *replicaTable) relock(topic string, rt *replicaTopic) *replicaTopic {
	for {
		rt.mu.Lock()
		if !rt.gone {
			return rt
		}
		rt.mu.Unlock()
		rt = t.acquire(topic)
	}
}

// drop removes the topic's copy, if any, and marks it gone.
func (t *replicaTable) drop(topic string) {
	for rt := t.m.Get(topic); rt != nil; rt = t.m.Get(topic) {
		rt.mu.Lock()
		gone := rt.gone
		if !gone {
			t.dropLocked(topic, rt)
		}
		rt.mu.Unlock()
		if !gone {
			return
		}
	}
}

// removeNode takes node out of the subscriber nodes of the topic's copy,
// if there is one.
func (t *replicaTable) removeNode(topic, node string) {
	rt := t.m.Get(topic)
	if rt == nil {
		return
	}
	rt.mu.Lock()
	if i := slices.Index(rt.nodes, node); i >= 0 {
		rt.nodes = slices.Delete(slices.Clone(rt.nodes), i, i+1)
	}
	rt.mu.Unlock()
}

// dropLocked removes rt, the topic's copy, and marks it gone. rt.mu held.
func (t *replicaTable) dropLocked(topic string, rt *replicaTopic) {
	rt.gone = true
	t.m.Delete(topic, rt)
}

func (t *replicaTable) names() []string {
	return t.m.Keys()
}

// state returns the replica's copy as a TopicState for a claim, or nil. A
// copy with nothing left to keep is not offered: its owner forgets such a
// topic (IdleTopicTTL) a little before its replicas do, and a claim for
// the topic used again must start it afresh rather than rebuild it as after
// a failure.
func (t *replicaTable) state(rt *replicaTopic, topic string) *wire.State {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.seq == 0 || t.keep.idle(t.keep.now(), rt.active, len(rt.nodes), &rt.hist) {
		return nil
	}
	return &wire.State{Topic: topic, Found: true, Replica: true, Epoch: rt.epoch, Seq: rt.seq, Nodes: rt.nodes, History: rt.hist.all()}
}

// replicaPeers returns the members that hold copies of topic besides this
// owner, cached per ring view on the owner's topic state. ot.mu held.
func (n *Node) replicaPeers(ot *ownedTopic) []string {
	if n.cfg.ReplicationFactor < 2 || ot.dur != nil {
		return nil
	}
	v := n.view()
	if ot.replicaView == v {
		return ot.replicas
	}
	old := ot.replicas
	ot.replicaView, ot.replicas = v, replicaNames(v, ot.name, n.cfg.ReplicationFactor, n.name)
	var added []string
	for _, p := range ot.replicas {
		if !slices.Contains(old, p) {
			added = append(added, p)
		}
	}
	n.syncReplicaNodes(ot, added)
	return ot.replicas
}

// syncReplicaNodes tells replicas which nodes subscribe to the topic, so
// that an owner rebuilt from a replica delivers to them at once, before they
// notice the failure and re-register. It is sent only when the set or the
// replicas change. ot.mu held.
func (n *Node) syncReplicaNodes(ot *ownedTopic, peers []string) {
	if len(peers) == 0 || ot.state != stateReady {
		return
	}
	frame := wire.EncodeFrame(&wire.ReplicaNodes{Topic: ot.name, Epoch: ot.epoch, Seq: ot.seq, Nodes: slices.Clone(ot.nodes)})
	for _, p := range peers {
		if err := n.peers.sendTo(p, frame); err != nil {
			n.stats.sendErrors.Add(1)
		}
	}
}

// onReplicaNodes records a topic's subscriber nodes sent by its owner.
// The nodes of another epoch replace the copy when they come from the
// topic's owner in this node's view (it started the topic afresh: after a
// failover that found nothing, or after forgetting it), or when the copy
// holds nothing at all. Otherwise the sender may be a stale owner whose view
// lags, and the copy keeps its epoch; a replicated message of a new epoch
// replaces it anyway (see onReplicate).
//
// Only a list with nodes counts as activity: a node leaving is no use of
// the topic, and the owner does not count it either (IdleTopicTTL).
func (n *Node) onReplicaNodes(from string, st *wire.ReplicaNodes) {
	rt := n.replicas.lock(st.Topic)
	switch {
	case st.Epoch == rt.epoch:
	case rt.seq == 0 && rt.hist.n == 0 && len(rt.nodes) == 0, n.isRingOwner(from, st.Topic):
		rt.epoch, rt.seq = st.Epoch, st.Seq
		rt.hist = n.replicas.keep.newHistory()
	default:
		rt.mu.Unlock()
		return
	}
	rt.nodes = st.Nodes
	if len(st.Nodes) > 0 {
		rt.active = n.retention.now()
	}
	rt.mu.Unlock()
}

// replicaNames lists the first r owners of topic in v other than self,
// at most r-1 of them.
func replicaNames(v *ring.View, topic string, r int, self string) []string {
	owners, err := v.Owners(topic, r)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range owners {
		if m.Name != self && len(out) < r-1 {
			out = append(out, m.Name)
		}
	}
	return out
}

// replicate copies a sequenced message to the topic's replicas, peers
// (from replicaPeers). A replica that is also a subscriber node gets one
// Deliver that stands for both (see appendReplica), and fanout skips it.
// With AckReplicated it reports false and answers req once every replica
// has acknowledged (or fails it after RequestTimeout). ot.mu held.
func (n *Node) replicate(ot *ownedTopic, peers []string, req *pubReq, res pubResult, now int64) bool {
	if len(peers) == 0 {
		return true
	}
	var w *replicaWait
	if req.ack == AckReplicated {
		if req.origin == n.name && req.done == nil && req.reqID == 0 {
			req.done = make(chan pubResult, 1)
		}
		w = &replicaWait{need: len(peers), req: req.retain(), res: res}
	}
	buf := getFrameBuf()
	frame := *buf
	encoded := -1 // what frame holds for the previous peer: 0 a Replicate, 1 a Deliver
	for _, p := range peers {
		var id uint64
		if wait := w; wait != nil {
			id = n.pending.add(p, n.cfg.RequestTimeout, func(_ string, _ wire.Message, err error) {
				if res, over := wait.done(p, err); over {
					n.router.replyPublish(wait.req, res)
				}
			})
		}
		deliver := slices.Contains(ot.nodes, p)
		if kind := boolInt(deliver); id != 0 || kind != encoded {
			frame = appendReplica(frame[:0], ot, deliver, res.seq, now, req.data, id)
			encoded = kind
		}
		if err := n.peers.sendTo(p, frame); err != nil {
			n.stats.sendErrors.Add(1)
			if w != nil {
				n.pending.cancel(id)
				if res, over := w.done(p, err); over {
					n.router.replyPublish(w.req, res)
				}
			}
		}
	}
	putFrameBuf(buf, frame)
	return w == nil
}

// appendReplica appends the frame that gives a replica its copy of a
// message: a Replicate, or, when the replica has subscribers for the topic
// (deliver), a ReplicaDeliver, so that the payload crosses that
// link once and not twice. reqID, if not zero, asks for a ReplicateAck.
// ot.mu held.
func appendReplica(dst []byte, ot *ownedTopic, deliver bool, seq uint64, now int64, data []byte, reqID uint64) []byte {
	if deliver {
		m := wire.ReplicaDeliver{ReqID: reqID, Topic: ot.name, Epoch: ot.epoch, Seq: seq, Time: now, Data: data}
		return m.AppendFrame(dst)
	}
	m := wire.Replicate{ReqID: reqID, Topic: ot.name, Epoch: ot.epoch, Seq: seq, Time: now, Data: data}
	return m.AppendFrame(dst)
}

// replicaWait counts the replica acknowledgements of one publish.
type replicaWait struct {
	mu   sync.Mutex
	need int
	over bool
	req  *pubReq
	res  pubResult
}

// done counts one replica's answer (err: it failed or timed out). It
// reports, once, the publish's result when the wait is over: every replica
// holds the message, or one failed.
func (w *replicaWait) done(peer string, err error) (res pubResult, over bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.over {
		return pubResult{}, false
	}
	if err != nil {
		w.over = true
		return pubResult{err: fmt.Errorf("%w: message %d of %q sequenced but not replicated to %s: %w", ErrUnavailable, w.res.seq, w.req.topic, peer, err)}, true
	}
	w.need--
	w.over = w.need == 0
	return w.res, w.over
}

// onReplicate stores a copy of a message sent by its topic's owner.
func (n *Node) onReplicate(from string, m *wire.Replicate) {
	rt := n.replicas.lock(m.Topic)
	rt.active = n.retention.now()
	if m.Epoch != rt.epoch {
		// The nodes listed were the old epoch's: the owner sends the new
		// epoch's when they change, and subscriber nodes re-register with
		// an owner rebuilt from this copy anyway.
		rt.epoch, rt.seq, rt.nodes = m.Epoch, 0, nil
		rt.hist = n.replicas.keep.newHistory()
	}
	// The owner tells a new replica the topic's subscriber nodes and
	// sequence number (ReplicaNodes) just before the message that made it
	// one: that message is at rt.seq, and not yet in the copy.
	if m.Seq > rt.seq || m.Seq == rt.seq && len(rt.hist.window(m.Seq-1, m.Seq, 0)) == 0 {
		rt.seq = m.Seq
		rt.hist.add(m.Seq, m.Time, m.Data)
	}
	rt.mu.Unlock()
	n.stats.replicated.Add(1)
	if m.ReqID != 0 {
		if err := n.peers.sendMsg(from, &wire.ReplicateAck{ReqID: m.ReqID, Seq: m.Seq}); err != nil {
			n.stats.sendErrors.Add(1)
		}
	}
}

// reconcileReplicas drops copies this node is no longer a replica (or the
// owner) of, expires old history, and forgets idle copies as the owner
// forgets idle topics.
func (n *Node) reconcileReplicas(v *ring.View, now time.Time) {
	var owners []ring.Member
	for _, topic := range n.replicas.names() {
		var err error
		owners, err = v.AppendOwners(owners[:0], topic, n.cfg.ReplicationFactor)
		keep := err == nil && slices.ContainsFunc(owners, func(m ring.Member) bool { return m.Name == n.name })
		if !keep {
			n.replicas.drop(topic)
			continue
		}
		if rt := n.replicas.get(topic); rt != nil {
			rt.mu.Lock()
			rt.hist.expire(now.UnixNano())
			if !rt.gone && n.retention.idle(n.retention.now(), rt.active, len(rt.nodes), &rt.hist) {
				n.replicas.dropLocked(topic, rt)
			}
			rt.mu.Unlock()
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
