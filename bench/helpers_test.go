package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// payloadSize is the size of every published message.
const payloadSize = 128

// Deadlines that bound every wait of a benchmark.
const (
	convergeTimeout = 20 * time.Second // a cluster agreeing on its members
	setupTimeout    = 60 * time.Second // subscribing everything a workload needs
	drainTimeout    = 30 * time.Second // the last deliveries after the last publish
	stallTimeout    = 10 * time.Second // a publisher waiting for its window to open
)

// waitFor polls cond until it holds or timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// envInt reads a positive integer from the environment, or returns def.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// newPayload returns a payload of payloadSize bytes.
func newPayload() []byte { return make([]byte, payloadSize) }

// benchLogger is nil (silent) unless RINGCAST_BENCH_LOG is set.
var benchLogger = func() *slog.Logger {
	if os.Getenv("RINGCAST_BENCH_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}()

// benchGossip is pubsub.FastGossip with a failure detector that tolerates
// saturated CPUs: FastGossip's 50 ms probe timeout declares busy nodes dead
// while a benchmark keeps both cores at 100% (measured: failovers and
// lost messages in W3), and a benchmark measures throughput, not failure
// detection. Joins and gossip keep FastGossip's speed.
func benchGossip() pubsub.GossipConfig {
	g := pubsub.FastGossip()
	g.ProbeInterval = time.Second
	g.ProbeTimeout = 500 * time.Millisecond
	g.SuspicionMult = 5
	return g
}

// publishRetry publishes with AckNone and, while the link toward the
// owner is full (pubsub.ErrQueueFull), yields and tries again for up to
// stallTimeout: the publisher respects back-pressure instead of failing.
func publishRetry(n *pubsub.Node, topic string, data []byte) error {
	var deadline time.Time
	for {
		_, err := n.Publish(context.Background(), topic, data, pubsub.WithAck(pubsub.AckNone))
		if err == nil || !errors.Is(err, pubsub.ErrQueueFull) {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(stallTimeout)
		} else if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// startCluster starts n nodes named n0, n1, ... joined to n0 with
// benchGossip, and waits until each of them sees all of them. tweak, if not
// nil, adjusts each node's Config. The nodes are closed when tb ends.
func startCluster(tb testing.TB, n int, tweak func(i int, c *pubsub.Config)) []*pubsub.Node {
	tb.Helper()
	// Collect what the previous benchmark left (W3's histories are
	// hundreds of MB) and return it to the OS now, so that the runtime's
	// background sweeping and scavenging do not run during this one.
	debug.FreeOSMemory()
	nodes := make([]*pubsub.Node, 0, n)
	tb.Cleanup(func() {
		var wg sync.WaitGroup
		for _, nd := range nodes {
			wg.Go(func() { _ = nd.Close() })
		}
		wg.Wait()
	})
	for i := range n {
		cfg := pubsub.Config{NodeName: "n" + strconv.Itoa(i), Gossip: benchGossip(), Logger: benchLogger}
		if i > 0 {
			cfg.Seeds = []string{nodes[0].GossipAddr()}
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		nd, err := pubsub.New(cfg)
		if err != nil {
			tb.Fatalf("start node %d: %v", i, err)
		}
		nodes = append(nodes, nd)
	}
	waitFor(tb, convergeTimeout, "the cluster to converge", func() bool {
		for _, nd := range nodes {
			if len(nd.Members()) != n {
				return false
			}
		}
		return true
	})
	return nodes
}

// topicOwnedBy returns a topic name with prefix that every node agrees is
// owned by nodes[owner].
func topicOwnedBy(tb testing.TB, nodes []*pubsub.Node, owner int, prefix string) string {
	tb.Helper()
	want := nodes[owner].Name()
	for i := range 100000 {
		topic := prefix + strconv.Itoa(i)
		agree := true
		for _, nd := range nodes {
			m, err := nd.Owner(topic)
			if err != nil || m.Name != want {
				agree = false
				break
			}
		}
		if agree {
			return topic
		}
	}
	tb.Fatalf("no topic with prefix %q owned by %s", prefix, want)
	return ""
}

// interNodeFrames sums, over nodes, the frames of the given types sent to
// other nodes.
func interNodeFrames(nodes []*pubsub.Node, types ...pubsub.Frame) uint64 {
	var n uint64
	for _, nd := range nodes {
		for _, ps := range nd.Stats().Links.Peers {
			for _, t := range types {
				n += ps.Sent[t]
			}
		}
	}
	return n
}

// messageFrames are the frames that carry a published message between
// nodes.
var messageFrames = []pubsub.Frame{pubsub.FramePublish, pubsub.FrameDeliver, pubsub.FrameReplicaDeliver, pubsub.FrameReplicate}

// deliverFrames are the frames that deliver a message to a node with
// subscribers: a plain delivery, or one that is also a replica's copy.
var deliverFrames = []pubsub.Frame{pubsub.FrameDeliver, pubsub.FrameReplicaDeliver}

// subscribeAll runs subscribe for i in [0, count) from a few goroutines and
// fails tb on the first error.
func subscribeAll(tb testing.TB, count int, subscribe func(ctx context.Context, i int) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range min(count, 32) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				if err := subscribe(ctx, i); err != nil {
					once.Do(func() { first = fmt.Errorf("subscriber %d: %w", i, err) })
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
}

// describe summarizes the counters that explain missing deliveries.
func describe(nodes []*pubsub.Node) string {
	var out string
	for _, nd := range nodes {
		st := nd.Stats()
		var dropped uint64
		for _, ps := range st.Links.Peers {
			dropped += ps.Dropped
		}
		out += fmt.Sprintf("\n%s: members=%d published=%d sequenced=%d forwarded=%d delivered=%d unrouted=%d duplicates=%d gaps=%d lost=%d sendErrors=%d slow=%d dropped=%d linkDropped=%d repairs=%d handoffs=%d failovers=%d owned=%d local=%d subs=%d",
			st.Node, len(nd.Members()), st.Published, st.Sequenced, st.Forwarded, st.Delivered, st.Unrouted, st.Duplicates, st.Gaps, st.Lost,
			st.SendErrors, st.SlowConsumers, st.Dropped, dropped, st.Repairs, st.Handoffs, st.Failovers, st.OwnedTopics, st.LocalTopics, st.Subscriptions)
	}
	return out
}
