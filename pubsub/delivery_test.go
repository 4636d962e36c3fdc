package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// collect reads n messages from sub.
func collect(t *testing.T, ctx context.Context, sub *Subscription, n int) []Message {
	t.Helper()
	var out []Message
	for range n {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
		out = append(out, m)
	}
	return out
}

func seqs(msgs []Message) []uint64 {
	var out []uint64
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

func TestRecoverSince(t *testing.T) {
	c := startCluster(t, 2, func(cfg *Config) { cfg.HistorySize = 20 })
	ctx := ctxT(t, 20*time.Second)
	owner, remote := c.nodes[0], c.nodes[1]
	topic := topicOwnedBy(t, remote, owner.Name(), "recover")
	var epoch uint64
	for i := 1; i <= 30; i++ {
		res, err := owner.Publish(ctx, topic, []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		epoch = res.Epoch
	}
	for _, n := range c.nodes {
		t.Run(n.Name(), func(t *testing.T) {
			// Within the window: 26..30 from history, then live ones.
			sub, err := n.Subscribe(ctx, topic, Since(epoch, 25))
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			got := collect(t, ctx, sub, 5)
			if want := []uint64{26, 27, 28, 29, 30}; !slices.Equal(seqs(got), want) {
				t.Fatalf("recovered %v, want %v", seqs(got), want)
			}
			if sub.Recovered() != 5 || sub.Start() != (Position{Epoch: epoch, Seq: 25}) {
				t.Fatalf("Recovered() = %d, Start() = %+v", sub.Recovered(), sub.Start())
			}
			if string(got[0].Data) != "26" || got[0].Epoch != epoch {
				t.Fatalf("recovered message %+v", got[0])
			}

			// Nothing new: position at the head.
			head, err := n.Subscribe(ctx, topic, Since(epoch, 30))
			if err != nil {
				t.Fatalf("Since at the head: %v", err)
			}
			defer head.Unsubscribe()

			// Out of the window: seq 5 was evicted (history keeps 20).
			_, err = n.Subscribe(ctx, topic, Since(epoch, 5))
			var gone *HistoryGoneError
			if !errors.As(err, &gone) || !errors.Is(err, ErrHistoryGone) {
				t.Fatalf("Since out of the window: %v, want HistoryGoneError", err)
			}
			if gone.Oldest != 11 || gone.Current.Epoch != epoch {
				t.Fatalf("HistoryGoneError %+v, want oldest 11", gone)
			}

			// History reset: another epoch.
			_, err = n.Subscribe(ctx, topic, Since(epoch+1, 25))
			if !errors.As(err, &gone) || gone.Current.Epoch != epoch || gone.Requested.Epoch != epoch+1 {
				t.Fatalf("Since with a stale epoch: %v", err)
			}
		})
	}
	// Live messages follow the recovered ones without gap or duplicate.
	sub, err := remote.Subscribe(ctx, topic, Since(0, 28))
	if err != nil {
		t.Fatal(err)
	}
	for i := 31; i <= 33; i++ {
		if _, err := remote.Publish(ctx, topic, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if got := seqs(collect(t, ctx, sub, 5)); !slices.Equal(got, []uint64{29, 30, 31, 32, 33}) {
		t.Fatalf("recovered then live: %v", got)
	}
}

// TestRecoverWhilePublishing recovers while another goroutine publishes:
// the history and the live stream must join without gap or duplicate.
func TestRecoverWhilePublishing(t *testing.T) {
	c := startCluster(t, 2, func(cfg *Config) { cfg.HistorySize = 5000 })
	ctx := ctxT(t, 30*time.Second)
	pub, sub := c.nodes[0], c.nodes[1]
	topic := topicOwnedBy(t, sub, pub.Name(), "splice")
	// An existing subscriber keeps the topic registered on the node.
	if _, err := sub.Subscribe(ctx, topic, WithBuffer(5000)); err != nil {
		t.Fatal(err)
	}
	const total = 2000
	var published atomic.Int64
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			if _, err := pub.Publish(ctx, topic, []byte(strconv.Itoa(i))); err != nil {
				done <- err
				return
			}
			published.Store(int64(i))
		}
		done <- nil
	}()
	waitFor(t, 10*time.Second, "some traffic", func() bool { return published.Load() > 300 })
	s, err := sub.Subscribe(ctx, topic, Since(0, 100), WithBuffer(5000))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := collect(t, ctx, s, total-100)
	for i, m := range got {
		if m.Seq != uint64(101+i) {
			t.Fatalf("message %d has seq %d, want %d", i, m.Seq, 101+i)
		}
	}
}

func TestHistoryTTL(t *testing.T) {
	n, err := New(Config{NodeName: "ttl", HistoryTTL: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := ctxT(t, 10*time.Second)
	res, err := n.Publish(ctx, "ttl", []byte("old"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "history to expire", func() bool {
		_, err := n.Subscribe(ctx, "ttl", Since(res.Epoch, 0))
		return errors.Is(err, ErrHistoryGone)
	})
	if _, err := n.Subscribe(ctx, "ttl", Since(res.Epoch, 1)); err != nil {
		t.Fatalf("position at the head after expiry: %v", err)
	}
}

func TestHistoryOff(t *testing.T) {
	n, err := New(Config{NodeName: "nohist", HistorySize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := ctxT(t, 10*time.Second)
	res, err := n.Publish(ctx, "t", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Subscribe(ctx, "t", Since(res.Epoch, 0)); !errors.Is(err, ErrHistoryGone) {
		t.Fatalf("Since with history off: %v", err)
	}
}

// TestAckReplicated publishes to a topic whose replica has no subscribers
// (it gets Replicate frames) and to one whose replica has (it gets each
// copy inside the Deliver): either way an AckReplicated publish returns
// once the replica holds the message, every message is copied once, and
// the subscriber gets each once, in order.
func TestAckReplicated(t *testing.T) {
	for _, subscribed := range []bool{false, true} {
		t.Run(fmt.Sprintf("replica subscribed=%v", subscribed), func(t *testing.T) {
			testAckReplicated(t, subscribed)
		})
	}
}

func testAckReplicated(t *testing.T, subscribed bool) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t, 20*time.Second)
	owner := c.nodes[0]
	topic := topicOwnedBy(t, owner, owner.Name(), "durable")
	replicas, err := owner.Replicas(topic)
	if err != nil || len(replicas) != 1 {
		t.Fatalf("replicas %v, %v: want one", replicas, err)
	}
	var replica *Node
	for _, n := range c.nodes {
		if n.Name() == replicas[0].Name {
			replica = n
		}
	}
	var sub *Subscription
	if subscribed {
		if sub, err = replica.Subscribe(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	sent := func(typ Frame) uint64 {
		return owner.Stats().Links.Peers[replica.Name()].Sent[typ]
	}
	deliveries := func() uint64 { return sent(FrameDeliver) + sent(FrameReplicaDeliver) }
	deliverBefore, replicateBefore := deliveries(), sent(FrameReplicate)
	const acked, plain = 20, 20
	for i := range acked + plain {
		ack := AckReplicated
		if i >= acked {
			ack = AckOwner
		}
		res, err := c.nodes[(i%2)+1].Publish(ctx, topic, []byte(strconv.Itoa(i)), WithAck(ack))
		if err != nil {
			t.Fatal(err)
		}
		if ack != AckReplicated {
			continue
		}
		// Acknowledged as replicated: the replica holds it already.
		rt := replica.replicas.get(topic)
		if rt == nil {
			t.Fatalf("replica %s holds nothing after an acknowledged publish", replica.Name())
		}
		rt.mu.Lock()
		held := rt.seq
		rt.mu.Unlock()
		if held < res.Seq {
			t.Fatalf("replica holds seq %d after seq %d was acknowledged as replicated", held, res.Seq)
		}
	}
	waitFor(t, 10*time.Second, "every copy stored", func() bool { return replica.Stats().Replicated >= acked+plain })
	if got := replica.Stats().Replicated; got != acked+plain {
		t.Fatalf("replica stored %d copies, want %d", got, acked+plain)
	}
	// A link counts a frame once its writer has written it, which may be
	// after the replica has already handled it.
	waitFor(t, 10*time.Second, "the owner's link counters", func() bool {
		return deliveries()-deliverBefore+sent(FrameReplicate)-replicateBefore >= acked+plain
	})
	deliver, replicate := deliveries()-deliverBefore, sent(FrameReplicate)-replicateBefore
	wantDeliver, wantReplicate := uint64(0), uint64(acked+plain)
	if subscribed {
		wantDeliver, wantReplicate = acked+plain, 0
	}
	if deliver != wantDeliver || replicate != wantReplicate {
		t.Fatalf("owner sent the replica %d Deliver and %d Replicate frames, want %d and %d", deliver, replicate, wantDeliver, wantReplicate)
	}
	if subscribed {
		got := collect(t, ctx, sub, acked+plain)
		for i, m := range got {
			if m.Seq != uint64(i+1) || string(m.Data) != strconv.Itoa(i) {
				t.Fatalf("message %d: seq %d %q", i, m.Seq, m.Data)
			}
		}
		if s := replica.Stats(); s.Duplicates != 0 {
			t.Fatalf("%d duplicates", s.Duplicates)
		}
	}
}

// TestThreeReplicas runs with ReplicationFactor 3: one replica has
// subscribers (its copies ride in Deliver frames), the other has none
// (Replicate frames, one encoding shared when both get the same kind).
// Every copy must reach both, with and without AckReplicated, before and
// after the subscriber leaves.
func TestThreeReplicas(t *testing.T) {
	c := startCluster(t, 4, func(cfg *Config) { cfg.ReplicationFactor = 3 })
	ctx := ctxT(t, 20*time.Second)
	owner := c.nodes[0]
	topic := topicOwnedBy(t, owner, owner.Name(), "three")
	names, err := owner.Replicas(topic)
	if err != nil || len(names) != 2 {
		t.Fatalf("replicas %v, %v: want two", names, err)
	}
	byName := func(name string) *Node {
		for _, n := range c.nodes {
			if n.Name() == name {
				return n
			}
		}
		t.Fatalf("no node %s", name)
		return nil
	}
	subscribed, other := byName(names[0].Name), byName(names[1].Name)
	sub, err := subscribed.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	sent := func(to *Node, typ Frame) uint64 {
		return owner.Stats().Links.Peers[to.Name()].Sent[typ]
	}
	deliveries := func(to *Node) uint64 { return sent(to, FrameDeliver) + sent(to, FrameReplicaDeliver) }
	publish := func(from, count int) {
		t.Helper()
		for i := from; i < from+count; i++ {
			ack := AckOwner
			if i%2 == 0 {
				ack = AckReplicated
			}
			if _, err := owner.Publish(ctx, topic, []byte(strconv.Itoa(i)), WithAck(ack)); err != nil {
				t.Fatal(err)
			}
		}
	}
	stored := func(n *Node, want uint64) {
		t.Helper()
		waitFor(t, 10*time.Second, "replica copies", func() bool { return n.Stats().Replicated >= want })
		if got := n.Stats().Replicated; got != want {
			t.Fatalf("%s stored %d copies, want %d", n.Name(), got, want)
		}
	}

	publish(0, 10)
	stored(subscribed, 10)
	stored(other, 10)
	if d, r := deliveries(subscribed), sent(subscribed, FrameReplicate); d != 10 || r != 0 {
		t.Fatalf("subscribed replica got %d Deliver and %d Replicate frames, want 10 and 0", d, r)
	}
	if d, r := deliveries(other), sent(other, FrameReplicate); d != 0 || r != 10 {
		t.Fatalf("other replica got %d Deliver and %d Replicate frames, want 0 and 10", d, r)
	}
	for i, m := range collect(t, ctx, sub, 10) {
		if m.Seq != uint64(i+1) || string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d: seq %d %q", i, m.Seq, m.Data)
		}
	}

	// Without subscribers both replicas get the same Replicate frame.
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "unsubscribe at the owner", func() bool {
		ot := owner.owned.get(topic)
		ot.mu.Lock()
		defer ot.mu.Unlock()
		return len(ot.nodes) == 0
	})
	publish(10, 10)
	stored(subscribed, 20)
	stored(other, 20)
	if r := sent(subscribed, FrameReplicate); r != 10 {
		t.Fatalf("former subscriber got %d Replicate frames, want 10", r)
	}
	for _, n := range []*Node{subscribed, other} {
		rt := n.replicas.get(topic)
		rt.mu.Lock()
		seq := rt.seq
		rt.mu.Unlock()
		if seq != 20 {
			t.Fatalf("%s holds seq %d, want 20", n.Name(), seq)
		}
	}
}

// TestGapRepair loses one deliver frame on the way to a subscriber node:
// the node fetches the missing message from the owner's history at once
// (the gap timer is set far out so it cannot be what fills the gap).
func TestGapRepair(t *testing.T) {
	c := startCluster(t, 2, func(cfg *Config) { cfg.GapTimeout = time.Minute })
	ctx := ctxT(t, 20*time.Second)
	owner, subNode := c.nodes[0], c.nodes[1]
	topic := topicOwnedBy(t, owner, owner.Name(), "gap")
	sub, err := subNode.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Publish(ctx, topic, []byte("1")); err != nil {
		t.Fatal(err)
	}
	// Publish 2 while the owner does not know the subscriber node: its
	// deliver frame is lost.
	ot := owner.owned.get(topic)
	ot.mu.Lock()
	nodes := ot.nodes
	ot.nodes = nil
	ot.mu.Unlock()
	if _, err := owner.Publish(ctx, topic, []byte("2")); err != nil {
		t.Fatal(err)
	}
	ot.mu.Lock()
	ot.nodes = nodes
	ot.mu.Unlock()
	if _, err := owner.Publish(ctx, topic, []byte("3")); err != nil {
		t.Fatal(err)
	}
	got := collect(t, ctx, sub, 3)
	if !slices.Equal(seqs(got), []uint64{1, 2, 3}) || string(got[1].Data) != "2" {
		t.Fatalf("after repair: %v", seqs(got))
	}
	if s := subNode.Stats(); s.Repairs != 1 || s.Gaps != 0 {
		t.Fatalf("repairs %d (want 1), gaps given up %d (want 0)", s.Repairs, s.Gaps)
	}
}

// TestAcknowledgedSurviveOwnerFailure streams with AckReplicated while the
// topic's owner stops without leaving: every acknowledged message reaches
// every subscriber exactly once, in order, in the same epoch.
func TestAcknowledgedSurviveOwnerFailure(t *testing.T) {
	c := startCluster(t, 4, func(cfg *Config) { cfg.GapTimeout = time.Minute })
	ctx := ctxT(t, 60*time.Second)
	victim := c.nodes[3]
	topic := topicOwnedBy(t, c.nodes[0], victim.Name(), "survive")
	var recs []*recorder
	for _, n := range c.nodes[1:3] {
		r := &recorder{}
		if _, err := n.SubscribeFunc(ctx, topic, r.handle, WithBuffer(10000)); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	publisher := c.nodes[0]
	var (
		mu      sync.Mutex
		acked   []string
		killed  atomic.Int64
		resumed atomic.Int64
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; i < 1500 && time.Now().Before(deadline); i++ {
			payload := fmt.Sprintf("m%d", i)
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := publisher.Publish(pctx, topic, []byte(payload), WithAck(AckReplicated))
			cancel()
			if err != nil {
				continue // not acknowledged: it may or may not be delivered
			}
			if k := killed.Load(); k != 0 && resumed.Load() == 0 {
				resumed.Store(time.Now().UnixNano())
			}
			mu.Lock()
			acked = append(acked, payload)
			mu.Unlock()
			time.Sleep(500 * time.Microsecond)
		}
	}()
	waitFor(t, 20*time.Second, "traffic before the failure", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) > 300
	})
	killed.Store(time.Now().UnixNano())
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	if resumed.Load() == 0 {
		t.Fatal("publishes never succeeded again after the owner failed")
	}
	t.Logf("acknowledged publishes resumed %v after the owner stopped",
		time.Duration(resumed.Load()-killed.Load()).Round(time.Millisecond))

	mu.Lock()
	want := slices.Clone(acked)
	mu.Unlock()
	for i, r := range recs {
		who := fmt.Sprintf("subscriber %d", i)
		missing := func() []string {
			got := make(map[string]bool)
			for _, m := range r.snapshot() {
				got[string(m.Data)] = true
			}
			var out []string
			for _, p := range want {
				if !got[p] {
					out = append(out, p)
				}
			}
			return out
		}
		deadline := time.Now().Add(20 * time.Second)
		for len(missing()) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if m := missing(); len(m) > 0 {
			var trail []string
			for _, msg := range r.snapshot() {
				trail = append(trail, fmt.Sprintf("%s@%d", msg.Data, msg.Seq))
			}
			if len(trail) > 40 {
				trail = trail[len(trail)-40:]
			}
			t.Fatalf("%s: %d of %d acknowledged messages missing: %v\nlast received: %v\nstats: %+v", who, len(m), len(want), m, trail, c.nodes[i+1].Stats())
		}
		checkOrdered(t, who, r.snapshot())
	}
	var failovers uint64
	for _, n := range c.live() {
		failovers += n.Stats().Failovers
	}
	if failovers != 1 {
		t.Fatalf("%d topics rebuilt from replicas, want 1", failovers)
	}
}

// TestLostDuringRecovery overflows a Since subscription (OverflowDropOldest,
// a buffer of 2) with live messages while it waits for history: the
// messages it dropped that history brings back are not lost, and the count
// of those that are goes on the first live message after them, not on the
// first message recovered.
func TestLostDuringRecovery(t *testing.T) {
	c := startCluster(t, 1, nil)
	n := c.nodes[0]
	const epoch = 7
	for _, tc := range []struct {
		historyTo uint64 // history holds 6..historyTo
		after     uint64 // live messages 16..after pushed once recovered
		want      []string
	}{
		// Live 11, 12 and 13 are dropped from held: 14 and 15 stay.
		{10, 0, []string{"6/0", "7/0", "8/0", "9/0", "10/0", "14/3", "15/0"}},
		{12, 0, []string{"6/0", "7/0", "8/0", "9/0", "10/0", "11/0", "12/0", "14/1", "15/0"}},
		{13, 0, []string{"6/0", "7/0", "8/0", "9/0", "10/0", "11/0", "12/0", "13/0", "14/0", "15/0"}},
		{15, 0, []string{"6/0", "7/0", "8/0", "9/0", "10/0", "11/0", "12/0", "13/0", "14/0", "15/0"}},
		// Six more overflow the buffer again: 6..10 and 14 go, with the 3
		// lost before 14.
		{10, 21, []string{"15/9", "16/0", "17/0", "18/0", "19/0", "20/0", "21/0"}},
	} {
		s := newSubscription(n, "lost", nil, subscribeOptions{buffer: 2, overflow: OverflowDropOldest, since: &Position{Epoch: epoch, Seq: 5}})
		for seq := uint64(11); seq <= 15; seq++ {
			if !s.push(&Message{Topic: "lost", Epoch: epoch, Seq: seq}) {
				t.Fatalf("push %d ended the subscription", seq)
			}
		}
		var entries []wire.HistoryEntry
		for seq := uint64(6); seq <= tc.historyTo; seq++ {
			entries = append(entries, wire.HistoryEntry{Seq: seq})
		}
		s.finishRecovery(entries, epoch, 5)
		for seq := uint64(16); seq <= tc.after; seq++ {
			if !s.push(&Message{Topic: "lost", Epoch: epoch, Seq: seq}) {
				t.Fatalf("push %d ended the subscription", seq)
			}
		}
		ctx := ctxT(t, 5*time.Second)
		var got []string
		for range tc.want {
			m, err := s.Next(ctx)
			if err != nil {
				t.Fatalf("history to %d: after %v: %v", tc.historyTo, got, err)
			}
			got = append(got, fmt.Sprintf("%d/%d", m.Seq, m.Lost))
		}
		s.mu.Lock()
		left := len(s.in) + len(s.out) - s.pos
		s.mu.Unlock()
		if !slices.Equal(got, tc.want) || left != 0 {
			t.Fatalf("history to %d: seq/lost = %v and %d more, want %v", tc.historyTo, got, left, tc.want)
		}
	}
}
