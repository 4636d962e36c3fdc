package pubsub

import (
	"testing"
	"time"
)

// TestDeliveriesOnlyFromTheOwner sends a subscriber node deliveries from a
// node it is not registered with and of an older epoch from its owner:
// both are refused and counted, neither takes a position in the topic, the
// stranger is told once to stop (an Unsubscribe that goes no further), and
// the owner is not.
func TestDeliveriesOnlyFromTheOwner(t *testing.T) {
	c := startCluster(t, 3, nil)
	s, o, z := c.nodes[0], c.nodes[1], c.nodes[2]
	ctx := ctxT(t, 20*time.Second)
	topic := topicOwnedBy(t, s, o.Name(), "order")
	sub, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	res, err := o.Publish(ctx, topic, []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if m := collect(t, ctx, sub, 1); m[0].Seq != 1 {
		t.Fatalf("first message at seq %d", m[0].Seq)
	}
	s.deliver(z.Name(), topic, res.Epoch, 2, []byte("from a stranger"))
	s.deliver(z.Name(), topic, res.Epoch+1, 1, []byte("from a stranger, newer"))
	s.deliver(o.Name(), topic, res.Epoch-1, 5, []byte("older epoch"))
	if got := s.Stats().Stale; got != 3 {
		t.Fatalf("Stale = %d, want 3", got)
	}
	// A round trip on each link: an Unsubscribe s queued before has been
	// read (and counted) when the answer comes.
	for _, n := range []*Node{z, o} {
		if _, err := s.Subscribe(ctx, topicOwnedBy(t, s, n.Name(), "probe")); err != nil {
			t.Fatal(err)
		}
	}
	received := func(at *Node) uint64 { return at.Stats().Links.Peers[s.Name()].Received[FrameUnsubscribe] }
	if got := received(z); got != 1 {
		t.Fatalf("%s got %d Unsubscribe frames, want 1", z.Name(), got)
	}
	if got := received(o); got != 0 {
		t.Fatalf("the owner got %d Unsubscribe frames, want none", got)
	}
	// The owner still sends here, and seq 2 is its message.
	if _, err := o.Publish(ctx, topic, []byte("2")); err != nil {
		t.Fatal(err)
	}
	m := collect(t, ctx, sub, 1)[0]
	if m.Seq != 2 || string(m.Data) != "2" || m.Epoch != res.Epoch {
		t.Fatalf("second message %+v, want the owner's seq 2", m)
	}
}

// TestRegistrationBehindTheEpoch applies owners' answers to a local topic
// that has delivered messages of an epoch: an older epoch is not followed
// until epochWait has passed, a newer one is at once, and a registration
// confirmed by a node this one told to stop sending is made once more.
func TestRegistrationBehindTheEpoch(t *testing.T) {
	n, err := New(testConfig("solo"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := ctxT(t, 10*time.Second)
	const topic = "behind"
	if _, err := n.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	var epoch uint64
	for range 3 {
		res, err := n.Publish(ctx, topic, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		epoch = res.Epoch
	}
	lt := n.local.get(topic)
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if n.settleRegistration(lt, n.Name(), epoch-1, 7) || lt.epoch != epoch || lt.last != 3 {
		t.Fatalf("an older epoch was followed at once: settled, now at %d/%d", lt.epoch, lt.last)
	}
	lt.behindSince = time.Now().Add(-n.epochWait())
	if !n.settleRegistration(lt, n.Name(), epoch-1, 7) || lt.epoch != epoch-1 || lt.last != 7 {
		t.Fatalf("after epochWait the owner's epoch was not followed: at %d/%d", lt.epoch, lt.last)
	}
	if !n.settleRegistration(lt, n.Name(), epoch+1, 2) || lt.epoch != epoch+1 || lt.last != 2 || !lt.behindSince.IsZero() {
		t.Fatalf("a newer epoch was not followed at once: at %d/%d", lt.epoch, lt.last)
	}
	lt.refusedTo = "other"
	if n.settleRegistration(lt, "other", epoch+1, 2) || lt.refusedTo != "" {
		t.Fatal("a registration confirmed by a node told to stop sending was settled")
	}
	if !n.settleRegistration(lt, "other", epoch+1, 2) {
		t.Fatal("the registration made once more was not settled")
	}
}
