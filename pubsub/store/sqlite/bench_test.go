package sqlite

import (
	"fmt"
	"testing"

	"github.com/ringcast/ringcast/pubsub/store"
)

// BenchmarkAppend commits batches of 1, 16 and 256 messages of 100 bytes,
// spread over up to 8 topics as a node's group commit spreads them, with
// each Synchronous setting. ns/op is the latency of one Append (one
// transaction); msgs/s the throughput of one appender.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []string{"full", "normal"} {
		for _, size := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", sync, size), func(b *testing.B) {
				benchmarkAppend(b, sync, size)
			})
		}
	}
}

func benchmarkAppend(b *testing.B, sync string, size int) {
	ctx := b.Context()
	s := openFile(b, tempPath(b), Options{Synchronous: sync})
	topics := min(size, 8)
	tokens := make([]uint64, topics)
	next := make([]uint64, topics)
	for i := range topics {
		l, err := s.Claim(ctx, fmt.Sprintf("bench-%d", i), "node", 1)
		if err != nil {
			b.Fatal(err)
		}
		tokens[i], next[i] = l.Token, 1
	}
	data := make([]byte, 100)
	batch := make([]store.Append, topics)
	msgs := 0
	b.ReportAllocs()
	for b.Loop() {
		for i := range topics {
			n := size / topics
			if i < size%topics {
				n++
			}
			ms := make([]store.Message, n)
			for j := range ms {
				ms[j] = store.Message{Seq: next[i] + uint64(j), Time: int64(next[i]), Data: data}
			}
			next[i] += uint64(n)
			batch[i] = store.Append{Topic: fmt.Sprintf("bench-%d", i), Token: tokens[i], Messages: ms}
		}
		res, err := s.Append(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range res {
			if e != nil {
				b.Fatal(e)
			}
		}
		msgs += size
	}
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
}
