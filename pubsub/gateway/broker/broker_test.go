package broker_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

type wsMessage = gateway.Message

func TestSubscribePublish(t *testing.T) {
	n := startNode(t, "solo", "")
	b := broker.New(n)
	ctx := ctxT(t)

	var r recorder
	unsub, err := b.Subscribe(ctx, "news", r.deliver, r.close)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer unsub()
	for i, want := range []uint64{1, 2, 3} {
		seq, err := b.Publish(ctx, "news", []byte{'a' + byte(i)})
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if seq != want {
			t.Fatalf("Publish returned seq %d, want %d", seq, want)
		}
	}
	info, err := n.TopicInfo(ctx, "news")
	if err != nil {
		t.Fatalf("TopicInfo: %v", err)
	}
	if info.Epoch == 0 || info.Seq != 3 {
		t.Fatalf("TopicInfo = %+v, want a non-zero epoch and seq 3", info)
	}
	waitFor(t, testTimeout, "three messages", func() bool { return len(r.messages()) == 3 })
	var want []string
	for i, d := range []string{"a", "b", "c"} {
		want = append(want, fmt.Sprintf("news %d %d %s", info.Epoch, i+1, d))
	}
	if got := r.messages(); !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	if c := r.closes(); len(c) != 0 {
		t.Fatalf("closed called with %v on an active subscription", c)
	}
}

func TestUnsubscribeStopsDelivery(t *testing.T) {
	n := startNode(t, "solo", "")
	b := broker.New(n)
	ctx := ctxT(t)

	var r recorder
	unsub, err := b.Subscribe(ctx, "news", r.deliver, r.close)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if _, err := b.Publish(ctx, "news", []byte("before")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	waitFor(t, testTimeout, "the first message", func() bool { return len(r.messages()) == 1 })
	if err := unsub(); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	if err := unsub(); err != nil {
		t.Fatalf("second unsubscribe: %v", err)
	}

	// A second subscriber tells when a later message has gone through.
	var marker recorder
	unsubMarker, err := b.Subscribe(ctx, "news", marker.deliver, marker.close)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer unsubMarker()
	if _, err := b.Publish(ctx, "news", []byte("after")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	waitFor(t, testTimeout, "the marker message", func() bool { return len(marker.messages()) == 1 })
	if got := r.messages(); len(got) != 1 {
		t.Fatalf("unsubscribed callback received %q", got)
	}
	// Closing the node ends the marker subscription, not the one that
	// unsubscribed.
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if c := r.closes(); len(c) != 0 {
		t.Fatalf("closed called after unsubscribe: %v", c)
	}
	if c := marker.closes(); len(c) != 1 || !errors.Is(c[0], pubsub.ErrClosed) {
		t.Fatalf("marker closed with %v, want one pubsub.ErrClosed", c)
	}
}

func TestClosedOnSlowConsumer(t *testing.T) {
	n := startNode(t, "solo", "")
	b := broker.New(n, pubsub.WithBuffer(2))
	ctx := ctxT(t)

	release := make(chan struct{})
	var once sync.Once
	var r recorder
	deliver := func(m wsMessage) {
		once.Do(func() { <-release }) // the gateway's queue is stuck
		r.deliver(m)
	}
	unsub, err := b.Subscribe(ctx, "busy", deliver, r.close)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer unsub()
	for range 6 {
		if _, err := b.Publish(ctx, "busy", []byte("x")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	close(release)
	waitFor(t, testTimeout, "the closed callback", func() bool { return len(r.closes()) > 0 })
	if c := r.closes(); len(c) != 1 || !errors.Is(c[0], pubsub.ErrSlowConsumer) {
		t.Fatalf("closed with %v, want one pubsub.ErrSlowConsumer", c)
	}
	if got := len(r.messages()); got >= 6 {
		t.Fatalf("a subscription with a buffer of 2 received all %d messages while stuck", got)
	}
}

func TestInvalidInput(t *testing.T) {
	n := startNode(t, "solo", "")
	b := broker.New(n)
	ctx := ctxT(t)

	var r recorder
	if _, err := b.Subscribe(ctx, "", r.deliver, r.close); !errors.Is(err, pubsub.ErrInvalidTopic) {
		t.Fatalf("Subscribe(\"\") = %v, want pubsub.ErrInvalidTopic", err)
	}
	if _, err := b.Publish(ctx, "bad\ntopic", []byte("x")); !errors.Is(err, pubsub.ErrInvalidTopic) {
		t.Fatalf("Publish to a topic with a newline = %v, want pubsub.ErrInvalidTopic", err)
	}
	if _, err := b.Publish(ctx, "t", make([]byte, pubsub.DefaultMaxPayload+1)); !errors.Is(err, pubsub.ErrPayloadTooLarge) {
		t.Fatalf("oversized Publish = %v, want pubsub.ErrPayloadTooLarge", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := b.Subscribe(ctx, "t", r.deliver, r.close); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Subscribe on a closed node = %v, want pubsub.ErrClosed", err)
	}
	if _, err := b.Publish(ctx, "t", nil); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Publish on a closed node = %v, want pubsub.ErrClosed", err)
	}
}

func TestAcrossNodes(t *testing.T) {
	owner := startNode(t, "topics", "", pubsub.RoleTopics)
	gw := startNode(t, "gateway", owner.GossipAddr(), pubsub.RoleGateway)
	waitMembers(t, owner, gw)
	ctx := ctxT(t)

	var r recorder
	unsub, err := broker.New(gw).Subscribe(ctx, "news", r.deliver, r.close)
	if err != nil {
		t.Fatalf("Subscribe on the gateway node: %v", err)
	}
	defer unsub()
	seq, err := broker.New(owner).Publish(ctx, "news", []byte("hello"))
	if err != nil || seq != 1 {
		t.Fatalf("Publish on the owner = %d, %v; want 1, nil", seq, err)
	}
	seq, err = broker.New(gw).Publish(ctx, "news", []byte("again"))
	if err != nil || seq != 2 {
		t.Fatalf("Publish on the gateway node = %d, %v; want 2, nil", seq, err)
	}
	waitFor(t, testTimeout, "two messages", func() bool { return len(r.messages()) == 2 })
	got := r.messages()
	if got[0][len(got[0])-5:] != "hello" || got[1][len(got[1])-5:] != "again" {
		t.Fatalf("delivered %q", got)
	}
	if o, err := gw.Owner("news"); err != nil || o.Name != "topics" {
		t.Fatalf("owner of news = %v, %v; want topics", o, err)
	}
}
