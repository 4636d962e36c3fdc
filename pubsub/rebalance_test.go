package pubsub

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestJoinAndLeaveUnderTraffic adds a node and gracefully removes another
// while messages flow: subscriptions keep working without user action,
// every acknowledged message arrives once and in order, and sequences
// continue across the hand-offs (same epoch, never backwards).
func TestJoinAndLeaveUnderTraffic(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t, 90*time.Second)
	topics := make([]string, 12)
	for i := range topics {
		topics[i] = fmt.Sprintf("traffic-%d", i)
	}
	stay := c.nodes[:2]
	leaver := c.nodes[2]
	recs := make(map[string][]*recorder)
	for _, topic := range topics {
		for _, n := range c.nodes {
			r := &recorder{}
			if _, err := n.SubscribeFunc(ctx, topic, r.handle, WithBuffer(10000)); err != nil {
				t.Fatal(err)
			}
			if n != leaver {
				recs[topic] = append(recs[topic], r)
			}
		}
	}

	const total = 1800
	var published atomic.Int64
	var mu sync.Mutex
	acked := make(map[string][]string) // topic -> payloads acknowledged
	var failures atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; i < total && time.Now().Before(deadline); i++ {
			topic := topics[i%len(topics)]
			payload := fmt.Sprintf("m%d", i)
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := stay[i%2].Publish(pctx, topic, []byte(payload))
			cancel()
			if err != nil {
				failures.Add(1)
				t.Logf("publish %s: %v", payload, err)
				continue
			}
			mu.Lock()
			acked[topic] = append(acked[topic], payload)
			mu.Unlock()
			published.Add(1)
			time.Sleep(time.Millisecond) // pace the load so the changes land mid-stream
		}
	}()

	waitFor(t, 30*time.Second, "a third of the traffic", func() bool { return published.Load() >= total/3 })
	joined := c.add(nil)
	c.waitConverged()
	t.Logf("%s joined after %d publishes", joined.Name(), published.Load())

	waitFor(t, 30*time.Second, "two thirds of the traffic", func() bool { return published.Load() >= 2*total/3 })
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := leaver.Shutdown(sctx); err != nil {
		t.Errorf("graceful shutdown: %v", err)
	}
	cancel()
	c.waitConverged()
	t.Logf("%s left after %d publishes", leaver.Name(), published.Load())
	<-done

	if f := failures.Load(); f > 0 {
		t.Errorf("%d publishes failed during the membership changes", f)
	}
	moved := false
	for _, n := range c.live() {
		if n.Stats().Handoffs > 0 {
			moved = true
		}
	}
	if leaver.Stats().Handoffs == 0 || !moved {
		t.Fatalf("no topic changed owner: the test did not exercise hand-off")
	}
	for _, topic := range topics {
		mu.Lock()
		want := append([]string(nil), acked[topic]...)
		mu.Unlock()
		for i, r := range recs[topic] {
			who := fmt.Sprintf("%s on %s", topic, stay[i].Name())
			waitFor(t, 20*time.Second, who+" to receive every acknowledged message", func() bool {
				got := make(map[string]bool)
				for _, m := range r.snapshot() {
					got[string(m.Data)] = true
				}
				for _, p := range want {
					if !got[p] {
						return false
					}
				}
				return true
			})
			msgs := r.snapshot()
			checkOrdered(t, who, msgs)
			if len(msgs) != len(want) {
				t.Fatalf("%s: %d messages, %d acknowledged", who, len(msgs), len(want))
			}
		}
	}
}

// TestOwnerFailure stops a topic's owner without a leave: after failure
// detection the topic accepts publishes again and they reach the surviving
// subscribers.
func TestOwnerFailure(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t, 60*time.Second)
	victim := c.nodes[2]
	topic := topicOwnedBy(t, c.nodes[0], victim.Name(), "failover")
	var recs []*recorder
	for _, n := range c.nodes[:2] {
		r := &recorder{}
		if _, err := n.SubscribeFunc(ctx, topic, r.handle); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	for i := range 10 {
		if _, err := c.nodes[0].Publish(ctx, topic, []byte(fmt.Sprintf("before-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range recs {
		waitFor(t, 10*time.Second, "messages before the failure", func() bool { return r.len() == 10 })
	}

	killed := time.Now()
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	var recovered time.Duration
	waitFor(t, 20*time.Second, "publishes to succeed again", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		_, err := c.nodes[1].Publish(pctx, topic, []byte("probe"))
		if err == nil {
			recovered = time.Since(killed)
		}
		return err == nil
	})
	t.Logf("publishes succeeded again %v after the owner stopped", recovered.Round(time.Millisecond))
	if o, _ := c.nodes[0].Owner(topic); o.Name == victim.Name() {
		t.Fatalf("the failed node still owns %s", topic)
	}

	const after = 20
	for i := range after {
		if _, err := c.nodes[0].Publish(ctx, topic, []byte(fmt.Sprintf("after-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		waitFor(t, 10*time.Second, "messages after the failure", func() bool {
			n := 0
			for _, m := range r.snapshot() {
				if len(m.Data) > 6 && string(m.Data[:6]) == "after-" {
					n++
				}
			}
			return n == after
		})
		msgs := r.snapshot()
		var tail []Message
		for _, m := range msgs {
			if string(m.Data) != "probe" && string(m.Data[:6]) == "after-" {
				tail = append(tail, m)
			}
		}
		checkOrdered(t, fmt.Sprintf("node %d after failover", i), tail)
		// The topic was rebuilt from its replica, so its epoch did not
		// change. With three nodes the replica is one of the two subscriber
		// nodes: every copy it held came inside a Deliver frame.
		if first := msgs[0]; len(tail) > 0 && tail[0].Epoch != first.Epoch {
			t.Fatalf("node %d: epoch %d after the failover, %d before: the replica's copy was not used", i, tail[0].Epoch, first.Epoch)
		}
	}
	var failovers uint64
	for _, n := range c.nodes[:2] {
		failovers += n.Stats().Failovers
	}
	if failovers != 1 {
		t.Fatalf("%d topics rebuilt from replicas, want 1", failovers)
	}
}
