package pubsub

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/pubsub/store/sqlite"
	"github.com/ringcast/ringcast/transport"
)

// queueTally records which queue member received which sequence numbers.
type queueTally struct {
	mu  sync.Mutex
	got map[string][]uint64 // member -> seqs
}

func (q *queueTally) add(member string, seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.got == nil {
		q.got = make(map[string][]uint64)
	}
	q.got[member] = append(q.got[member], seq)
}

// covers reports whether every sequence number of want was tallied.
func (q *queueTally) covers(want map[uint64]bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	seen := make(map[uint64]bool)
	for _, seqs := range q.got {
		for _, s := range seqs {
			seen[s] = true
		}
	}
	for s := range want {
		if !seen[s] {
			return false
		}
	}
	return true
}

func (q *queueTally) total() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := 0
	for _, s := range q.got {
		t += len(s)
	}
	return t
}

// once checks that every seq of want was received exactly once, by one
// member, and nothing else was.
func (q *queueTally) once(t *testing.T, want map[uint64]bool) {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	seen := make(map[uint64]string)
	for member, seqs := range q.got {
		for _, s := range seqs {
			if other, dup := seen[s]; dup {
				t.Fatalf("seq %d delivered to %s and %s", s, other, member)
			}
			if !want[s] {
				t.Fatalf("seq %d delivered to %s was never published", s, member)
			}
			seen[s] = member
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%d of %d messages delivered to the group", len(seen), len(want))
	}
}

// readQueue reads sub until it ends, recording every message as member's.
func readQueue(sub *Subscription, member string, tally *queueTally, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		m, err := sub.Next(context.Background())
		if err != nil {
			return
		}
		tally.add(member, m.Seq)
	}
}

// TestQueueGroupDeliversEachOnce runs a group of 3 nodes × 2 members and
// plain subscribers beside it: each of 10,000 messages reaches exactly one
// member, every member's share is within 10% of an even split (the owner
// takes the nodes in turn and each node its members in turn, so the split
// is even unless a member's buffer is full), and the plain subscribers
// receive all of them.
func TestQueueGroupDeliversEachOnce(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t, 60*time.Second)
	const topic, total = "jobs:each-once", 10000
	var (
		tally queueTally
		wg    sync.WaitGroup
		subs  []*Subscription
	)
	for i, n := range c.nodes {
		for j := range 2 {
			sub, err := n.SubscribeQueue(ctx, topic, "workers", WithBuffer(2*total))
			if err != nil {
				t.Fatalf("SubscribeQueue on %s: %v", n.Name(), err)
			}
			subs = append(subs, sub)
			wg.Add(1)
			go readQueue(sub, fmt.Sprintf("%d.%d", i, j), &tally, &wg)
		}
	}
	plain := make([]*Subscription, 0, 2)
	for _, n := range []*Node{c.nodes[0], c.nodes[2]} {
		sub, err := n.Subscribe(ctx, topic, WithBuffer(2*total))
		if err != nil {
			t.Fatal(err)
		}
		plain = append(plain, sub)
	}
	want := make(map[uint64]bool, total)
	for i := range total {
		res, err := c.nodes[1].Publish(ctx, topic, []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		want[res.Seq] = true
	}
	waitFor(t, 30*time.Second, "every message to reach the group", func() bool { return tally.total() >= total })
	for _, sub := range plain {
		for range total {
			m, err := sub.Next(ctx)
			if err != nil {
				t.Fatalf("plain subscriber: %v", err)
			}
			if !want[m.Seq] {
				t.Fatalf("plain subscriber got seq %d, never published", m.Seq)
			}
		}
	}
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	wg.Wait()
	tally.once(t, want)
	even := float64(total) / 6
	for member, seqs := range tally.got {
		if d := float64(len(seqs)) - even; d > even/10 || d < -even/10 {
			t.Errorf("member %s got %d messages, an even share is %.0f", member, len(seqs), even)
		}
	}
}

