package pubsub

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTopicHandle(t *testing.T) {
	c := startCluster(t, 1, func(cfg *Config) { cfg.MaxPayload = 64 })
	n := c.nodes[0]
	ctx := ctxT(t, 10*time.Second)

	for _, bad := range []string{"", "a\x00b", strings.Repeat("x", MaxTopicLen+1), "bad\xff"} {
		if h, err := n.Topic(bad); !errors.Is(err, ErrInvalidTopic) || h != nil {
			t.Errorf("Topic(%q) = %v, %v; want ErrInvalidTopic", bad, h, err)
		}
	}

	h, err := n.Topic("handle")
	if err != nil {
		t.Fatal(err)
	}
	if h.Name() != "handle" {
		t.Fatalf("Name() = %q", h.Name())
	}
	r := &recorder{}
	if _, err := n.SubscribeFunc(ctx, "handle", r.handle); err != nil {
		t.Fatal(err)
	}
	// The handle and Node.Publish share one sequence.
	const total = 20
	for i := range total {
		var res PublishResult
		var err error
		if i%2 == 0 {
			res, err = h.Publish(ctx, fmt.Appendf(nil, "m%d", i))
		} else {
			res, err = n.Publish(ctx, "handle", fmt.Appendf(nil, "m%d", i))
		}
		if err != nil {
			t.Fatal(err)
		}
		if res.Seq != uint64(i+1) {
			t.Fatalf("publish %d: seq %d, want %d", i, res.Seq, i+1)
		}
	}
	if got, want := h.owned.Load(), n.owned.get("handle"); got == nil || got != want {
		t.Fatalf("handle remembers %p, the owner table holds %p", got, want)
	}
	waitFor(t, 5*time.Second, "every message", func() bool { return r.len() == total })
	msgs := r.snapshot()
	checkOrdered(t, "handle", msgs)
	for i, m := range msgs {
		if string(m.Data) != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d is %q", i, m.Data)
		}
	}

	if _, err := h.Publish(ctx, make([]byte, 65)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("oversized payload: %v, want ErrPayloadTooLarge", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after Close: %v, want ErrClosed", err)
	}
}

// TestTopicHandleFollowsOwner moves topics whose handles remember this
// node's owner state to a node that joins: publishes through the handles
// keep their order across the move, and once the moved tombstone is
// dropped the handles let it go and reach the new owner.
func TestTopicHandleFollowsOwner(t *testing.T) {
	c := startCluster(t, 2, nil)
	a, b := c.nodes[0], c.nodes[1]
	ctx := ctxT(t, 60*time.Second)

	const topics = 60
	handles := make([]*Topic, 0, topics)
	recs := make([]*recorder, 0, topics)
	for i := 0; len(handles) < topics; i++ {
		name := fmt.Sprintf("follow-%d", i)
		if o, err := a.Owner(name); err != nil || o.Name != a.Name() {
			continue
		}
		h, err := a.Topic(name)
		if err != nil {
			t.Fatal(err)
		}
		r := &recorder{}
		if _, err := b.SubscribeFunc(ctx, name, r.handle); err != nil {
			t.Fatal(err)
		}
		handles, recs = append(handles, h), append(recs, r)
	}
	publishAll := func(round int) {
		t.Helper()
		for _, h := range handles {
			res, err := h.Publish(ctx, fmt.Appendf(nil, "%s/%d", h.Name(), round))
			if err != nil {
				t.Fatalf("%s round %d: %v", h.Name(), round, err)
			}
			if res.Seq != uint64(round) {
				t.Fatalf("%s round %d: seq %d", h.Name(), round, res.Seq)
			}
		}
	}
	publishAll(1)
	for _, h := range handles {
		if h.owned.Load() == nil {
			t.Fatalf("%s: the handle did not keep the owner state", h.Name())
		}
	}

	joined := c.add(nil)
	c.waitConverged()
	var moved []*Topic
	for _, h := range handles {
		if o, err := a.Owner(h.Name()); err == nil && o.Name == joined.Name() {
			moved = append(moved, h)
		}
	}
	if len(moved) == 0 {
		t.Fatalf("no topic of %d moved to %s: the test exercised nothing", topics, joined.Name())
	}
	// Hand-off runs on ring changes; until a tombstone is dropped the
	// handle's state forwards to the new owner.
	// The states the handles hold once moved: the tombstones that must be
	// marked gone when they are dropped.
	tombstones := make(map[*Topic]*ownedTopic)
	waitFor(t, 10*time.Second, "the moved topics to be handed off", func() bool {
		for _, h := range moved {
			if ot := h.owned.Load(); ot != nil {
				ot.mu.Lock()
				state := ot.state
				ot.mu.Unlock()
				if state != stateMoved {
					return false
				}
				tombstones[h] = ot
			}
		}
		return true
	})
	publishAll(2)
	waitFor(t, 10*time.Second, "the tombstones to be dropped", func() bool {
		for _, h := range moved {
			if a.owned.get(h.Name()) != nil {
				return false
			}
		}
		return true
	})
	// A handle holds its tombstone until its next publish (which may have
	// come after the drop and let it go): the tombstone itself must be
	// marked gone, and a handle must not hold a state that is not.
	for _, h := range moved {
		if ot := tombstones[h]; ot == nil || !ot.gone.Load() {
			t.Fatalf("%s: the handle's dropped state is not marked gone", h.Name())
		}
		if ot := h.owned.Load(); ot != nil && !ot.gone.Load() && ot != a.owned.get(h.Name()) {
			t.Fatalf("%s: the handle holds a state that is neither gone nor the owner table's", h.Name())
		}
	}
	publishAll(3)
	for _, h := range handles {
		got, want := h.owned.Load(), a.owned.get(h.Name())
		if got != want {
			t.Fatalf("%s: handle holds %p, owner table %p", h.Name(), got, want)
		}
	}

	for i, r := range recs {
		name := handles[i].Name()
		waitFor(t, 10*time.Second, name+" to receive three rounds", func() bool { return r.len() >= 3 })
		msgs := r.snapshot()
		checkOrdered(t, name, msgs)
		if len(msgs) != 3 {
			t.Fatalf("%s: %d messages, want 3", name, len(msgs))
		}
		for j, m := range msgs {
			if want := fmt.Sprintf("%s/%d", name, j+1); string(m.Data) != want {
				t.Fatalf("%s: message %d is %q, want %q", name, j, m.Data, want)
			}
		}
	}
	if st := joined.Stats(); st.Sequenced < uint64(2*len(moved)) {
		t.Fatalf("%s sequenced %d messages; %d topics moved to it", joined.Name(), st.Sequenced, len(moved))
	}
}

