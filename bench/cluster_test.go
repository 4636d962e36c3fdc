package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// W2 and W3 run on three in-process nodes. The publisher is always on n0
// and publishes with AckNone: it never waits for the owner, only for its
// window of outstanding deliveries (see flow).

const (
	// clusterSubsPerNode is the number of W2 subscribers on each of n1 and n2.
	clusterSubsPerNode = 150
	// pacedRate is W2's fixed publish rate for latency, in messages per second.
	pacedRate = 2000
	// manyTopics is the number of W3 topics.
	manyTopics = 10000
	// manyTopicsWindow is W3's window, in deliveries (one per message). A
	// message in flight may hold two frames in one link's queue (a Deliver
	// and a Replicate from an owner on the publisher's node), so the window
	// stays within half of transport.DefaultQueueFrames.
	manyTopicsWindow = 4096
)

// linkModes are W2's two kinds of peer links: plain (no secret, the nodes
// on loopback in protected mode) and sealed (a shared secret: every frame
// encrypted and authenticated with AES-256-GCM).
var linkModes = []struct {
	name   string
	secret []byte
}{
	{"links=plain", nil},
	{"links=sealed", []byte("ringcast bench shared secret 0123456789")},
}

// clusterFanout starts W2: three nodes sharing secret (nil: none) and a
// topic owned by nodes[owner] with clusterSubsPerNode handlers on each of
// n1 and n2, each recording the latency of one delivery in every.
func clusterFanout(b *testing.B, owner int, secret []byte, every uint64, f *fanoutFlow, h *Histogram) ([]*pubsub.Node, string) {
	nodes := startCluster(b, 3, func(_ int, c *pubsub.Config) { c.Secret = secret })
	topic := topicOwnedBy(b, nodes, owner, "bench:w2:")
	for _, nd := range nodes[1:] {
		subscribeLocal(b, nd, topic, clusterSubsPerNode, false, every, f, h)
	}
	return nodes, topic
}

// BenchmarkClusterFanout is W2 at maximum throughput: one op is one
// publish from n0, delivered to 300 subscribers on n1 and n2. The topic's
// owner is either the publisher's node or a subscriber node (then every
// publish first crosses a link to it). Latency is sampled under full load.
// Each runs with plain and with sealed links (see linkModes).
func BenchmarkClusterFanout(b *testing.B) {
	for _, c := range []struct {
		name  string
		owner int
	}{{"owner=publisher", 0}, {"owner=subscriber", 1}} {
		for _, m := range linkModes {
			b.Run(c.name+"/"+m.name, func(b *testing.B) { clusterFanoutRun(b, c.owner, m.secret) })
		}
	}
}

// clusterFanoutRun is one case of BenchmarkClusterFanout.
func clusterFanoutRun(b *testing.B, owner int, secret []byte) {
	const subs = 2 * clusterSubsPerNode
	f := newFanoutFlow(perSubWindow)
	var h Histogram
	nodes, topic := clusterFanout(b, owner, secret, sampleEvery, f, &h)
	pub := nodes[0]
	payload := newPayload()
	run := func(count int) time.Duration {
		begin := time.Now()
		for i := range int64(count) {
			if err := f.acquire(i); err != nil {
				b.Fatal(err, describe(nodes))
			}
			Stamp(payload)
			if err := publishRetry(pub, topic, payload); err != nil {
				b.Fatal(err, describe(nodes))
			}
		}
		if err := f.drain(int64(count), drainTimeout); err != nil {
			b.Fatal(err, describe(nodes))
		}
		return time.Since(begin)
	}
	run(100)
	f.reset()
	h.Reset()
	frames := interNodeFrames(nodes, messageFrames...)

	b.ReportAllocs()
	b.ResetTimer()
	elapsed := run(b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)*subs/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	h.report(b)
	reportFrames(b, nodes, frames)
}

// reportFrames waits for the link counters to account for every message
// frame of the run (they count a frame once its write succeeded) and
// reports frames/publish.
func reportFrames(b *testing.B, nodes []*pubsub.Node, before uint64) {
	last := settledFrames(b, nodes, before)
	b.ReportMetric(float64(last-before)/float64(b.N), "frames/publish")
}

// BenchmarkClusterLatency is W2 at a fixed 2,000 messages per second:
// p50/p99 from the publisher's clock before Publish to the subscriber's
// clock on receipt, over every delivery. One op is one publish. It runs
// with plain and with sealed links (see linkModes).
func BenchmarkClusterLatency(b *testing.B) {
	for _, m := range linkModes {
		b.Run(m.name, func(b *testing.B) { clusterLatencyRun(b, m.secret) })
	}
}

// clusterLatencyRun is one case of BenchmarkClusterLatency.
func clusterLatencyRun(b *testing.B, secret []byte) {
	const subs = 2 * clusterSubsPerNode
	f := newFanoutFlow(perSubWindow)
	var h Histogram
	nodes, topic := clusterFanout(b, 1, secret, 1, f, &h)
	pub := nodes[0]
	payload := newPayload()
	interval := time.Second / pacedRate
	run := func(count int) time.Duration {
		begin := time.Now()
		for i := range count {
			if d := time.Until(begin.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			Stamp(payload)
			if err := publishRetry(pub, topic, payload); err != nil {
				b.Fatal(err, describe(nodes))
			}
		}
		if err := f.drain(int64(count), drainTimeout); err != nil {
			b.Fatal(err)
		}
		return time.Since(begin)
	}
	run(pacedRate / 10)
	f.reset()
	h.Reset()

	b.ReportAllocs()
	b.ResetTimer()
	elapsed := run(b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)*subs/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	h.report(b)
}

// BenchmarkManyTopics is W3: 10,000 topics, topic i with one subscriber on
// node i%3, the publisher on n0 going round-robin over the topics. One op
// is one publish (and one delivery).
func BenchmarkManyTopics(b *testing.B) {
	nodes := startCluster(b, 3, nil)
	f := newFlow(manyTopicsWindow, manyTopics)
	var h Histogram
	topics := make([]string, manyTopics)
	subs := make([]*localSubscriber, manyTopics)
	for i := range topics {
		topics[i] = "bench:w3:" + strconv.Itoa(i)
		subs[i] = &localSubscriber{sink: f.newSink(), hist: &h, index: uint64(i), every: sampleEvery}
	}
	all := make([]*pubsub.Subscription, manyTopics)
	b.Cleanup(func() {
		for _, s := range all {
			if s != nil {
				_ = s.Unsubscribe()
			}
		}
	})
	subscribeAll(b, manyTopics, func(ctx context.Context, i int) error {
		s, err := nodes[i%3].SubscribeFunc(ctx, topics[i], subs[i].receive)
		all[i] = s
		return err
	})

	pub := nodes[0]
	payload := newPayload()
	run := func(count int) time.Duration {
		begin := time.Now()
		for i := range int64(count) {
			if err := f.acquire(i, 1); err != nil {
				b.Fatal(err, describe(nodes))
			}
			Stamp(payload)
			if err := publishRetry(pub, topics[i%manyTopics], payload); err != nil {
				b.Fatal(err, describe(nodes))
			}
		}
		if err := f.drain(int64(count), drainTimeout); err != nil {
			b.Fatal(err, describe(nodes))
		}
		return time.Since(begin)
	}
	run(manyTopics) // every topic sequenced once
	f.reset()
	h.Reset()
	frames := interNodeFrames(nodes, messageFrames...)

	b.ReportAllocs()
	b.ResetTimer()
	elapsed := run(b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	h.report(b)
	reportFrames(b, nodes, frames)
}
