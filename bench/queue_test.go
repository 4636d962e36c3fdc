package bench

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// queueMembersPerNode is the number of queue group members, or plain
// subscribers, on each node of BenchmarkQueueGroup.
const queueMembersPerNode = 2

// queueWindow bounds the messages published and not yet received in
// BenchmarkQueueGroup (on average over the handlers). Under fan-out one
// handler may lag the others by up to six windows, so every subscription
// buffers eight.
const queueWindow = 512

// BenchmarkQueueGroup compares a queue group with plain fan-out on three
// in-process nodes, two handlers on each, the topic owned by n1 and the
// publisher on n0 (AckNone, at most queueWindow messages outstanding). One
// op is one publish. With mode=queue each message reaches one of the six
// members (one QueueDeliver frame from the owner to one node); with
// mode=fanout it reaches all six subscribers (one Deliver frame per node).
// msgs/s is what the publisher sustains, deliveries/s what handlers
// receive.
func BenchmarkQueueGroup(b *testing.B) {
	for _, mode := range []string{"queue", "fanout"} {
		b.Run("mode="+mode, func(b *testing.B) { queueGroupRun(b, mode == "queue") })
	}
}

func queueGroupRun(b *testing.B, queue bool) {
	nodes := startCluster(b, 3, nil)
	topic := topicOwnedBy(b, nodes, 1, "bench:queue:")
	var received atomic.Int64
	handler := func(pubsub.Message) { received.Add(1) }
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	for _, nd := range nodes {
		for range queueMembersPerNode {
			var err error
			if queue {
				_, err = nd.SubscribeQueueFunc(ctx, topic, "workers", handler, pubsub.WithBuffer(8*queueWindow))
			} else {
				_, err = nd.SubscribeFunc(ctx, topic, handler, pubsub.WithBuffer(8*queueWindow))
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	per := int64(1) // deliveries per message
	if !queue {
		per = int64(len(nodes) * queueMembersPerNode)
	}
	pub := nodes[0]
	payload := newPayload()
	run := func(count int) time.Duration {
		base := received.Load()
		begin := time.Now()
		for i := range int64(count) {
			var stall time.Time
			for i-(received.Load()-base)/per >= queueWindow {
				if stall.IsZero() {
					stall = time.Now()
				} else if time.Since(stall) > stallTimeout {
					b.Fatalf("window stalled at %d of %d deliveries: %s", received.Load()-base, i*per, describe(nodes))
				}
				time.Sleep(20 * time.Microsecond)
			}
			if err := publishRetry(pub, topic, payload); err != nil {
				b.Fatal(err, describe(nodes))
			}
		}
		want := base + int64(count)*per
		waitFor(b, drainTimeout, "every delivery", func() bool { return received.Load() >= want })
		return time.Since(begin)
	}
	run(1000)
	b.ReportAllocs()
	b.ResetTimer()
	elapsed := run(b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N*int(per))/elapsed.Seconds(), "deliveries/s")
}
