package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

func TestIdlePredicate(t *testing.T) {
	r := newRetention(Config{IdleTopicTTL: time.Minute})
	const now = int64(time.Hour)
	h := newHistory(4, 0)
	if !r.idle(now, now-int64(time.Minute), 0, &h) {
		t.Fatal("a topic idle for IdleTopicTTL with nothing in it is not idle")
	}
	if r.idle(now, now-int64(time.Minute)+1, 0, &h) {
		t.Fatal("idle before IdleTopicTTL has passed")
	}
	if r.idle(now, 0, 1, &h) {
		t.Fatal("idle with a subscriber node")
	}
	h.add(1, 0, []byte("x"))
	if r.idle(now, 0, 0, &h) {
		t.Fatal("idle with a message in history")
	}
	r.idleTTL = -1
	h = newHistory(4, 0)
	if r.idle(now, 0, 0, &h) {
		t.Fatal("idle with IdleTopicTTL negative")
	}
}

// replicaCopies returns the topics n keeps replica copies of.
func replicaCopies(n *Node) []string { return n.replicas.names() }

// subscriberNodes returns the subscriber nodes n's owner state of topic
// lists, and whether n holds such a state.
func subscriberNodes(n *Node, topic string) (nodes []string, held bool) {
	ot := n.lockOwned(topic)
	if ot == nil {
		return nil, false
	}
	defer ot.mu.Unlock()
	return slices.Clone(ot.nodes), true
}