// TestQueueMemberStoppedLosesNothing stops a member of a memory topic's
// group mid-run: what it had buffered is still read (Next drains it after
// Unsubscribe), and every message after goes to the other members, so
// the group as a whole receives each message exactly once.
func TestQueueMemberStoppedLosesNothing(t *testing.T) {
	c := startCluster(t, 2, nil)
	ctx := ctxT(t, 60*time.Second)
	const topic, total = "jobs:stop", 4000
	var (
		tally queueTally
		wg    sync.WaitGroup
		subs  []*Subscription
	)
	for i, n := range c.nodes {
		for j := range 2 {
			sub, err := n.SubscribeQueue(ctx, topic, "workers", WithBuffer(2*total))
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, sub)
			wg.Add(1)
			go readQueue(sub, fmt.Sprintf("%d.%d", i, j), &tally, &wg)
		}
	}
	want := make(map[uint64]bool, total)
	for i := range total {
		if i == total/4 {
			_ = subs[0].Unsubscribe()
		}
		res, err := c.nodes[1].Publish(ctx, topic, []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		want[res.Seq] = true
	}
	waitFor(t, 30*time.Second, "every message to reach the group", func() bool { return tally.total() >= total })
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	wg.Wait()
	tally.once(t, want)
	tally.mu.Lock()
	stopped := len(tally.got["0.0"])
	tally.mu.Unlock()
	if stopped > total/4+total/8 {
		t.Errorf("the stopped member received %d messages, after its stop too", stopped)
	}
}

