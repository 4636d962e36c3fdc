package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// BenchmarkTopicMemory measures what a topic used once costs a cluster, and
// what is left of it once the topic is forgotten: two nodes (an owner and a
// replica for every topic), one op is one topic that gets one 128-byte
// message and no subscriber. kept-B/topic is the heap the cluster holds per
// topic once every copy is in place; forgotten-B/topic what it holds once
// the owners and replicas have let the topics go (IdleTopicTTL): the
// capacity of the topic tables, which Go maps keep after deletes and new
// topics reuse. Run it with a fixed count, e.g. -benchtime 20000x.
func BenchmarkTopicMemory(b *testing.B) {
	// Long enough for every topic to be in place before the first goes.
	ttl := time.Second + time.Duration(b.N)*100*time.Microsecond
	nodes := startCluster(b, 2, func(_ int, c *pubsub.Config) {
		c.HistoryTTL = ttl
		c.IdleTopicTTL = ttl
	})
	ctx := context.Background()
	payload := newPayload()
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	held := func() (owned, copies int) {
		for _, n := range nodes {
			st := n.Stats()
			owned += st.OwnedTopics
			copies += st.ReplicaTopics
		}
		return owned, copies
	}

	before := heap()
	b.ResetTimer()
	for i := range b.N {
		if _, err := nodes[0].Publish(ctx, fmt.Sprintf("memory:%d", i), payload); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	waitFor(b, drainTimeout, "every topic to have its replica copy", func() bool {
		owned, copies := held()
		return owned == b.N && copies == b.N
	})
	kept := heap()
	waitFor(b, drainTimeout, "the topics to be forgotten", func() bool {
		owned, copies := held()
		return owned == 0 && copies == 0
	})
	forgotten := heap()
	perTopic := func(after uint64) float64 { return (float64(after) - float64(before)) / float64(b.N) }
	b.ReportMetric(perTopic(kept), "kept-B/topic")
	b.ReportMetric(perTopic(forgotten), "forgotten-B/topic")
}
