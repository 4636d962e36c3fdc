package pubsub

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// named prefixes the names of a cluster's nodes, so that two clusters
// started apart can merge.
func named(prefix string) func(*Config) {
	return func(c *Config) { c.NodeName = prefix + "-" + c.NodeName }
}

// checkOneOrder fails unless msgs follow one order: an epoch never gives
// way to an older one, sequence numbers increase within an epoch, and no
// message comes twice.
func checkOneOrder(t *testing.T, who string, msgs []Message) {
	t.Helper()
	seen := make(map[string]bool)
	for i, m := range msgs {
		if seen[string(m.Data)] {
			t.Fatalf("%s: %q delivered twice (at %d)", who, m.Data, i)
		}
		seen[string(m.Data)] = true
		if i == 0 {
			continue
		}
		p := msgs[i-1]
		switch {
		case m.Epoch < p.Epoch:
			t.Fatalf("%s: epoch %d (seq %d) after the newer epoch %d (seq %d), at %d", who, m.Epoch, m.Seq, p.Epoch, p.Seq, i)
		case m.Epoch == p.Epoch && m.Seq <= p.Seq:
			t.Fatalf("%s: seq %d after %d in epoch %d, at %d", who, m.Seq, p.Seq, m.Epoch, i)
		}
	}
}

// TestHealedPartitionKeepsOneOrder merges two clusters that each served a
// topic on their own, as the two sides of a partition do when it heals:
// one side holds the topic in an older epoch with more messages, the
// other started it afresh later, in a newer epoch. Both sides publish
// while they merge. Every subscriber sees one order: never a message of
// the older epoch after one of the newer. Once merged, the topic continues
// in the newer epoch and every subscriber receives the same messages at
// the same positions.
func TestHealedPartitionKeepsOneOrder(t *testing.T) {
	a := startCluster(t, 2, named("a"))
	b := startCluster(t, 2, named("b"))
	ctx := ctxT(t, 90*time.Second)
	const topic = "healed"
	all := append(append([]*Node(nil), a.nodes...), b.nodes...)
	recs := make([]*recorder, len(all))
	for i, n := range all {
		recs[i] = &recorder{}
		if _, err := n.SubscribeFunc(ctx, topic, recs[i].handle, WithBuffer(1<<16)); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(n *Node, data string) (PublishResult, error) {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return n.Publish(pctx, topic, []byte(data))
	}
	var older, newer uint64
	for i := range 30 {
		res, err := publish(a.nodes[0], fmt.Sprint("a-before-", i))
		if err != nil {
			t.Fatal(err)
		}
		older = res.Epoch
	}
	for i := range 10 {
		res, err := publish(b.nodes[0], fmt.Sprint("b-before-", i))
		if err != nil {
			t.Fatal(err)
		}
		newer = res.Epoch
	}
	if newer <= older {
		t.Fatalf("the topic started later on side b has epoch %d, not after side a's %d", newer, older)
	}

	// Both sides keep publishing through the merge.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	published := map[string]int{}
	for _, side := range []struct {
		name string
		n    *Node
	}{{"a", a.nodes[1]}, {"b", b.nodes[1]}} {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := publish(side.n, fmt.Sprintf("%s-during-%d", side.name, k)); err == nil {
					mu.Lock()
					published[side.name]++
					mu.Unlock()
				}
				time.Sleep(time.Millisecond)
			}
		})
	}

	joined := time.Now()
	if _, err := a.nodes[0].ring.Join(ctx, b.nodes[0].GossipAddr()); err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("joining the two sides: %v", err)
	}
	waitFor(t, 20*time.Second, "the two sides to merge", func() bool {
		for _, n := range all {
			if n.view().Len() != len(all) {
				return false
			}
		}
		return true
	})
	waitFor(t, 20*time.Second, "every node to see one owner in the newer epoch", func() bool {
		owner := ""
		for _, n := range all {
			ictx, cancel := context.WithTimeout(ctx, time.Second)
			info, err := n.TopicInfo(ictx, topic)
			cancel()
			if err != nil || info.Epoch != newer || owner != "" && info.Owner != owner {
				return false
			}
			owner = info.Owner
		}
		return true
	})
	settled := time.Since(joined)
	mu.Lock()
	base := published["a"] + published["b"]
	mu.Unlock()
	waitFor(t, 20*time.Second, "publishes after the merge", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return published["a"]+published["b"] >= base+40
	})
	close(stop)
	wg.Wait()

	const finals = 10
	for i := range finals {
		if _, err := publish(all[i%len(all)], fmt.Sprint("final-", i)); err != nil {
			t.Fatal(err)
		}
	}
	var first []Message
	for i, r := range recs {
		who := all[i].Name()
		waitFor(t, 20*time.Second, who+" to receive the final messages", func() bool {
			n := 0
			for _, m := range r.snapshot() {
				if strings.HasPrefix(string(m.Data), "final-") {
					n++
				}
			}
			return n == finals
		})
		msgs := r.snapshot()
		checkOneOrder(t, who, msgs)
		var got []Message
		for _, m := range msgs {
			if strings.HasPrefix(string(m.Data), "final-") {
				got = append(got, m)
			}
		}
		if got[0].Epoch != newer {
			t.Fatalf("%s: the final messages are in epoch %d, want the newer %d", who, got[0].Epoch, newer)
		}
		if first == nil {
			first = got
			continue
		}
		for k := range got {
			if got[k].Seq != first[k].Seq || string(got[k].Data) != string(first[k].Data) {
				t.Fatalf("%s: final message %d is %q at seq %d, %s has %q at seq %d",
					who, k, got[k].Data, got[k].Seq, all[0].Name(), first[k].Data, first[k].Seq)
			}
		}
	}
	var stale uint64
	for _, n := range all {
		stale += n.Stats().Stale
	}
	t.Logf("one owner in the newer epoch %v after the join; published during the merge: %v; deliveries refused as stale: %d",
		settled.Round(time.Millisecond), published, stale)
}
