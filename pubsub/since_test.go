package pubsub

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestSinceBeyondTheHead subscribes from a position the topic has not
// reached, on the owner and on another node, with and without the node
// already following the topic: Subscribe fails with a *HistoryGoneError
// naming the head, and a subscription from there gets every new message.
// A Since at the head, or just behind it, still resumes.
func TestSinceBeyondTheHead(t *testing.T) {
	c := startCluster(t, 2, nil)
	ctx := ctxT(t, 30*time.Second)
	owner, remote := c.nodes[0], c.nodes[1]
	topic := topicOwnedBy(t, remote, owner.Name(), "ahead")
	var epoch uint64
	for i := 1; i <= 5; i++ {
		res, err := owner.Publish(ctx, topic, []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		epoch = res.Epoch
	}
	// A plain subscription keeps the topic followed on the remote node.
	follow, err := remote.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Unsubscribe()
	next := uint64(6)
	for _, n := range []*Node{owner, remote} {
		for _, from := range []Position{{Epoch: epoch, Seq: 99}, {Epoch: 0, Seq: 99}, {Epoch: epoch, Seq: next}} {
			_, err := n.Subscribe(ctx, topic, Since(from.Epoch, from.Seq))
			gone, ok := errors.AsType[*HistoryGoneError](err)
			if !ok || !errors.Is(err, ErrHistoryGone) {
				t.Fatalf("%s: Since(%+v) = %v, want a *HistoryGoneError", n.Name(), from, err)
			}
			if head := (Position{Epoch: epoch, Seq: next - 1}); gone.Current != head || gone.Requested != from {
				t.Fatalf("%s: Since(%+v) = %+v, want the head %+v", n.Name(), from, gone, head)
			}
		}
		// Starting again from the head the error names, the subscription
		// receives what comes next.
		sub, err := n.Subscribe(ctx, topic, Since(epoch, next-1))
		if err != nil {
			t.Fatalf("%s: Since at the head: %v", n.Name(), err)
		}
		for i := range 3 {
			if _, err := owner.Publish(ctx, topic, []byte(strconv.Itoa(int(next)+i))); err != nil {
				t.Fatal(err)
			}
		}
		want := []uint64{next, next + 1, next + 2}
		if got := seqs(collect(t, ctx, sub, 3)); !slices.Equal(got, want) {
			t.Fatalf("%s: after the head got %v, want %v", n.Name(), got, want)
		}
		sub.Unsubscribe()
		next += 3
	}
	if s := remote.Stats(); s.Subscriptions != 1 {
		t.Fatalf("%d subscriptions on %s, want the one that follows the topic", s.Subscriptions, remote.Name())
	}
}