// TestIdleTopicsForgotten checks that owners and replicas forget topics
// with nothing left to keep, keep topics that have subscribers, and that a
// forgotten topic used again starts a new epoch.
func TestIdleTopicsForgotten(t *testing.T) {
	c := startCluster(t, 2, func(cfg *Config) {
		cfg.HistoryTTL = 200 * time.Millisecond
		cfg.IdleTopicTTL = 300 * time.Millisecond
	})
	a, b := c.nodes[0], c.nodes[1]
	ctx := ctxT(t, 30*time.Second)

	r := &recorder{}
	kept, err := b.SubscribeFunc(ctx, "kept", r.handle)
	if err != nil {
		t.Fatal(err)
	}
	const topics = 40
	epochs := make(map[string]uint64)
	for i := range topics {
		name := fmt.Sprintf("idle-%d", i)
		res, err := a.Publish(ctx, name, []byte("once"), WithAck(AckReplicated))
		if err != nil {
			t.Fatal(err)
		}
		epochs[name] = res.Epoch
	}
	first, err := a.Publish(ctx, "kept", []byte("k1"), WithAck(AckReplicated))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(replicaCopies(a)) + len(replicaCopies(b)); n != topics+1 {
		t.Fatalf("%d replica copies, want %d", n, topics+1)
	}
	if n := a.Stats().ReplicaTopics + b.Stats().ReplicaTopics; n != topics+1 {
		t.Fatalf("Stats().ReplicaTopics adds up to %d, want %d", n, topics+1)
	}

	owned := func() int { return a.Stats().OwnedTopics + b.Stats().OwnedTopics }
	waitFor(t, 10*time.Second, "the idle topics to be forgotten", func() bool {
		return owned() == 1 && len(replicaCopies(a))+len(replicaCopies(b)) == 1
	})
	if f := a.Stats().Forgotten + b.Stats().Forgotten; f != topics {
		t.Fatalf("Forgotten = %d, want %d", f, topics)
	}
	for _, n := range c.nodes {
		for _, name := range replicaCopies(n) {
			if name != "kept" {
				t.Fatalf("%s still keeps a copy of %s", n.Name(), name)
			}
		}
	}

	// The subscribed topic kept its state: the sequence goes on.
	second, err := a.Publish(ctx, "kept", []byte("k2"))
	if err != nil {
		t.Fatal(err)
	}
	if second.Epoch != first.Epoch || second.Seq != first.Seq+1 {
		t.Fatalf("kept topic went from %+v to %+v", first, second)
	}
	waitFor(t, 5*time.Second, "both messages of the kept topic", func() bool { return r.len() == 2 })

	// Resuming from a position in a forgotten topic is resuming past an
	// expired history.
	if _, err := b.Subscribe(ctx, "idle-1", Since(epochs["idle-1"], 1)); !errors.Is(err, ErrHistoryGone) {
		t.Fatalf("resuming a forgotten topic: %v, want ErrHistoryGone", err)
	}

	// A forgotten topic comes back in a new epoch, and works.
	sub, err := b.Subscribe(ctx, "idle-0")
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Publish(ctx, "idle-0", []byte("again"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Epoch == epochs["idle-0"] || res.Seq != 1 {
		t.Fatalf("revived topic: epoch %d seq %d; it was epoch %d", res.Epoch, res.Seq, epochs["idle-0"])
	}
	m, err := sub.Next(ctx)
	if err != nil || string(m.Data) != "again" || m.Epoch != res.Epoch {
		t.Fatalf("revived topic delivered %+v, %v", m, err)
	}

	// Once its subscribers leave, the kept topic goes too.
	_ = kept.Unsubscribe()
	_ = sub.Unsubscribe()
	waitFor(t, 10*time.Second, "every topic to be forgotten", func() bool {
		return owned() == 0 && len(replicaCopies(a))+len(replicaCopies(b)) == 0
	})
}

// TestForgetUnderTraffic forgets topics as fast as the nodes can (no
// history, a nanosecond of idleness) while subscriptions come and go and
// messages flow: every message published while a subscription is active
// reaches it, whatever the owner forgot in between. It checks the whole
// cycle end to end; the narrow window between a lookup and its lock is
// covered by TestGoneStatesPassedOver and TestRequestsForAGoneStateAreRouted.
func TestForgetUnderTraffic(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) {
		cfg.HistorySize = -1
		cfg.IdleTopicTTL = time.Nanosecond
	})
	ctx := ctxT(t, 60*time.Second)
	// Nodes forget on their reconcile pass (every reconcileInterval): the
	// traffic lasts several passes, over more topics than are in use at
	// once, so that every pass finds idle topics to forget.
	deadline := time.Now().Add(8 * reconcileInterval)
	const workers, rounds, pool = 4, 100000, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds && time.Now().Before(deadline); i++ {
				topic := fmt.Sprintf("churn-%d-%d", w, i%pool)
				sn, pn := c.nodes[(w+i)%3], c.nodes[(w+i+1)%3]
				sub, err := sn.Subscribe(ctx, topic)
				if err != nil {
					t.Errorf("%s: subscribe: %v", topic, err)
					return
				}
				want := fmt.Sprintf("m-%d-%d", w, i)
				if _, err := pn.Publish(ctx, topic, []byte(want)); err != nil {
					t.Errorf("%s: publish: %v", topic, err)
					return
				}
				mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				m, err := sub.Next(mctx)
				cancel()
				if err != nil || string(m.Data) != want {
					t.Errorf("%s round %d: got %q, %v; want %q", topic, i, m.Data, err, want)
					return
				}
				_ = sub.Unsubscribe()
				mu.Lock()
				done++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var forgotten uint64
	for _, n := range c.nodes {
		forgotten += n.Stats().Forgotten
	}
	t.Logf("%d rounds, %d topics forgotten", done, forgotten)
	if forgotten == 0 {
		t.Fatal("no topic was forgotten: the test exercised nothing")
	}
}

// TestGoneStatesPassedOver drops owner and replica states between a lookup
// and the lock that follows it, as a concurrent reconcile pass can: the
// lookup's holder must end up with the table's current state.
func TestGoneStatesPassedOver(t *testing.T) {
	c := startCluster(t, 1, nil)
	n := c.nodes[0]
	ctx := ctxT(t, 10*time.Second)
	if _, err := n.Publish(ctx, "passed", []byte("x")); err != nil {
		t.Fatal(err)
	}

	stale := n.owned.get("passed")
	stale.mu.Lock()
	n.owned.drop(stale)
	stale.mu.Unlock()
	find := func() *ownedTopic { return n.ownedOrClaim("passed") }
	got := relock(stale, find)
	if got == nil || got == stale || got != n.owned.get("passed") {
		t.Fatalf("relock kept a gone owner state (%p, table %p)", got, n.owned.get("passed"))
	}
	got.mu.Unlock()
	if relock(nil, func() *ownedTopic { return nil }) != nil {
		t.Fatal("relock found a state where there is none")
	}
	gone := &ownedTopic{name: "nowhere"}
	gone.gone.Store(true)
	if relock(gone, func() *ownedTopic { return nil }) != nil {
		t.Fatal("relock returned a gone state with no successor")
	}

	old := n.replicas.acquire("copied")
	n.replicas.drop("copied")
	rt := n.replicas.relock("copied", old)
	if rt == old || rt != n.replicas.get("copied") {
		t.Fatal("relock kept a gone replica copy")
	}
	rt.mu.Unlock()
}

// TestBusyTopicNotForgotten publishes to a topic that keeps no history and
// has no subscriber for several idle periods: publishes alone keep it, so
// its epoch never changes.
func TestBusyTopicNotForgotten(t *testing.T) {
	c := startCluster(t, 1, func(cfg *Config) {
		cfg.HistorySize = -1
		cfg.IdleTopicTTL = 2 * reconcileInterval
	})
	n := c.nodes[0]
	ctx := ctxT(t, 20*time.Second)
	first, err := n.Publish(ctx, "busy", []byte("0"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(6 * reconcileInterval)
	for i := 1; i < 100000 && time.Now().Before(deadline); i++ {
		res, err := n.Publish(ctx, "busy", []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Epoch != first.Epoch || res.Seq != uint64(i+1) {
			t.Fatalf("publish %d: epoch %d seq %d, was epoch %d: the busy topic was forgotten", i, res.Epoch, res.Seq, first.Epoch)
		}
		time.Sleep(time.Millisecond) // a steady trickle, not a burst
	}
	if f := n.Stats().Forgotten; f != 0 {
		t.Fatalf("Forgotten = %d", f)
	}
}

// TestRequestsForAGoneStateAreRouted sends a subscribe and an unsubscribe
// to a node that decided it holds the topic's state, after that state went
// away (here: it never had one, which is what the node sees once a
// tombstone is dropped): both must reach the owner in the ring, and the
// node must not claim a topic it does not own.
func TestRequestsForAGoneStateAreRouted(t *testing.T) {
	c := startCluster(t, 2, nil)
	a, b := c.nodes[0], c.nodes[1]
	ctx := ctxT(t, 20*time.Second)
	topic := topicOwnedBy(t, a, b.Name(), "routed")

	replied := make(chan error, 1)
	req := &subReq{topic: topic, origin: a.Name(), done: func(_ string, _, _ uint64, err error) { replied <- err }}
	a.ownerSubscribe(req)
	select {
	case err := <-replied:
		if err != nil {
			t.Fatalf("subscribe routed past a gone state: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no answer to the subscribe")
	}
	if a.owned.get(topic) != nil {
		t.Fatalf("%s claimed %s, which %s owns", a.Name(), topic, b.Name())
	}
	nodes := func() []string { got, _ := subscriberNodes(b, topic); return got }
	if got := nodes(); len(got) != 1 || got[0] != a.Name() {
		t.Fatalf("%s lists subscriber nodes %q, want [%s]", b.Name(), got, a.Name())
	}

	a.ownerUnsubscribe(topic, a.Name(), 0)
	waitFor(t, 5*time.Second, "the owner to drop the subscriber node", func() bool { return len(nodes()) == 0 })
}

// TestReplicaCopyFollowsOwner covers what a replica copy offers a claim
// and when it takes another epoch from a node-list sync.
func TestReplicaCopyFollowsOwner(t *testing.T) {
	c := startCluster(t, 1, func(cfg *Config) { cfg.IdleTopicTTL = time.Second })
	n := c.nodes[0] // the ring owner of every topic
	sync := func(topic, from string, epoch, seq uint64, nodes ...string) {
		n.onReplicaNodes(from, &wire.ReplicaNodes{Topic: topic, Epoch: epoch, Seq: seq, Nodes: nodes})
	}
	check := func(what, topic string, epoch, seq uint64, hist int, nodes ...string) {
		t.Helper()
		rt := n.replicas.get(topic)
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if rt.epoch != epoch || rt.seq != seq || rt.hist.n != hist || !slices.Equal(rt.nodes, nodes) {
			t.Fatalf("%s: epoch %d seq %d history %d nodes %q; want %d %d %d %q", what, rt.epoch, rt.seq, rt.hist.n, rt.nodes, epoch, seq, hist, nodes)
		}
	}

	rt := n.replicas.lock("copy")
	rt.epoch, rt.seq, rt.nodes, rt.active = 7, 10, []string{"node-x"}, n.retention.now()
	rt.hist.add(10, n.retention.now(), []byte("m"))
	rt.mu.Unlock()

	// A copy holding something keeps its epoch against another epoch's
	// sync from a node that does not own the topic: a stale owner.
	sync("copy", "node-stale", 8, 3, "node-y")
	check("a stale owner's sync", "copy", 7, 10, 1, "node-x")
	sync("copy", "node-stale", 7, 10, "node-x", "node-y")
	check("a sync of its epoch", "copy", 7, 10, 1, "node-x", "node-y")
	// The topic's owner started it afresh: its epoch replaces the copy.
	sync("copy", n.Name(), 8, 3, "node-y")
	check("the owner's new epoch", "copy", 8, 3, 0, "node-y")
	if st := n.replicas.state(rt, "copy"); st == nil || st.Epoch != 8 || st.Seq != 3 {
		t.Fatalf("a copy with subscriber nodes offers %+v", st)
	}
	// A copy holding nothing takes any sender's epoch.
	n.replicas.lock("blank").mu.Unlock()
	sync("blank", "node-stale", 9, 0, "node-z")
	check("a blank copy", "blank", 9, 0, 0, "node-z")

	// Without nodes or messages, and idle, it offers nothing: the topic was
	// forgotten, not lost. A sync that only removes nodes is no activity.
	rt.mu.Lock()
	rt.active = n.retention.now() - int64(time.Second)
	rt.mu.Unlock()
	sync("copy", n.Name(), 8, 3)
	if st := n.replicas.state(rt, "copy"); st != nil {
		t.Fatalf("an idle copy with nothing in it offers %+v", st)
	}
	sync("copy", n.Name(), 8, 3, "node-z")
	sync("copy", n.Name(), 8, 3)
	if st := n.replicas.state(rt, "copy"); st == nil {
		t.Fatal("a copy whose owner listed a node a moment ago offers nothing")
	}
}

// TestUnsubscribeReachesUnclaimedCopy unsubscribes a node from a topic this
// node owns by the ring but has not claimed yet (as after a failover): the
// replica copy the claim will start from must stop listing the node, or
// the topic would keep sending to it and never become idle.
func TestUnsubscribeReachesUnclaimedCopy(t *testing.T) {
	c := startCluster(t, 1, nil)
	n := c.nodes[0]
	rt := n.replicas.lock("unclaimed")
	rt.epoch, rt.seq, rt.nodes = 3, 9, []string{"node-x", "node-y"}
	rt.mu.Unlock()
	n.ownerUnsubscribe("unclaimed", "node-x", 0)
	rt.mu.Lock()
	nodes := slices.Clone(rt.nodes)
	rt.mu.Unlock()
	if !slices.Equal(nodes, []string{"node-y"}) {
		t.Fatalf("the copy lists %q after node-x unsubscribed", nodes)
	}
	if n.owned.get("unclaimed") != nil {
		t.Fatal("an unsubscribe started a claim")
	}
}

// TestReturningRequestKeepsItsWaiter forwards a request of this node's that
// came back to it (nodes whose views disagree) where it cannot be sent (here
// to this node itself, which the router refuses at once): the waiter
// registered when the request first left must survive, so that the error
// reply completes it.
func TestReturningRequestKeepsItsWaiter(t *testing.T) {
	c := startCluster(t, 1, nil)
	n := c.nodes[0]
	answered := make(chan error, 2)
	wait := func(_ string, _ wire.Message, err error) { answered <- err }

	id := n.pending.add("elsewhere", time.Minute, wait)
	sub := &subReq{topic: "back", origin: n.Name(), reqID: id, hops: 1}
	if err := n.router.sendSubscribe(sub, n.Name()); err == nil {
		t.Fatal("a subscribe to this node itself was sent")
	}
	n.pending.complete(n.Name(), id, &wire.SubscribeAck{ReqID: id})

	id = n.pending.add("elsewhere", time.Minute, wait)
	pub := &pubReq{topic: "back", origin: n.Name(), reqID: id, ack: AckOwner, hops: 1}
	if err := n.router.sendPublish(pub, n.Name()); err == nil {
		t.Fatal("a publish to this node itself was sent")
	}
	n.pending.complete(n.Name(), id, &wire.PublishAck{ReqID: id})
	for range 2 {
		select {
		case <-answered:
		default:
			t.Fatal("the waiter of a returning request was cancelled")
		}
	}
}

// TestDepartureIsNoActivity lets the only subscriber node of an idle topic
// fail after the topic has been idle for longer than IdleTopicTTL: the
// owner forgets the topic as soon as it has dropped the node, instead of
// counting the departure as a use and waiting another IdleTopicTTL.
func TestDepartureIsNoActivity(t *testing.T) {
	const ttl = 2 * time.Second
	c := startCluster(t, 2, func(cfg *Config) {
		cfg.HistorySize = -1
		cfg.IdleTopicTTL = ttl
	})
	a, b := c.nodes[0], c.nodes[1]
	ctx := ctxT(t, 30*time.Second)
	topic := topicOwnedBy(t, a, a.Name(), "departs")
	if _, err := b.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, topic, []byte("x")); err != nil {
		t.Fatal(err)
	}
	nodes := func() int { // -1: a holds no state for the topic
		got, held := subscriberNodes(a, topic)
		if !held {
			return -1
		}
		return len(got)
	}
	// Idle for longer than the TTL (its last use set back), but kept by its
	// subscriber node.
	ot := a.lockOwned(topic)
	lastUse := ot.active
	ot.active -= int64(2 * ttl)
	ot.mu.Unlock()
	waitFor(t, 5*time.Second, "a reconcile pass", func() bool { return a.retention.now() > lastUse+int64(reconcileInterval) })
	if nodes() != 1 {
		t.Fatalf("the topic with a subscriber node has %d nodes", nodes())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the owner to drop the failed node", func() bool { return nodes() != 1 })
	dropped := time.Now()
	waitFor(t, 10*time.Second, "the topic to be forgotten", func() bool { return nodes() == -1 })
	if waited := time.Since(dropped); waited > ttl*3/4 {
		t.Fatalf("forgotten %v after its last node left: the departure counted as a use", waited)
	}
}

// TestTopicHandedBackKeepsHistory moves a topic to another node and lets the
// ring hand it back onto the tombstone it left: the topic's history must
// come back with it, and keep growing.
func TestTopicHandedBackKeepsHistory(t *testing.T) {
	c := startCluster(t, 2, nil)
	a, b := c.nodes[0], c.nodes[1]
	ctx := ctxT(t, 20*time.Second)
	topic := topicOwnedBy(t, a, a.Name(), "back")
	for i := range 2 {
		if _, err := a.Publish(ctx, topic, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ot := a.lockOwned(topic)
	err := a.moveLocked(ot, b.Name(), 0, true)
	ot.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// b adopts it, then hands it back to a, its owner in the ring.
	waitFor(t, 10*time.Second, "the topic to come back", func() bool {
		back := a.lockOwned(topic)
		if back == nil {
			return false
		}
		defer back.mu.Unlock()
		return back.state == stateReady && b.Stats().Handoffs > 0
	})
	if _, err := a.Publish(ctx, topic, []byte("m2")); err != nil {
		t.Fatal(err)
	}
	page, ok := a.readHistory(topic, 0, 0)
	if !ok || len(page.entries) != 3 || page.seq != 3 {
		t.Fatalf("history after the round trip: %d entries, seq %d (served %v); want 3", len(page.entries), page.seq, ok)
	}
}

// TestStaleSubscriberNodeHeals drops a node's last local subscription
// without telling the owner, as a lost unsubscribe would: the next
// delivery to it makes it unsubscribe, so the owner stops sending there.
func TestStaleSubscriberNodeHeals(t *testing.T) {
	c := startCluster(t, 2, nil)
	a, b := c.nodes[0], c.nodes[1]
	ctx := ctxT(t, 20*time.Second)
	topic := topicOwnedBy(t, a, a.Name(), "stale")
	sub, err := b.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	nodes := func() []string { got, _ := subscriberNodes(a, topic); return got }
	if got := nodes(); !slices.Equal(got, []string{b.Name()}) {
		t.Fatalf("subscriber nodes %q, want [%s]", got, b.Name())
	}
	reg := &b.local.reg(topic).mu
	reg.Lock()
	b.local.remove(sub) // gone here, and the owner is not told
	reg.Unlock()

	if _, err := a.Publish(ctx, topic, []byte("to nobody")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the owner to drop the stale node", func() bool { return len(nodes()) == 0 })
	if b.Stats().Unrouted == 0 {
		t.Fatal("the delivery was not counted as unrouted")
	}
}

// TestStaleAnswerRacesSubscribe answers deliveries for a topic with no
// local subscriber while the node subscribes to it: the owner must still
// list the node once Subscribe has returned and the link is quiet. (The
// narrowest window, between deliver's lookup and unsubscribeStale's lock,
// is closed by looking again under the lock; this test seldom lands in it.)
func TestStaleAnswerRacesSubscribe(t *testing.T) {
	c := startCluster(t, 2, nil)
	o, b := c.nodes[0], c.nodes[1]
	ctx := ctxT(t, 60*time.Second)
	topic := topicOwnedBy(t, b, o.Name(), "race")
	if _, err := o.Publish(ctx, topic, []byte("x")); err != nil {
		t.Fatal(err)
	}
	nodes := func() []string { got, _ := subscriberNodes(o, topic); return got }
	deadline := time.Now().Add(10 * time.Second)
	for trial := 0; trial < 500 && time.Now().Before(deadline); trial++ {
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Go(func() {
			reg := &b.local.reg(topic).mu
			// Bounded, as every answer is a frame queued toward o.
			for i := 0; i < 2000 && !stop.Load(); i++ {
				reg.Lock()
				clear(b.local.reg(topic).staleTold) // answer every delivery
				reg.Unlock()
				b.deliver(o.Name(), topic, 1, 1, nil)
			}
		})
		sub, err := b.Subscribe(ctx, topic)
		stop.Store(true)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		// A round trip on the same link: o has handled everything b sent.
		if _, err := b.TopicInfo(ctx, topic); err != nil {
			t.Fatal(err)
		}
		if got := nodes(); !slices.Contains(got, b.Name()) {
			t.Fatalf("trial %d: the owner lists %q right after %s subscribed", trial, got, b.Name())
		}
		_ = sub.Unsubscribe()
		waitFor(t, 5*time.Second, "the owner to drop the node", func() bool { return len(nodes()) == 0 })
	}
}

// TestStaleAnswerOnlyToTheOwner gets a stale delivery from a node that is
// not the topic's owner in this node's view (a previous owner) and one from
// the owner: only the owner is answered, since a later Subscribe takes the
// owner's link and could be overtaken by an Unsubscribe forwarded from
// elsewhere.
func TestStaleAnswerOnlyToTheOwner(t *testing.T) {
	c := startCluster(t, 3, nil)
	a, b, o := c.nodes[0], c.nodes[1], c.nodes[2]
	ctx := ctxT(t, 20*time.Second)
	topic := topicOwnedBy(t, b, o.Name(), "notowner")
	if _, err := o.Publish(ctx, topic, []byte("x")); err != nil {
		t.Fatal(err)
	}
	received := func(at *Node) uint64 { return at.Stats().Links.Peers[b.Name()].Received[FrameUnsubscribe] }
	b.deliver(a.Name(), topic, 1, 1, []byte("late"))
	b.deliver(o.Name(), topic, 1, 1, []byte("late"))
	// A round trip to each on the same link: an Unsubscribe b queued
	// before it has been read (and counted) when the answer comes.
	for _, n := range []*Node{a, o} {
		if _, err := b.Subscribe(ctx, topicOwnedBy(t, b, n.Name(), "probe")); err != nil {
			t.Fatal(err)
		}
	}
	if got := received(o); got != 1 {
		t.Fatalf("the owner got %d Unsubscribe frames, want 1", got)
	}
	if got := received(a); got != 0 {
		t.Fatalf("%s, which does not own the topic, got %d Unsubscribe frames", a.Name(), got)
	}
}

// readHistory reads a page of a served topic's in-memory history. It reports false
// when this node does not serve the topic, or is still claiming it.
func (n *Node) readHistory(topic string, after, until uint64) (historyPage, bool) {
	ot := n.lockServedOrClaim(topic)
	if ot == nil {
		return historyPage{}, false
	}
	defer ot.mu.Unlock()
	if ot.state != stateReady {
		return historyPage{}, false
	}
	return n.historyPageLocked(ot, after, until), true
}
