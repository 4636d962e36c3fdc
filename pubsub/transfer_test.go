package pubsub

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// A topic whose history is far above one frame: with MaxPayload 64 KiB a
// link's frame holds about 128 KiB, so 300 messages of 5 KB (1.5 MB) and
// 30 of 64 KB (1.9 MB) each take a dozen parts or more.
const transferMaxPayload = 64 << 10

var transferSizes = []struct {
	name  string
	count int
	size  int
}{
	{"5k", 300, 5000},
	{"64k", 30, 64 << 10},
}

func transferConfig(c *Config) {
	c.MaxPayload = transferMaxPayload
	c.HistorySize = 400
}

// payload is message i of a test topic: its size, and content that names it.
func payload(topic string, i, size int) []byte {
	p := bytes.Repeat([]byte{byte(i)}, size)
	copy(p, fmt.Sprintf("%s/%d/", topic, i))
	return p
}

// fillTopic publishes count messages of size bytes to topic through n, and
// returns the epoch.
func fillTopic(t *testing.T, n *Node, topic string, count, size int, opts ...PublishOption) uint64 {
	t.Helper()
	ctx := ctxT(t, 60*time.Second)
	var epoch uint64
	for i := 1; i <= count; i++ {
		r, err := n.Publish(ctx, topic, payload(topic, i, size), opts...)
		if err != nil {
			t.Fatalf("publish %d to %s: %v", i, topic, err)
		}
		if r.Seq != uint64(i) {
			t.Fatalf("publish %d to %s got seq %d", i, topic, r.Seq)
		}
		epoch = r.Epoch
	}
	return epoch
}

// partsSent counts the StateChunk frames n has sent.
func partsSent(n *Node) uint64 {
	var k uint64
	for _, p := range n.Stats().Links.Peers {
		k += p.Sent[Frame(wire.FrameStateChunk)]
	}
	return k
}

// servedState returns what n serves of topic: ok is false unless n holds
// it ready.
func servedState(n *Node, topic string) (epoch, seq uint64, hist []wire.HistoryEntry, ok bool) {
	ot := n.lockOwned(topic)
	if ot == nil {
		return 0, 0, nil, false
	}
	defer ot.mu.Unlock()
	if ot.state != stateReady {
		return 0, 0, nil, false
	}
	return ot.epoch, ot.seq, ot.hist.all(), true
}

