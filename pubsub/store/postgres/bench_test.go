package postgres

import (
	"fmt"
	"testing"

	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/internal/pgtest"
)

// BenchmarkAppend measures group commits of 100-byte messages: batches of
// 1, 16 and 256 messages, all in one topic ("topics=1") or one message in
// each of as many topics ("topics=N", one statement per topic). Each
// operation is one Append call: one transaction, one round trip, one WAL
// flush (fsync stays on).
func BenchmarkAppend(b *testing.B) {
	srv := pgtest.Start(b) // fsync on, unlike the tests' shared server
	for _, n := range []int{1, 16, 256} {
		shapes := []int{1, n}
		if n == 1 {
			shapes = shapes[:1]
		}
		for _, topics := range shapes {
			b.Run(fmt.Sprintf("msgs=%d/topics=%d", n, topics), func(b *testing.B) {
				benchmarkAppend(b, openURL(b, srv.NewDatabase(b)), n, topics)
			})
		}
	}
}

func benchmarkAppend(b *testing.B, s *Store, n, topics int) {
	perTopic := n / topics
	tokens := make([]uint64, topics)
	names := make([]string, topics)
	for i := range topics {
		names[i] = fmt.Sprintf("bench-%d", i)
		tokens[i] = claim(b, s, names[i]).Token
	}
	data := make([]byte, 100)
	next := uint64(1)
	batch := make([]store.Append, topics)
	ctx := testCtx(b)
	b.SetBytes(int64(n * len(data)))
	for b.Loop() {
		for i := range batch {
			ms := make([]store.Message, perTopic)
			for j := range ms {
				ms[j] = store.Message{Seq: next + uint64(j), Time: int64(next), Data: data}
			}
			batch[i] = store.Append{Topic: names[i], Token: tokens[i], Messages: ms}
		}
		next += uint64(perTopic)
		res, err := s.Append(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range res {
			if e != nil {
				b.Fatal(e)
			}
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
}
