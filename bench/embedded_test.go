package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// perSubWindow is the number of messages a publisher may be ahead of its
// slowest subscriber (see fanoutFlow). It stays well under
// pubsub.DefaultSubscriptionBuffer, so no subscription overflows.
const perSubWindow = 256

// latencySample records the latency of one delivery in sampleEvery. The
// subscriber's index shifts the sample so that subscribers of one message
// do not all take the clock at once.
const sampleEvery = 64

// localSubscriber is one subscriber of an embedded benchmark: its sink and
// the latency histogram it samples into.
type localSubscriber struct {
	sink  interface{ deliver() }
	hist  *Histogram
	index uint64
	every uint64 // record one delivery in every; 1 records all
}

func (s *localSubscriber) receive(m pubsub.Message) {
	if (m.Seq+s.index)%s.every == 0 {
		s.hist.recordSince(m.Data)
	}
	s.sink.deliver()
}

// subscribeLocal subscribes count subscribers of topic on n, as handlers or
// as Next readers (one goroutine each), and returns when all are active.
// Each records the latency of one delivery in every. Readers stop when tb
// ends.
func subscribeLocal(tb testing.TB, n *pubsub.Node, topic string, count int, next bool, every uint64, f *fanoutFlow, h *Histogram) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	tb.Cleanup(func() {
		cancel()
		readers.Wait()
	})
	subs := make([]*localSubscriber, count)
	for i := range subs {
		subs[i] = &localSubscriber{sink: f.newSink(), hist: h, index: uint64(i), every: every}
	}
	var mu sync.Mutex
	var all []*pubsub.Subscription
	tb.Cleanup(func() {
		for _, s := range all {
			_ = s.Unsubscribe()
		}
	})
	subscribeAll(tb, count, func(sctx context.Context, i int) error {
		s := subs[i]
		var sub *pubsub.Subscription
		var err error
		if next {
			sub, err = n.Subscribe(sctx, topic)
		} else {
			sub, err = n.SubscribeFunc(sctx, topic, s.receive)
		}
		if err != nil {
			return err
		}
		mu.Lock()
		all = append(all, sub)
		mu.Unlock()
		if next {
			readers.Go(func() {
				for {
					m, err := sub.Next(ctx)
					if err != nil {
						return
					}
					s.receive(m)
				}
			})
		}
		return nil
	})
}

// BenchmarkEmbeddedFanout is W1: one node, one topic, the publisher and
// every subscriber on the same node. One op is one publish; deliveries/s
// counts messages handed to subscribers. Latency is sampled (one delivery
// in 64) while the publisher runs flat out, so it is mostly queueing in
// the window.
//
// The publisher uses a Topic handle, as a program publishing to one topic
// would; subs=1/func/by-name publishes with Node.Publish instead, which
// looks the topic up on every call.
func BenchmarkEmbeddedFanout(b *testing.B) {
	for _, subs := range []int{1, 1000} {
		for _, mode := range []string{"func", "next"} {
			b.Run(fmt.Sprintf("subs=%d/%s", subs, mode), func(b *testing.B) {
				benchEmbedded(b, subs, mode == "next", false)
			})
		}
	}
	b.Run("subs=1/func/by-name", func(b *testing.B) { benchEmbedded(b, 1, false, true) })
}

func benchEmbedded(b *testing.B, subs int, next, byName bool) {
	node := startCluster(b, 1, nil)[0]
	const topic = "bench:w1"
	f := newFanoutFlow(perSubWindow)
	var h Histogram
	subscribeLocal(b, node, topic, subs, next, sampleEvery, f, &h)

	ctx := context.Background()
	payload := newPayload()
	handle, err := node.Topic(topic)
	if err != nil {
		b.Fatal(err)
	}
	publish := func(count int) time.Duration {
		begin := time.Now()
		for i := range int64(count) {
			if err := f.acquire(i); err != nil {
				b.Fatal(err)
			}
			Stamp(payload)
			var err error
			if byName {
				_, err = node.Publish(ctx, topic, payload)
			} else {
				_, err = handle.Publish(ctx, payload)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := f.drain(int64(count), drainTimeout); err != nil {
			b.Fatal(err)
		}
		return time.Since(begin)
	}
	publish(100) // warm up: buffers, pools, the first dispatch
	f.reset()
	h.Reset()

	b.ReportAllocs()
	b.ResetTimer()
	elapsed := publish(b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)*float64(subs)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	h.report(b)
	if st := node.Stats(); st.SlowConsumers != 0 {
		b.Fatalf("%d subscriptions overflowed", st.SlowConsumers)
	}
}
