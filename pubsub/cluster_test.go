package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// recorder collects what a SubscribeFunc subscription receives.
type recorder struct {
	mu   sync.Mutex
	msgs []Message
}

func (r *recorder) handle(m Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// checkOrdered fails unless msgs are in strictly increasing sequence order
// within one epoch, without duplicates.
func checkOrdered(t *testing.T, who string, msgs []Message) {
	t.Helper()
	seen := make(map[string]bool)
	for i, m := range msgs {
		if seen[string(m.Data)] {
			t.Fatalf("%s: duplicate %q at %d", who, m.Data, i)
		}
		seen[string(m.Data)] = true
		if i == 0 {
			continue
		}
		p := msgs[i-1]
		if m.Epoch != p.Epoch {
			t.Fatalf("%s: epoch changed from %d to %d at %d", who, p.Epoch, m.Epoch, i)
		}
		if m.Seq <= p.Seq {
			t.Fatalf("%s: seq went from %d to %d at %d", who, p.Seq, m.Seq, i)
		}
	}
}

func TestStandaloneZeroConfig(t *testing.T) {
	n, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := ctxT(t, 10*time.Second)
	sub, err := n.Subscribe(ctx, "greetings")
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.Publish(ctx, "greetings", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Seq != 1 || res.Epoch == 0 {
		t.Fatalf("first publish: got %+v, want seq 1 and a non-zero epoch", res)
	}
	m, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "hello" || m.Seq != 1 || m.Topic != "greetings" || m.Epoch != res.Epoch {
		t.Fatalf("got %+v", m)
	}
	if got := n.Members(); len(got) != 1 || got[0].Name != n.Name() {
		t.Fatalf("Members() = %v", got)
	}
}

func TestClusterDelivery(t *testing.T) {
	for _, size := range []int{1, 3, 5} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			testClusterDelivery(t, size)
		})
	}
}

