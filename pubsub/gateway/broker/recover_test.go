package broker_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

// publishN publishes n messages "m1".."mn" to topic and returns its epoch.
func publishN(t *testing.T, b gateway.Broker, n *pubsub.Node, topic string, count int) uint64 {
	t.Helper()
	ctx := ctxT(t)
	for i := 1; i <= count; i++ {
		if _, err := b.Publish(ctx, topic, []byte(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	info, err := n.TopicInfo(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return info.Epoch
}

func TestSubscribeSince(t *testing.T) {
	n := startNode(t, "solo", "")
	b := broker.New(n)
	r, ok := b.(gateway.Recoverer)
	if !ok {
		t.Fatal("the Broker does not implement gateway.Recoverer")
	}
	epoch := publishN(t, b, n, "news", 5)
	ctx := ctxT(t)

	for _, from := range []gateway.Position{{Epoch: epoch, Seq: 2}, {Epoch: 0, Seq: 2}} {
		var rec recorder
		got, err := r.SubscribeSince(ctx, "news", from, rec.deliver, rec.close)
		if err != nil {
			t.Fatalf("SubscribeSince(%+v): %v", from, err)
		}
		if got.Recovered != 3 || got.Start != (gateway.Position{Epoch: epoch, Seq: 2}) {
			t.Fatalf("SubscribeSince(%+v) recovered %d from %+v, want 3 from {%d 2}", from, got.Recovered, got.Start, epoch)
		}
		waitFor(t, testTimeout, "the recovered messages", func() bool { return len(rec.messages()) == 3 })
		if err := got.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := 3; i <= 5; i++ {
			want = append(want, fmt.Sprintf("news %d %d m%d", epoch, i, i))
		}
		if msgs := rec.messages(); !slices.Equal(msgs, want) {
			t.Fatalf("recovered %q, want %q", msgs, want)
		}
	}

	// Recovered messages come before live ones, without gap or duplicate.
	var rec recorder
	got, err := r.SubscribeSince(ctx, "news", gateway.Position{Epoch: epoch, Seq: 4}, rec.deliver, rec.close)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Unsubscribe()
	if _, err := b.Publish(ctx, "news", []byte("m6")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, testTimeout, "messages 5 and 6", func() bool { return len(rec.messages()) == 2 })
	want := []string{fmt.Sprintf("news %d 5 m5", epoch), fmt.Sprintf("news %d 6 m6", epoch)}
	if msgs := rec.messages(); !slices.Equal(msgs, want) {
		t.Fatalf("delivered %q, want %q", msgs, want)
	}
}

func TestSubscribeSinceHistoryGone(t *testing.T) {
	n, err := pubsub.New(pubsub.Config{NodeName: "short", HistorySize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	b := broker.New(n)
	r := b.(gateway.Recoverer)
	epoch := publishN(t, b, n, "news", 5)
	ctx := ctxT(t)

	for _, from := range []gateway.Position{{Epoch: epoch, Seq: 1}, {Epoch: epoch + 1, Seq: 4}} {
		var rec recorder
		_, err := r.SubscribeSince(ctx, "news", from, rec.deliver, rec.close)
		if !errors.Is(err, gateway.ErrHistoryGone) || !errors.Is(err, pubsub.ErrHistoryGone) {
			t.Fatalf("SubscribeSince(%+v) = %v, want gateway.ErrHistoryGone and pubsub.ErrHistoryGone", from, err)
		}
		gone, ok := errors.AsType[*gateway.HistoryGoneError](err)
		if !ok || gone.Current != (gateway.Position{Epoch: epoch, Seq: 5}) {
			t.Fatalf("SubscribeSince(%+v) = %v, want a *gateway.HistoryGoneError at {%d 5}", from, err, epoch)
		}
	}
	if s := n.Stats(); s.Subscriptions != 0 {
		t.Fatalf("%d subscriptions left after failed recoveries", s.Subscriptions)
	}
}

// A client that reconnects resumes through the gateway from where it left.
func TestGatewayResume(t *testing.T) {
	n := startNode(t, "solo", "")
	_, url := serveGateway(t, n)
	b := broker.New(n)
	ctx := ctxT(t)
	for i := 1; i <= 3; i++ {
		data := gateway.EncodeEnvelope("event", []byte(fmt.Sprintf(`{"n":%d}`, i)), false)
		if _, err := b.Publish(ctx, "topics:matrix", data); err != nil {
			t.Fatal(err)
		}
	}
	info, err := n.TopicInfo(ctx, "topics:matrix")
	if err != nil {
		t.Fatal(err)
	}
	e := strconv.FormatUint(info.Epoch, 10)

	c := dial(t, url)
	c.send(`["1","1","topics:matrix","phx_join",{"since":1,"epoch":"` + e + `"}]`)
	c.expect(`["1","1","topics:matrix","phx_reply",{"status":"ok","response":{"recovered":2,"epoch":"` + e + `","seq":1}}]`)
	for i := 2; i <= 3; i++ {
		c.expect(fmt.Sprintf(`["1",null,"topics:matrix","event",{"n":%d},{"seq":%d,"epoch":"%s"}]`, i, i, e))
	}
	// Resuming from further back than the history reaches starts over live.
	c2 := dial(t, url)
	c2.send(`["1","1","topics:matrix","phx_join",{"since":1,"epoch":"` + strconv.FormatUint(info.Epoch+1, 10) + `"}]`)
	c2.expect(`["1","1","topics:matrix","phx_reply",{"status":"ok","response":{"recovered":false,"reset":true,"epoch":"` + e + `","seq":3}}]`)
	data := gateway.EncodeEnvelope("event", []byte(`{"n":4}`), false)
	if _, err := b.Publish(ctx, "topics:matrix", data); err != nil {
		t.Fatal(err)
	}
	want := `["1",null,"topics:matrix","event",{"n":4},{"seq":4,"epoch":"` + e + `"}]`
	c.expect(want)
	c2.expect(want)
}