// TestPublishOwnedRoutesPastGoneState covers a publish that looked up an
// owner state which left the table before it took the state's lock: it is
// routed afresh, to the owner's new state or on to another node.
func TestPublishOwnedRoutesPastGoneState(t *testing.T) {
	c := startCluster(t, 2, nil)
	a, b := c.nodes[0], c.nodes[1]
	ctx := ctxT(t, 20*time.Second)
	here := topicOwnedBy(t, a, a.Name(), "gone-here")
	there := topicOwnedBy(t, a, b.Name(), "gone-there")
	rh, rt := &recorder{}, &recorder{}
	if _, err := b.SubscribeFunc(ctx, here, rh.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SubscribeFunc(ctx, there, rt.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, here, []byte("before")); err != nil {
		t.Fatal(err)
	}

	// The answer comes at once, or later through req.done.
	await := func(what string, req *pubReq, res pubResult, ok bool) pubResult {
		t.Helper()
		if ok {
			return res
		}
		if req.done == nil {
			t.Fatalf("%s: no answer and nothing to wait on", what)
		}
		select {
		case res = <-req.done:
			return res
		case <-ctx.Done():
			t.Fatalf("%s: no answer", what)
			return res
		}
	}

	// Owned here: a new state replaces the dropped one.
	stale := a.owned.get(here)
	stale.mu.Lock()
	a.owned.drop(stale)
	stale.mu.Unlock()
	req := pubReq{topic: here, data: []byte("here"), origin: a.Name(), ack: AckOwner}
	res, ok := a.publishOwned(stale, &req)
	if res = await("owned here", &req, res, ok); res.err != nil || res.seq == 0 {
		t.Fatalf("publish past a gone state of an owned topic: seq %d, %v", res.seq, res.err)
	}
	if fresh := a.owned.get(here); fresh == nil || fresh == stale {
		t.Fatalf("no new owner state replaced the dropped one")
	}

	// Owned elsewhere: the request is forwarded and answered from there.
	ghost := &ownedTopic{name: there, state: stateReady}
	ghost.gone.Store(true)
	req = pubReq{topic: there, data: []byte("there"), origin: a.Name(), ack: AckOwner}
	res, ok = a.publishOwned(ghost, &req)
	if ok {
		t.Fatalf("publish past a gone state of %s's topic was not forwarded: %v", b.Name(), res.err)
	}
	if res = await("owned elsewhere", &req, res, ok); res.err != nil || res.seq != 1 {
		t.Fatalf("forwarded publish: seq %d, %v", res.seq, res.err)
	}
	waitFor(t, 5*time.Second, "the forwarded message", func() bool { return rt.len() == 1 })
	if got := rt.snapshot()[0]; string(got.Data) != "there" {
		t.Fatalf("%s got %q", there, got.Data)
	}
	if got := rh.snapshot(); len(got) == 0 || string(got[0].Data) != "before" {
		t.Fatalf("%s: %d messages before the drop", here, len(got))
	}
}