func testClusterDelivery(t *testing.T, size int) {
	// Nobody fails here: memberlist's LAN timings, which take seconds to
	// declare a member dead, keep a loaded machine (a -race run beside
	// other packages) from suspecting a live one and failing the publishes
	// sent to it, as the fast test timings occasionally did.
	c := startCluster(t, size, func(c *Config) { c.Gossip = GossipConfig{} })
	ctx := ctxT(t, 60*time.Second)
	topics := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
	const perPublisher = 40

	recs := make(map[string][]*recorder) // topic -> one recorder per node
	for _, topic := range topics {
		for _, n := range c.nodes {
			r := &recorder{}
			if _, err := n.SubscribeFunc(ctx, topic, r.handle); err != nil {
				t.Fatalf("subscribe %s on %s: %v", topic, n.Name(), err)
			}
			recs[topic] = append(recs[topic], r)
		}
	}

	// acked[topic][payload] = seq the owner acknowledged
	var mu sync.Mutex
	acked := make(map[string]map[string]uint64)
	for _, topic := range topics {
		acked[topic] = make(map[string]uint64)
	}
	var wg sync.WaitGroup
	errs := make(chan error, size*len(topics))
	for i, n := range c.nodes {
		for _, topic := range topics {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range perPublisher {
					payload := fmt.Sprintf("%d/%d", i, k)
					res, err := n.Publish(ctx, topic, []byte(payload))
					if err != nil {
						errs <- fmt.Errorf("publish %s %s: %w", topic, payload, err)
						return
					}
					mu.Lock()
					acked[topic][payload] = res.Seq
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	want := size * perPublisher
	for _, topic := range topics {
		for i, r := range recs[topic] {
			waitFor(t, 20*time.Second, fmt.Sprintf("%d messages on %s at node %d", want, topic, i), func() bool { return r.len() >= want })
		}
	}
	for _, topic := range topics {
		for i, r := range recs[topic] {
			msgs := r.snapshot()
			who := fmt.Sprintf("topic %s node %d", topic, i)
			if len(msgs) != want {
				t.Fatalf("%s: got %d messages, want %d", who, len(msgs), want)
			}
			checkOrdered(t, who, msgs)
			last := make(map[string]int)
			for j, m := range msgs {
				if m.Seq != uint64(j+1) {
					t.Fatalf("%s: message %d has seq %d, want %d", who, j, m.Seq, j+1)
				}
				if seq := acked[topic][string(m.Data)]; seq != m.Seq {
					t.Fatalf("%s: %q delivered with seq %d but acknowledged with %d", who, m.Data, m.Seq, seq)
				}
				pub, k, _ := strings.Cut(string(m.Data), "/")
				kn, _ := strconv.Atoi(k)
				if prev, ok := last[pub]; ok && kn <= prev {
					t.Fatalf("%s: publisher %s order broken: %d after %d", who, pub, kn, prev)
				}
				last[pub] = kn
			}
		}
	}
}

// TestOwnerSendsOneFramePerSubscriberNode checks the fan-out cost: with
// subscribers on k nodes (several on each), the owner sends exactly k
// deliver frames per publish, and nothing to the other nodes.
func TestOwnerSendsOneFramePerSubscriberNode(t *testing.T) {
	c := startCluster(t, 5, nil)
	ctx := ctxT(t, 30*time.Second)
	owner := c.nodes[0]
	topic := topicOwnedBy(t, owner, owner.Name(), "fanout")
	subscribers := c.nodes[1:4] // k = 3; node 4 has none
	var recs []*recorder
	for _, n := range subscribers {
		for range 4 {
			r := &recorder{}
			if _, err := n.SubscribeFunc(ctx, topic, r.handle); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
	}
	before := owner.Stats().Links
	const publishes = 50
	publisher := c.nodes[4]
	for i := range publishes {
		if _, err := publisher.Publish(ctx, topic, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range recs {
		waitFor(t, 10*time.Second, "deliveries", func() bool { return r.len() == publishes })
	}
	after := owner.Stats().Links
	sent := func(s LinkStats, peer string) uint64 {
		return s.Peers[peer].Sent[FrameDeliver] + s.Peers[peer].Sent[FrameReplicaDeliver]
	}
	var total uint64
	for _, n := range c.nodes[1:] {
		d := sent(after, n.Name()) - sent(before, n.Name())
		wantPer := uint64(publishes)
		if n == publisher {
			wantPer = 0
		}
		if d != wantPer {
			t.Errorf("owner sent %d deliver frames to %s, want %d", d, n.Name(), wantPer)
		}
		total += d
	}
	if want := uint64(publishes * len(subscribers)); total != want {
		t.Fatalf("owner sent %d deliver frames for %d publishes to %d subscriber nodes, want %d", total, publishes, len(subscribers), want)
	}
	if got := publisher.Stats().Links.Peers[owner.Name()].Received; got[FrameDeliver]+got[FrameReplicaDeliver] != 0 {
		t.Fatalf("node without subscribers received %d deliver frames", got[FrameDeliver]+got[FrameReplicaDeliver])
	}
}

// TestInterestOnlyOnTransitions checks that a node tells the owner about a
// topic only when its first subscriber arrives and its last one leaves.
func TestInterestOnlyOnTransitions(t *testing.T) {
	c := startCluster(t, 2, nil)
	ctx := ctxT(t, 30*time.Second)
	owner, sub := c.nodes[0], c.nodes[1]
	topic := topicOwnedBy(t, owner, owner.Name(), "interest")
	sentOf := func(typ Frame) uint64 {
		return sub.Stats().Links.Peers[owner.Name()].Sent[typ]
	}
	var subs []*Subscription
	for range 5 {
		s, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	waitFor(t, 5*time.Second, "subscribe frame", func() bool { return sentOf(FrameSubscribe) >= 1 })
	for _, s := range subs[:4] {
		_ = s.Unsubscribe()
	}
	if got := sentOf(FrameSubscribe); got != 1 {
		t.Fatalf("5 subscribers sent %d subscribe frames, want 1", got)
	}
	if got := sentOf(FrameUnsubscribe); got != 0 {
		t.Fatalf("4 of 5 unsubscribes sent %d unsubscribe frames, want 0", got)
	}
	_ = subs[4].Unsubscribe()
	waitFor(t, 5*time.Second, "unsubscribe frame", func() bool { return sentOf(FrameUnsubscribe) == 1 })
	waitFor(t, 5*time.Second, "owner to forget the node", func() bool {
		ot := owner.owned.get(topic)
		ot.mu.Lock()
		defer ot.mu.Unlock()
		return len(ot.nodes) == 0
	})
}

func TestSlowSubscriberIsolation(t *testing.T) {
	c := startCluster(t, 2, nil)
	ctx := ctxT(t, 30*time.Second)
	n := c.nodes[1]
	topic := topicOwnedBy(t, n, c.nodes[0].Name(), "slow")
	slow, err := n.Subscribe(ctx, topic, WithBuffer(8))
	if err != nil {
		t.Fatal(err)
	}
	dropper, err := n.Subscribe(ctx, topic, WithBuffer(8), WithOverflow(OverflowDropOldest))
	if err != nil {
		t.Fatal(err)
	}
	fast := &recorder{}
	if _, err := n.SubscribeFunc(ctx, topic, fast.handle, WithBuffer(1000)); err != nil {
		t.Fatal(err)
	}
	const total = 200
	for i := range total {
		if _, err := c.nodes[0].Publish(ctx, topic, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "fast subscriber", func() bool { return fast.len() == total })
	checkOrdered(t, "fast", fast.snapshot())

	// The slow one gets what it buffered, then ErrSlowConsumer.
	var got int
	for {
		_, err := slow.Next(ctx)
		if err != nil {
			if !errors.Is(err, ErrSlowConsumer) {
				t.Fatalf("slow subscriber: %v, want ErrSlowConsumer", err)
			}
			break
		}
		got++
	}
	if got != 8 {
		t.Fatalf("slow subscriber read %d buffered messages, want 8", got)
	}

	// The dropping one keeps the newest 8 and reports what it lost.
	var lost uint64
	var seqs []uint64
	for range 8 {
		m, err := dropper.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lost += m.Lost
		seqs = append(seqs, m.Seq)
	}
	if lost != total-8 || seqs[7]-seqs[0] != 7 {
		t.Fatalf("drop-oldest: lost %d (want %d), seqs %v", lost, total-8, seqs)
	}
	if s := n.Stats(); s.SlowConsumers != 1 || s.Dropped != total-8 {
		t.Fatalf("stats: %d slow consumers (want 1), %d dropped (want %d)", s.SlowConsumers, s.Dropped, total-8)
	}
}

func TestInvalidInputRefused(t *testing.T) {
	n, err := New(Config{NodeName: "solo", MaxPayload: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := ctxT(t, 10*time.Second)
	bad := []string{"", strings.Repeat("x", MaxTopicLen+1), "a\x00b", "tab\there", "bad\xffutf8", "del\x7f", "c1\u0085"}
	for _, topic := range bad {
		if _, err := n.Publish(ctx, topic, []byte("x")); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Publish(%q): %v, want ErrInvalidTopic", topic, err)
		}
		if _, err := n.Subscribe(ctx, topic); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Subscribe(%q): %v, want ErrInvalidTopic", topic, err)
		}
		if _, err := n.Replicas(topic); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Replicas(%q): %v, want ErrInvalidTopic", topic, err)
		}
	}
	if err := ValidateTopic(strings.Repeat("é", MaxTopicLen/2)); err != nil {
		t.Errorf("valid multi-byte topic refused: %v", err)
	}
	if _, err := n.Publish(ctx, "ok", make([]byte, 1025)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("oversize payload: %v, want ErrPayloadTooLarge", err)
	}
	if _, err := n.Publish(ctx, "ok", make([]byte, 1024)); err != nil {
		t.Fatalf("payload at the limit: %v", err)
	}
	// Publish skips the check for topics it owns: invalid ones are still
	// refused once the table is not empty, and a peer cannot hand one over.
	for _, topic := range bad {
		if _, err := n.Publish(ctx, topic, []byte("x")); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Publish(%q) with an owned topic: %v, want ErrInvalidTopic", topic, err)
		}
		n.onHandoff("peer", &wire.Handoff{Topic: topic, Epoch: 1, Seq: 1})
		// A peer's publish looks in the owner table first: an invalid topic
		// misses it and is refused there, before it could be sequenced.
		n.onPublish("peer", &wire.Publish{Topic: topic, Data: []byte("x")})
	}
	s := n.Stats()
	if s.Published != 1 || s.LocalTopics != 0 || s.OwnedTopics != 1 || s.BadFrames != uint64(len(bad)) {
		t.Fatalf("refused input changed state: %+v", s)
	}
	if _, err := New(Config{MaxPayload: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("negative MaxPayload: %v, want ErrInvalidConfig", err)
	}
}

// TestProtocolVersionsMoveTogether guards the rule that the member version
// gossiped by package ring changes with the link protocol: members that
// cannot open links to each other must not share a ring.
func TestProtocolVersionsMoveTogether(t *testing.T) {
	if v := (Config{}).ringConfig("").ProtocolVersion; v != wire.ProtocolVersion {
		t.Fatalf("ring speaks version %d, the links %d", v, wire.ProtocolVersion)
	}
}

func TestCloseAndShutdownIdempotent(t *testing.T) {
	c := startCluster(t, 2, nil)
	ctx := ctxT(t, 10*time.Second)
	n := c.nodes[1]
	sub, err := n.Subscribe(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	var closed atomic.Value
	if _, err := n.SubscribeFunc(ctx, "y", func(Message) {}, OnClose(func(err error) { closed.Store(err) })); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after shutdown: %v", err)
	}
	if err, _ := closed.Load().(error); !errors.Is(err, ErrClosed) {
		t.Fatalf("OnClose got %v, want ErrClosed", err)
	}
	if _, err := n.Publish(ctx, "x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after close: %v", err)
	}
	if _, err := n.Subscribe(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after close: %v", err)
	}
	waitFor(t, 10*time.Second, "node-0 to see node-1 leave", func() bool { return c.nodes[0].view().Len() == 1 })
}

func TestUnsubscribeStopsDelivery(t *testing.T) {
	n, err := New(Config{NodeName: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := ctxT(t, 10*time.Second)
	sub, err := n.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, "t", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, "t", []byte("2")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.Next(ctx)
	if err != nil || string(m.Data) != "1" {
		t.Fatalf("buffered message: %v %v", m, err)
	}
	if _, err := sub.Next(ctx); !errors.Is(err, ErrUnsubscribed) {
		t.Fatalf("after unsubscribe: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	sub2, err := n.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub2.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a new subscription received an old message: %v", err)
	}
}

func TestTopicInfo(t *testing.T) {
	c := startCluster(t, 2, nil)
	ctx := ctxT(t, 10*time.Second)
	owner, other := c.nodes[0], c.nodes[1]
	topic := topicOwnedBy(t, other, owner.Name(), "info")
	for i := range 3 {
		if _, err := other.Publish(ctx, topic, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		info, err := n.TopicInfo(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if info.Owner != owner.Name() || info.Seq != 3 || info.Epoch == 0 {
			t.Fatalf("TopicInfo from %s: %+v", n.Name(), info)
		}
	}
	// A peek never moves the topic.
	if s := owner.Stats(); s.Handoffs != 0 || s.OwnedTopics != 1 {
		t.Fatalf("peek changed ownership: %+v", s)
	}
	if _, err := other.TopicInfo(ctx, ""); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("invalid topic: %v", err)
	}
}
