package pubsub

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// An Unsubscribe racing with the next Subscribe of the same topic must not
// leave the new subscription deaf (the unsubscribe overtaking the
// subscribe at the owner).
func TestUnsubscribeRacingSubscribe(t *testing.T) {
	n, err := New(testConfig("solo"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := ctxT(t, 60*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
		s1, err := n.Subscribe(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = s1.Unsubscribe(); close(done) }()
		s2, err := n.Subscribe(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		<-done
		if _, err := n.Publish(ctx, "t", []byte("x")); err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = s2.Next(c)
		cancel()
		if err != nil {
			t.Fatalf("iteration %d: a subscription that Subscribe returned received nothing: %v", i, err)
		}
		_ = s2.Unsubscribe()
	}
}

// Close finishes SubscribeFunc subscriptions that still had messages
// buffered: OnClose(ErrClosed) is called, the handler is not called once
// Close has returned, and what was buffered is dropped rather than
// drained.
func TestCloseFinishesBusySubscriptions(t *testing.T) {
	n, err := New(testConfig("solo"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 20*time.Second)
	var closed, calls, late atomic.Int32
	var done atomic.Bool
	_, err = n.SubscribeFunc(ctx, "t", func(Message) {
		calls.Add(1)
		if done.Load() {
			late.Add(1)
		}
		time.Sleep(100 * time.Microsecond)
	}, WithBuffer(100000), OnClose(func(err error) {
		if err == ErrClosed {
			closed.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	const published = 5000
	for range published {
		if _, err := n.Publish(ctx, "t", []byte("x"), WithAck(AckNone)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	done.Store(true)
	if closed.Load() != 1 {
		t.Fatalf("OnClose(ErrClosed) called %d times, want 1", closed.Load())
	}
	// The handler is sequential and sleeps 100 µs a call: 5,000 calls take
	// half a second, far longer than publishing them.
	if c := calls.Load(); c >= published {
		t.Fatalf("handler called %d times: Close drained the buffer instead of dropping it", c)
	}
	if late.Load() != 0 {
		t.Fatalf("handler called %d times after Close returned", late.Load())
	}
}

// No handler call starts after Unsubscribe returns.
func TestNoHandlerCallAfterUnsubscribe(t *testing.T) {
	n, err := New(testConfig("solo"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := ctxT(t, 20*time.Second)
	var after atomic.Bool
	var late atomic.Int32
	s, err := n.SubscribeFunc(ctx, "t", func(Message) {
		if after.Load() {
			late.Add(1)
		}
		time.Sleep(200 * time.Microsecond)
	}, WithBuffer(100000))
	if err != nil {
		t.Fatal(err)
	}
	for range 2000 {
		if _, err := n.Publish(ctx, "t", []byte("x"), WithAck(AckNone)); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Unsubscribe()
	after.Store(true)
	waitFor(t, 5*time.Second, "the subscription to be finished", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.finished
	})
	if late.Load() > 1 { // the call under way when Unsubscribe returned
		t.Fatalf("handler called %d times after Unsubscribe returned", late.Load())
	}
}

// A publish that comes back to its origin through nodes whose views
// disagree is acknowledged to the waiting caller.
func TestBouncedPublishIsAcknowledged(t *testing.T) {
	c := startCluster(t, 2, nil)
	ctx := ctxT(t, 10*time.Second)
	a, b := c.nodes[0], c.nodes[1]
	topic := topicOwnedBy(t, a, a.Name(), "bounce")
	if _, err := a.Publish(ctx, topic, []byte("warm")); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	// As if a had sent it to b, which forwarded it back.
	id := a.pending.add(b.Name(), 5*time.Second, func(_ string, msg wire.Message, err error) {
		if ack, ok := msg.(*wire.PublishAck); ok {
			got <- codeError(ack.Code, ack.Err)
			return
		}
		got <- err
	})
	a.onPublish(b.Name(), &wire.Publish{ReqID: id, Origin: a.Name(), Topic: topic, Data: []byte("x"), Hops: 2})
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("bounced publish: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("bounced publish not acknowledged")
	}
}

// The last subscriber leaving tells the current owner even when the owner
// this node recorded is stale, so the owner stops sending to it.
func TestUnsubscribeReachesCurrentOwner(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t, 20*time.Second)
	owner, subNode := c.nodes[0], c.nodes[2]
	topic := topicOwnedBy(t, subNode, owner.Name(), "stale")
	sub, err := subNode.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	lt := subNode.local.get(topic)
	lt.mu.Lock()
	lt.owner = "gone-node" // as if the owner it registered with had failed since
	lt.mu.Unlock()
	_ = sub.Unsubscribe()
	waitFor(t, 5*time.Second, "the owner to forget the node", func() bool {
		ot := owner.owned.get(topic)
		ot.mu.Lock()
		defer ot.mu.Unlock()
		return len(ot.nodes) == 0
	})
}
