package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/sqlite"
)

// durableBackends are the stores BenchmarkDurablePublish compares, by
// name; nil opens no store (a memory-only topic). Each opener returns the
// store and registers its cleanup with tb.
var durableBackends = []struct {
	name string
	open func(tb testing.TB) store.Store
}{
	{"memory", nil},
	{"sqlite", openSQLite("full")},
	{"sqlite-normal", openSQLite("normal")},
}

func openSQLite(sync string) func(tb testing.TB) store.Store {
	return func(tb testing.TB) store.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "ringcast.db"), sqlite.Options{Synchronous: sync})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = st.Close() })
		return st
	}
}

// BenchmarkDurablePublish measures acknowledged publishes (AckOwner) to one
// topic on a standalone node: memory-only, then durable on each store,
// where the acknowledgement means the message is committed. publishers
// goroutines publish at once; the store commits what they have queued in
// one transaction (group commit), so throughput grows with them while one
// publisher waits for every commit. Reported: msgs/s, and the latency of
// Publish (p50, p99, max).
func BenchmarkDurablePublish(b *testing.B) {
	for _, be := range durableBackends {
		for _, publishers := range []int{1, 64} {
			b.Run(fmt.Sprintf("store=%s/publishers=%d", be.name, publishers), func(b *testing.B) {
				cfg := pubsub.Config{}
				if be.open != nil {
					cfg.Store = be.open(b)
				}
				n, err := pubsub.New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer n.Close()
				ctx := context.Background()
				payload := make([]byte, 100)
				if _, err := n.Publish(ctx, "bench", payload); err != nil {
					b.Fatal(err) // claims the topic before the clock starts
				}
				var h Histogram
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				per := b.N / publishers
				for p := range publishers {
					count := per
					if p == 0 {
						count += b.N % publishers
					}
					wg.Go(func() {
						data := make([]byte, len(payload))
						for range count {
							t0 := Now()
							if _, err := n.Publish(ctx, "bench", data); err != nil {
								b.Error(err)
								return
							}
							h.Record(Now() - t0)
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
				h.report(b)
			})
		}
	}
}
