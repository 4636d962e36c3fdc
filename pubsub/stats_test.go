package pubsub

import (
	"fmt"
	"testing"
	"time"
)

// checkHistogram fails unless s is a well-formed snapshot of count
// durations (count < 0: any count).
func checkHistogram(t *testing.T, what string, s HistogramSnapshot, count int) {
	t.Helper()
	if len(s.Bounds) == 0 || len(s.Counts) != len(s.Bounds)+1 {
		t.Fatalf("%s: %d bounds, %d counts", what, len(s.Bounds), len(s.Counts))
	}
	for i := 1; i < len(s.Bounds); i++ {
		if s.Bounds[i] <= s.Bounds[i-1] {
			t.Fatalf("%s: bounds not increasing: %v", what, s.Bounds)
		}
	}
	var total uint64
	for _, c := range s.Counts {
		total += c
	}
	if total != s.Count {
		t.Fatalf("%s: counts add up to %d, Count is %d", what, total, s.Count)
	}
	if count >= 0 && s.Count != uint64(count) {
		t.Fatalf("%s: Count = %d, want %d", what, s.Count, count)
	}
	if s.Count > 0 && s.Sum <= 0 {
		t.Fatalf("%s: %d durations add up to %v", what, s.Count, s.Sum)
	}
}

// TestStatsHistograms checks that claims, store transactions and store
// claims are timed: a memory-only topic's claim, then a durable topic's
// (settled by the store's answer), and every transaction.
func TestStatsHistograms(t *testing.T) {
	st := newMemStore()
	n := newStandalone(t, "hist", withStore(st, Durability{Pattern: "mem:*", Memory: true}, Durability{Pattern: "*"}))
	ctx := ctxT(t, 20*time.Second)

	s := n.Stats()
	checkHistogram(t, "ClaimDuration before any topic", s.ClaimDuration, 0)
	checkHistogram(t, "AppendLatency before any topic", s.Store.AppendLatency, 0)

	if _, err := n.Publish(ctx, "mem:a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	checkHistogram(t, "ClaimDuration after a memory-only topic", n.Stats().ClaimDuration, 1)

	const msgs = 5
	for i := range msgs {
		if _, err := n.Publish(ctx, "orders", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s = n.Stats()
	checkHistogram(t, "ClaimDuration after a durable topic", s.ClaimDuration, 2)
	if s.Store.Batches == 0 || s.Store.Committed != msgs {
		t.Fatalf("store stats %+v, want %d messages committed", s.Store, msgs)
	}
	checkHistogram(t, "AppendLatency", s.Store.AppendLatency, int(s.Store.Batches))
	if s.Store.AppendLatency.Sum != s.Store.AppendTime {
		t.Fatalf("AppendLatency.Sum = %v, AppendTime = %v", s.Store.AppendLatency.Sum, s.Store.AppendTime)
	}
	checkHistogram(t, "ClaimLatency", s.Store.ClaimLatency, int(s.Store.Claims))
	if s.Store.Claims != 1 {
		t.Fatalf("Store.Claims = %d, want 1", s.Store.Claims)
	}
}

// TestStatsRecordAllocs checks that timing a claim or a transaction
// allocates nothing.
func TestStatsRecordAllocs(t *testing.T) {
	var n Node
	ot := &ownedTopic{name: "t"}
	start := time.Now()
	if a := testing.AllocsPerRun(1000, func() {
		ot.claimStart.Store(monotime())
		n.claimSettled(ot)
		n.stats.storeAppend.Since(start)
		n.stats.storeClaim.Record(time.Millisecond)
	}); a != 0 {
		t.Fatalf("recording allocates %v times per run", a)
	}
	if got := n.stats.claimDuration.Snapshot().Count; got != 1000+1 {
		// AllocsPerRun runs the function once more to warm up.
		t.Fatalf("claims timed: %d, want 1001", got)
	}
}