// TestQueueLastMemberLeaves checks that a node whose last member leaves
// gets nothing more, and that a group with no member left loses the
// messages of a memory topic (at most once) without blocking anything.
func TestQueueLastMemberLeaves(t *testing.T) {
	c := startCluster(t, 2, nil)
	ctx := ctxT(t, 30*time.Second)
	topic := topicOwnedBy(t, c.nodes[0], c.nodes[0].Name(), "jobs:leave")
	a, err := c.nodes[0].SubscribeQueue(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.nodes[1].SubscribeQueue(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Unsubscribe()
	waitFor(t, 10*time.Second, "the owner to forget the node", func() bool {
		q := &c.nodes[0].queueOwner
		q.mu.Lock()
		defer q.mu.Unlock()
		g := q.group(queueKey{topic, "g"}, false)
		return g != nil && len(g.nodes) == 1
	})
	for i := range 10 {
		if _, err := c.nodes[1].Publish(ctx, topic, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		if _, err := a.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Ack(Message{}); err != nil {
		t.Fatalf("Ack on a memory topic: %v", err)
	}
	plain, err := c.nodes[1].Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Ack(Message{}); !errors.Is(err, ErrNotQueueMember) {
		t.Fatalf("Ack on a plain subscription: %v", err)
	}
}

// TestQueueInvalidInput refuses bad group names and Since.
func TestQueueInvalidInput(t *testing.T) {
	n := startCluster(t, 1, nil).nodes[0]
	ctx := ctxT(t, 10*time.Second)
	for _, g := range []string{"", string(make([]byte, MaxQueueGroup+1)), "a\nb", "\xff"} {
		if _, err := n.SubscribeQueue(ctx, "t", g); !errors.Is(err, ErrInvalidQueueGroup) {
			t.Errorf("group %q: err %v", g, err)
		}
	}
	if _, err := n.SubscribeQueue(ctx, "t", "g", Since(0, 0)); !errors.Is(err, ErrInvalidQueueGroup) {
		t.Errorf("Since: err %v", err)
	}
	if _, err := n.SubscribeQueue(ctx, "", "g"); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("empty topic: err %v", err)
	}
}

// TestQueueDurableRedelivers kills a member of a durable topic's group
// mid-run (it stops reading and acknowledging, with messages taken): the
// owner delivers what it had not acknowledged again after QueueAckTimeout,
// so every message is acknowledged by some member in the end.
func TestQueueDurableRedelivers(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ringcast.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c := startCluster(t, 2, func(cfg *Config) {
		withStore(st)(cfg)
		cfg.QueueAckTimeout = 500 * time.Millisecond
	})
	ctx := ctxT(t, 60*time.Second)
	const topic, total = "jobs:durable", 1000
	var acked queueTally
	var wg sync.WaitGroup
	ackLoop := func(sub *Subscription, member string, stopAfter int) {
		defer wg.Done()
		for k := 0; ; k++ {
			m, err := sub.Next(context.Background())
			if err != nil {
				return
			}
			if k == stopAfter {
				// Killed while it holds m: nothing more is read or
				// acknowledged.
				_ = sub.Unsubscribe()
				return
			}
			if err := sub.Ack(m); err != nil {
				panic(err)
			}
			acked.add(member, m.Seq)
		}
	}
	var subs []*Subscription
	for i, n := range c.nodes {
		for j := range 2 {
			sub, err := n.SubscribeQueue(ctx, topic, "workers", WithBuffer(2*total))
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, sub)
			stopAfter := -1
			if i == 1 && j == 0 {
				stopAfter = 50
			}
			wg.Add(1)
			go ackLoop(sub, fmt.Sprintf("%d.%d", i, j), stopAfter)
		}
	}
	want := make(map[uint64]bool, total)
	var mu sync.Mutex
	var pubs sync.WaitGroup
	for p := range 4 {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := range total / 4 {
				res, err := c.nodes[p%2].Publish(ctx, topic, []byte(fmt.Sprint(p, i)))
				if err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				mu.Lock()
				want[res.Seq] = true
				mu.Unlock()
			}
		}()
	}
	pubs.Wait()
	// Duplicates are allowed (at least once); losses are not.
	waitFor(t, 30*time.Second, "every message to be acknowledged", func() bool { return acked.covers(want) })
	var redelivered uint64
	var qs QueueStats
	for _, n := range c.nodes {
		s := n.Stats().Queues
		redelivered += s.Redelivered
		qs.Groups += s.Groups
		qs.LocalGroups += s.LocalGroups
		qs.Members += s.Members
	}
	if redelivered == 0 {
		t.Error("nothing was delivered again, though a member held messages it never acknowledged")
	}
	// One group, held by its topic's owner; both nodes have members, one
	// of which stopped.
	if qs.Groups != 1 || qs.LocalGroups != 2 || qs.Members != 3 {
		t.Errorf("Stats.Queues across the nodes: %d groups at owners, %d local groups, %d members; want 1, 2, 3", qs.Groups, qs.LocalGroups, qs.Members)
	}
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	wg.Wait()
}

// TestQueueDurableResumesFromCursor acknowledges part of a durable topic's
// messages, stops the node, and starts another on the same SQLite store:
// a new member of the group receives every message after the group's
// cursor (the unacknowledged ones and those published while the group had
// no member), read from the store.
func TestQueueDurableResumesFromCursor(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ringcast.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := ctxT(t, 60*time.Second)
	const topic = "jobs:resume"
	first := newStandalone(t, "first", withStore(st))
	sub, err := first.SubscribeQueue(ctx, topic, "workers")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := first.Publish(ctx, topic, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	var cursor uint64
	for range 100 {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Seq <= 40 {
			_ = sub.Ack(m)
			cursor = max(cursor, m.Seq)
		}
	}
	if cursor != 40 {
		t.Fatalf("acknowledged up to %d", cursor)
	}
	waitFor(t, 10*time.Second, "the cursor to be saved", func() bool {
		c, ok, err := st.QueueCursor(ctx, topic, "workers")
		return err == nil && ok && c.Seq == 40
	})
	_ = sub.Unsubscribe()
	for i := range 20 {
		if _, err := first.Publish(ctx, topic, []byte(fmt.Sprint("no member ", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := newStandalone(t, "second", withStore(st))
	sub, err = second.SubscribeQueue(ctx, topic, "workers")
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(41); want <= 120; want++ {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Seq != want {
			t.Fatalf("got seq %d, want %d", m.Seq, want)
		}
		_ = sub.Ack(m)
	}
	waitFor(t, 10*time.Second, "the cursor to reach the end", func() bool {
		c, ok, err := st.QueueCursor(ctx, topic, "workers")
		return err == nil && ok && c.Seq == 120
	})
}

// TestQueueBadPeerFrames feeds a node queue frames a peer should never
// send: malformed bodies and invalid names are counted and change
// nothing, an acknowledgement for an unknown group is ignored, and a
// delivery for a group the node has no member of is dropped (and the
// sender told to stop); the node goes on serving its own group.
func TestQueueBadPeerFrames(t *testing.T) {
	n := startCluster(t, 1, nil).nodes[0]
	ctx := ctxT(t, 10*time.Second)
	sub, err := n.SubscribeQueue(ctx, "jobs:bad", "g")
	if err != nil {
		t.Fatal(err)
	}
	before := n.Stats().BadFrames
	for _, typ := range []transport.FrameType{wire.FrameQueueJoin, wire.FrameQueueLeave, wire.FrameQueueDeliver, wire.FrameQueueAck, wire.FrameQueueJoinAck} {
		n.handleFrame("peer", typ, []byte{0xc1})
	}
	n.handleFrame("peer", wire.FrameQueueJoin, wire.EncodeFrame(&wire.QueueJoin{Topic: "jobs:bad", Group: "a\x00b", Origin: "evil"})[transport.FrameHeaderSize:])
	n.handleFrame("peer", wire.FrameQueueJoin, wire.EncodeFrame(&wire.QueueJoin{Topic: "", Group: "g", Origin: "evil"})[transport.FrameHeaderSize:])
	n.handleFrame("peer", wire.FrameQueueLeave, wire.EncodeFrame(&wire.QueueLeave{Topic: "jobs:bad", Group: "", Origin: n.Name()})[transport.FrameHeaderSize:])
	if got := n.Stats().BadFrames - before; got != 8 {
		t.Fatalf("BadFrames grew by %d, want 8", got)
	}
	n.handleFrame("peer", wire.FrameQueueAck, wire.EncodeFrame(&wire.QueueAck{Topic: "jobs:none", Group: "g", Epoch: 1, Seq: 1})[transport.FrameHeaderSize:])
	n.handleFrame("peer", wire.FrameQueueDeliver, wire.EncodeFrame(&wire.QueueDeliver{Topic: "jobs:bad", Group: "other", Epoch: 1, Seq: 1, Data: []byte("x")})[transport.FrameHeaderSize:])
	q := &n.queueOwner
	q.mu.Lock()
	g := q.group(queueKey{"jobs:bad", "g"}, false)
	nodes := 0
	if g != nil {
		nodes = len(g.nodes)
	}
	evil := q.group(queueKey{"jobs:bad", "a\x00b"}, false)
	q.mu.Unlock()
	if nodes != 1 || evil != nil {
		t.Fatalf("owner holds %d nodes for the group and %v for the invalid one", nodes, evil)
	}
	if _, err := n.Publish(ctx, "jobs:bad", []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.Next(ctx); err != nil || string(m.Data) != "ok" {
		t.Fatalf("Next = %q, %v", m.Data, err)
	}
}

// TestQueueFollowsOwnerChange shuts the topic's owner down: the members'
// nodes join their group with the new owner by themselves, and messages
// published after the move reach the group again.
func TestQueueFollowsOwnerChange(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t, 60*time.Second)
	topic := topicOwnedBy(t, c.nodes[1], c.nodes[0].Name(), "jobs:move")
	var subs []*Subscription
	for _, n := range c.nodes[1:] {
		sub, err := n.SubscribeQueue(ctx, topic, "g")
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	if err := c.nodes[0].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
	var got queueTally
	var wg sync.WaitGroup
	for i, sub := range subs {
		wg.Add(1)
		go readQueue(sub, fmt.Sprint(i), &got, &wg)
	}
	want := make(map[uint64]bool)
	// The first publishes may reach the new owner before the members'
	// nodes have joined it again (memory topic: at most once); from then
	// on every message reaches the group.
	waitFor(t, 10*time.Second, "the group to receive a message after the move", func() bool {
		if _, err := c.nodes[1].Publish(ctx, topic, []byte("probe")); err != nil {
			t.Fatal(err)
		}
		return got.total() > 0
	})
	before := got.total()
	for i := range 100 {
		res, err := c.nodes[2].Publish(ctx, topic, []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		want[res.Seq] = true
	}
	waitFor(t, 10*time.Second, "every message after the move", func() bool { return got.total() >= before+len(want) })
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	wg.Wait()
	got.mu.Lock()
	defer got.mu.Unlock()
	seen := make(map[uint64]int)
	for _, seqs := range got.got {
		for _, s := range seqs {
			seen[s]++
		}
	}
	for s := range want {
		if seen[s] != 1 {
			t.Fatalf("seq %d delivered %d times", s, seen[s])
		}
	}
}

// TestQueueDurableNodeKilled closes a node whose member holds messages it
// has not acknowledged, as a crash would: the owner hands them to the
// group's member on another node (when the node is declared dead, or
// after QueueAckTimeout), and every message ends up acknowledged.
func TestQueueDurableNodeKilled(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ringcast.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c := startCluster(t, 3, func(cfg *Config) {
		withStore(st)(cfg)
		cfg.QueueAckTimeout = 2 * time.Second
	})
	ctx := ctxT(t, 60*time.Second)
	topic := topicOwnedBy(t, c.nodes[1], c.nodes[0].Name(), "jobs:kill")
	survivor, err := c.nodes[1].SubscribeQueue(ctx, topic, "workers")
	if err != nil {
		t.Fatal(err)
	}
	victim, err := c.nodes[2].SubscribeQueue(ctx, topic, "workers")
	if err != nil {
		t.Fatal(err)
	}
	var acked queueTally
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := survivor.Next(context.Background())
			if err != nil {
				return
			}
			_ = survivor.Ack(m)
			acked.add("survivor", m.Seq)
		}
	}()
	want := make(map[uint64]bool)
	for i := range 200 {
		res, err := c.nodes[0].Publish(ctx, topic, []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		want[res.Seq] = true
	}
	// The victim takes a few and acknowledges them, then its node dies
	// with the rest unacknowledged.
	for range 10 {
		m, err := victim.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = victim.Ack(m)
		acked.add("victim", m.Seq)
	}
	if err := c.nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every message to be acknowledged", func() bool { return acked.covers(want) })
	_ = survivor.Unsubscribe()
	wg.Wait()
	// Let the survivors declare the node dead, so that no probe of it is
	// left running when the test ends.
	c.waitConverged()
}

// TestQueueDurableFallsBehind lowers a durable group's bounds to a few
// messages: the owner stops holding the group's new messages, leaves them
// in the store and reads them back as the member works through what it
// has, so the member receives every message once and none is given up.
func TestQueueDurableFallsBehind(t *testing.T) {
	flights, backlog := maxQueueFlights, maxQueueBacklog
	maxQueueFlights, maxQueueBacklog = 4, 8
	t.Cleanup(func() { maxQueueFlights, maxQueueBacklog = flights, backlog })
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ringcast.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	n := newStandalone(t, "solo", withStore(st))
	ctx := ctxT(t, 60*time.Second)
	sub, err := n.SubscribeQueue(ctx, "jobs:behind", "workers")
	if err != nil {
		t.Fatal(err)
	}
	const total = 200
	for i := range total {
		if _, err := n.Publish(ctx, "jobs:behind", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	n.queueOwner.mu.Lock()
	behind := n.queueOwner.group(queueKey{"jobs:behind", "workers"}, false).behind
	n.queueOwner.mu.Unlock()
	if !behind {
		t.Fatal("the group did not fall behind")
	}
	seen := make(map[uint64]bool)
	for len(seen) < total {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(seen), err)
		}
		if seen[m.Seq] {
			t.Fatalf("seq %d delivered twice", m.Seq)
		}
		seen[m.Seq] = true
		_ = sub.Ack(m)
	}
	for s := uint64(1); s <= total; s++ {
		if !seen[s] {
			t.Fatalf("seq %d never delivered", s)
		}
	}
	if lost := n.Stats().Lost; lost != 0 {
		t.Fatalf("Stats.Lost = %d", lost)
	}
}