// checkMoved checks that owner serves topic in the given epoch with its
// whole history (count messages of size bytes), that a publish continues
// the sequence at next, and that a subscription with Since on the owner
// receives every message retained.
func checkMoved(t *testing.T, owner *Node, topic string, epoch uint64, count, size int, next uint64) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	r, err := owner.Publish(ctx, topic, []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Epoch != epoch || r.Seq != next {
		t.Fatalf("%s: publish after the move got epoch %d seq %d, want %d, %d", topic, r.Epoch, r.Seq, epoch, next)
	}
	e, seq, hist, ok := servedState(owner, topic)
	if !ok || e != epoch || seq != next {
		t.Fatalf("%s on %s: ready %v, epoch %d seq %d, want epoch %d seq %d", topic, owner.Name(), ok, e, seq, epoch, next)
	}
	if len(hist) != count+1 {
		t.Fatalf("%s on %s: %d messages in history (%d to %d), want %d", topic, owner.Name(), len(hist), hist[0].Seq, hist[len(hist)-1].Seq, count+1)
	}
	for i, h := range hist[:count] {
		if h.Seq != uint64(i+1) || !bytes.Equal(h.Data, payload(topic, i+1, size)) {
			t.Fatalf("%s on %s: history entry %d is seq %d, %d bytes", topic, owner.Name(), i, h.Seq, len(h.Data))
		}
	}
	sub, err := owner.Subscribe(ctx, topic, Since(epoch, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for i := 1; i <= count; i++ {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("%s: recovering message %d: %v", topic, i, err)
		}
		if m.Seq != uint64(i) || m.Epoch != epoch || !bytes.Equal(m.Data, payload(topic, i, size)) {
			t.Fatalf("%s: recovered seq %d epoch %d (%d bytes), want seq %d", topic, m.Seq, m.Epoch, len(m.Data), i)
		}
	}
	if m, err := sub.Next(ctx); err != nil || m.Seq != next || string(m.Data) != "after" {
		t.Fatalf("%s: after the history got seq %d %q, %v", topic, m.Seq, m.Data, err)
	}
}

// TestLargeStateMovesOnJoin fills topics on a lone node, then starts a
// second one: the topics it takes over are claimed in parts, and keep their
// epoch, sequence and history.
func TestLargeStateMovesOnJoin(t *testing.T) {
	c := startCluster(t, 1, transferConfig)
	first := c.nodes[0]
	epochs := map[string]uint64{}
	for _, sz := range transferSizes {
		for i := range 6 {
			topic := fmt.Sprintf("join-%s-%d", sz.name, i)
			epochs[topic] = fillTopic(t, first, topic, sz.count, sz.size)
		}
	}
	joined := c.add(transferConfig)
	c.waitConverged()
	for _, sz := range transferSizes {
		moved := 0
		for i := range 6 {
			topic := fmt.Sprintf("join-%s-%d", sz.name, i)
			if o, _ := first.Owner(topic); o.Name != joined.Name() {
				continue
			}
			moved++
			checkMoved(t, joined, topic, epochs[topic], sz.count, sz.size, uint64(sz.count+1))
		}
		if moved == 0 {
			t.Fatalf("no %s topic moved to %s: pick other names", sz.name, joined.Name())
		}
	}
	if n := first.Stats().Handoffs; n == 0 {
		t.Fatal("no topic left the first node")
	}
	if partsSent(first) == 0 {
		t.Fatal("the first node sent no state in parts")
	}
}

// TestLargeStateMovesOnShutdown hands topics off in parts when their owner
// stops gracefully: Shutdown returns nil and the next owner continues.
func TestLargeStateMovesOnShutdown(t *testing.T) {
	c := startCluster(t, 2, transferConfig)
	owner, next := c.nodes[0], c.nodes[1]
	var topics []string
	var epochs []uint64
	for _, sz := range transferSizes {
		topic := topicOwnedBy(t, next, owner.Name(), "shutdown-"+sz.name)
		topics = append(topics, topic)
		epochs = append(epochs, fillTopic(t, next, topic, sz.count, sz.size))
	}
	var parts atomic.Int64
	hook := func(to string, m wire.Message) error {
		if _, ok := m.(*wire.StateChunk); ok {
			parts.Add(1)
		}
		return owner.peers.sendMsg(to, m)
	}
	owner.owned.moves.sendHook.Store(&hook)
	if err := owner.Shutdown(ctxT(t, 30*time.Second)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if k := parts.Load(); k < 20 {
		t.Fatalf("%s sent %d parts of hand-offs, want at least 20", owner.Name(), k)
	}
	for i, sz := range transferSizes {
		checkMoved(t, next, topics[i], epochs[i], sz.count, sz.size, uint64(sz.count+1))
	}
}

// TestLargeStateRebuiltFromReplica stops a topic's owner without a
// hand-off: the member that takes the topic over is not its replica, and
// rebuilds it from the replica's copy, sent in parts.
func TestLargeStateRebuiltFromReplica(t *testing.T) {
	c := startCluster(t, 3, func(c *Config) {
		transferConfig(c)
		c.ReplicationFactor = 2
	})
	victim := c.nodes[0]
	type moved struct {
		topic string
		heir  *Node
		epoch uint64
	}
	var topics []moved
	replicaOf := map[string]string{}
	for _, sz := range transferSizes {
		topic, replica, heir := remoteHeirTopic(t, c, victim, "failover-"+sz.name)
		replicaOf[topic] = replica.Name()
		t.Logf("%s: owner %s, replica %s, next owner %s", topic, victim.Name(), replica.Name(), heir.Name())
		epoch := fillTopic(t, heir, topic, sz.count, sz.size, WithAck(AckReplicated))
		topics = append(topics, moved{topic, heir, epoch})
	}
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
	for i, sz := range transferSizes {
		m := topics[i]
		checkMoved(t, m.heir, m.topic, m.epoch, sz.count, sz.size, uint64(sz.count)+failoverSeqGap+1)
		if k := m.heir.Stats().Links.Peers[replicaOf[m.topic]].Received[Frame(wire.FrameStateChunk)]; k == 0 {
			t.Fatalf("%s: no part of the replica's copy came from %s", m.topic, replicaOf[m.topic])
		}
	}
}

// remoteHeirTopic finds a topic that victim owns, whose replica is one
// member and whose owner without victim is the other.
func remoteHeirTopic(t *testing.T, c *cluster, victim *Node, prefix string) (topic string, replica, heir *Node) {
	t.Helper()
	v := victim.view()
	without := v.Without(victim.Name())
	byName := map[string]*Node{}
	for _, n := range c.nodes {
		byName[n.Name()] = n
	}
	for i := range 100000 {
		topic = fmt.Sprintf("%s-%d", prefix, i)
		owners, err := v.Owners(topic, 2)
		if err != nil || len(owners) < 2 || owners[0].Name != victim.Name() {
			continue
		}
		next, err := without.Owner(topic)
		if err == nil && next.Name != owners[1].Name {
			return topic, byName[owners[1].Name], byName[next.Name]
		}
	}
	t.Fatal("no topic whose next owner is not its replica")
	return "", nil, nil
}

// TestLargeStateWaitsForAFullQueue hands a topic off over a link whose
// queue is full at first: the transfer waits for room instead of failing.
func TestLargeStateWaitsForAFullQueue(t *testing.T) {
	c := startCluster(t, 2, transferConfig)
	owner, next := c.nodes[0], c.nodes[1]
	topic := topicOwnedBy(t, next, owner.Name(), "slow")
	epoch := fillTopic(t, next, topic, 300, 5000)
	var refused atomic.Int64
	hook := func(to string, m wire.Message) error {
		// Refuse every other part for a while, as a link that drains
		// slowly does, then let everything through.
		if refused.Load() < 40 && refused.Add(1)%2 == 1 {
			return fmt.Errorf("%w: %w", ErrUnavailable, ErrQueueFull)
		}
		return owner.peers.sendMsg(to, m)
	}
	owner.owned.moves.sendHook.Store(&hook)
	if err := owner.Shutdown(ctxT(t, 30*time.Second)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if refused.Load() == 0 {
		t.Fatal("no part met a full queue")
	}
	checkMoved(t, next, topic, epoch, 300, 5000, 301)
}

// TestStalledTransferKeepsTheTopic sends a topic's state in parts to a
// receiver that never acknowledges them: the transfer ends after
// RequestTimeout, the old owner keeps the topic and serves the requests
// queued meanwhile.
func TestStalledTransferKeepsTheTopic(t *testing.T) {
	c := startCluster(t, 2, func(c *Config) {
		transferConfig(c)
		c.RequestTimeout = 300 * time.Millisecond
	})
	owner, other := c.nodes[0], c.nodes[1]
	topic := topicOwnedBy(t, owner, owner.Name(), "stall")
	epoch := fillTopic(t, owner, topic, 300, 5000)
	hook := func(to string, m wire.Message) error {
		if _, ok := m.(*wire.StateChunk); ok {
			return nil // lost on the way
		}
		return owner.peers.sendMsg(to, m)
	}
	owner.owned.moves.sendHook.Store(&hook)

	ot := owner.owned.get(topic)
	errc := make(chan error, 1)
	owner.handoff(ot, other.Name(), func(err error) { errc <- err })
	published := make(chan error, 1)
	go func() {
		// Queued while the state is on its way, then served here.
		r, err := owner.Publish(context.Background(), topic, []byte("during"))
		if err == nil && (r.Epoch != epoch || r.Seq != 301) {
			err = fmt.Errorf("publish during the transfer got epoch %d seq %d", r.Epoch, r.Seq)
		}
		published <- err
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a hand-off whose parts were lost succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled transfer did not end")
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	e, seq, hist, ok := servedState(owner, topic)
	if !ok || e != epoch || seq != 301 || len(hist) != 301 {
		t.Fatalf("after the stall: ready %v epoch %d seq %d, %d in history", ok, e, seq, len(hist))
	}
	// The receiver dropped what it gathered.
	waitFor(t, 5*time.Second, "the receiver to drop the transfer", func() bool {
		m := other.owned.moves
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.in) == 0
	})
}

func TestPlanParts(t *testing.T) {
	entries := func(sizes ...int) []wire.HistoryEntry {
		var out []wire.HistoryEntry
		for i, s := range sizes {
			out = append(out, wire.HistoryEntry{Seq: uint64(i + 1), Data: make([]byte, s)})
		}
		return out
	}
	e := wire.HistoryEntrySize
	for _, tc := range []struct {
		name        string
		entries     []wire.HistoryEntry
		first, rest int
		want        []int
	}{
		{"empty", nil, 100, 100, []int{0}},
		{"one frame", entries(10, 10), 2 * e(10), 100, []int{2}},
		{"split", entries(10, 10, 10), 2 * e(10), 2 * e(10), []int{2, 3}},
		{"large entry alone", entries(10, 500, 10), 100, 100, []int{1, 2, 3}},
		{"first part empty", entries(500), 100, 1000, []int{0, 1}},
	} {
		if got := planParts(tc.entries, tc.first, tc.rest); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: planParts = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A subscriber on another node recovers a history far above one frame with
// Since: the owner answers in pages that each fit the link's frame limit,
// even when MaxPayload is small.
func TestRemoteSinceRecoversLargeHistory(t *testing.T) {
	c := startCluster(t, 2, transferConfig)
	const topic, count, size = "since-remote", 300, 5000
	owner, err := c.nodes[0].Owner(topic)
	if err != nil {
		t.Fatal(err)
	}
	var on, far *Node
	for _, n := range c.nodes {
		if n.Name() == owner.Name {
			on = n
		} else {
			far = n
		}
	}
	epoch := fillTopic(t, on, topic, count, size)
	ctx := ctxT(t, 30*time.Second)
	sub, err := far.Subscribe(ctx, topic, Since(epoch, 0), WithBuffer(2*count))
	if err != nil {
		t.Fatalf("Since(%d, 0) on a node that does not own %s: %v", epoch, topic, err)
	}
	defer sub.Unsubscribe()
	if sub.Recovered() != count {
		t.Fatalf("recovered %d messages, want %d", sub.Recovered(), count)
	}
	for i := 1; i <= count; i++ {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Seq != uint64(i) || !bytes.Equal(m.Data, payload(topic, i, size)) {
			t.Fatalf("message %d: seq %d, %d bytes", i, m.Seq, len(m.Data))
		}
	}
}
