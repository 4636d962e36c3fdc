package pubsub

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestFailoverReportsNoGapAndNoFakePosition stops a topic's owner without
// a hand-off. From the moment it stops, TopicInfo on every survivor either
// fails or names the topic's real position (never epoch 0, seq 0 while the
// new owner takes the topic over), and the failover's jump in sequence
// numbers is not counted as a gap: nothing was lost.
func TestFailoverReportsNoGapAndNoFakePosition(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) { cfg.GapTimeout = 200 * time.Millisecond })
	ctx := ctxT(t, 60*time.Second)
	victim := c.nodes[2]
	survivors := c.nodes[:2]
	topic := topicOwnedBy(t, c.nodes[0], victim.Name(), "failinfo")
	// quiet has no subscriber: nothing but TopicInfo makes its new owner
	// take it over.
	quiet := topicOwnedBy(t, c.nodes[0], victim.Name(), "quiet")
	var recs []*recorder
	for _, n := range survivors {
		r := &recorder{}
		if _, err := n.SubscribeFunc(ctx, topic, r.handle); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	const before = 10
	for i := range before {
		if _, err := c.nodes[0].Publish(ctx, topic, []byte(fmt.Sprint(i)), WithAck(AckReplicated)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range before {
		if _, err := c.nodes[1].Publish(ctx, quiet, []byte(fmt.Sprint(i)), WithAck(AckReplicated)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range recs {
		waitFor(t, 10*time.Second, "messages before the failure", func() bool { return r.len() == before })
	}
	quietStart, err := c.nodes[0].TopicInfo(ctx, quiet)
	if err != nil || quietStart.Seq != before {
		t.Fatalf("TopicInfo of %s before the failure = %+v, %v", quiet, quietStart, err)
	}
	start, err := c.nodes[0].TopicInfo(ctx, topic)
	if err != nil || start.Seq != before || start.Owner != victim.Name() {
		t.Fatalf("TopicInfo before the failure = %+v, %v", start, err)
	}

	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	answered := map[string]bool{}
	waitFor(t, 30*time.Second, "every survivor to report the new owners", func() bool {
		for _, n := range survivors {
			for _, want := range []TopicInfo{start, quietStart} {
				ictx, cancel := context.WithTimeout(ctx, time.Second)
				info, err := n.TopicInfo(ictx, want.Topic)
				cancel()
				if err != nil || info.Owner == victim.Name() {
					continue
				}
				if info.Epoch != want.Epoch || info.Seq < before {
					t.Fatalf("TopicInfo from %s after the failure = %+v, want epoch %d and seq >= %d", n.Name(), info, want.Epoch, before)
				}
				answered[n.Name()+" "+want.Topic] = true
			}
		}
		return len(answered) == 2*len(survivors)
	})

	const after = 5
	for i := range after {
		if _, err := c.nodes[0].Publish(ctx, topic, []byte(fmt.Sprint("after-", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		waitFor(t, 10*time.Second, "messages after the failure", func() bool { return r.len() == before+after })
		checkOrdered(t, fmt.Sprintf("node %d", i), r.snapshot())
	}
	for _, n := range survivors {
		if s := n.Stats(); s.Gaps != 0 || s.Lost != 0 {
			t.Fatalf("%s counts %d gaps and %d lost messages after a failover that lost nothing", n.Name(), s.Gaps, s.Lost)
		}
	}
}
