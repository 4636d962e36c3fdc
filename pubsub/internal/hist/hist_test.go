package hist

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBucket(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0},
		{0, 0},
		{1, 0},
		{Base, 0},
		{Base + 1, 1},
		{2 * Base, 1},
		{2*Base + 1, 2},
		{4 * Base, 2},
		{Bound(Bounds - 1), Bounds - 1},
		{Bound(Bounds-1) + 1, Bounds},
		{time.Hour, Bounds},
		{time.Duration(1<<63 - 1), Bounds},
	} {
		if got := bucket(tc.d); got != tc.want {
			t.Errorf("bucket(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	// Every bound falls in its own bucket, and the next nanosecond in the
	// next one.
	for i := range Bounds {
		if got := bucket(Bound(i)); got != i {
			t.Errorf("bucket(Bound(%d)) = %d", i, got)
		}
		if got := bucket(Bound(i) + 1); got != i+1 {
			t.Errorf("bucket(Bound(%d)+1) = %d", i, got)
		}
	}
}

func TestRecordSnapshot(t *testing.T) {
	var h Histogram
	const workers, each = 4, 1000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				h.Record(time.Duration(w*each+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	h.Record(-time.Second) // counted in bucket 0, adds nothing to the sum
	s := h.Snapshot()
	if s.Count != workers*each+1 {
		t.Fatalf("Count = %d, want %d", s.Count, workers*each+1)
	}
	var total uint64
	for _, c := range s.Counts {
		total += c
	}
	if total != s.Count {
		t.Fatalf("counts add up to %d, Count is %d", total, s.Count)
	}
	n := workers * each
	if want := time.Duration(n*(n-1)/2) * time.Microsecond; s.Sum != want {
		t.Fatalf("Sum = %v, want %v", s.Sum, want)
	}
	// 0..25µs: 26 values in bucket 0; 26..50µs: 25 values in bucket 1.
	if s.Counts[0] != 26+1 || s.Counts[1] != 25 {
		t.Fatalf("Counts[0:2] = %v", s.Counts[:2])
	}
}

func TestRecordAllocs(t *testing.T) {
	var h Histogram
	start := time.Now()
	if a := testing.AllocsPerRun(1000, func() {
		h.Record(3 * time.Millisecond)
		h.Since(start)
	}); a != 0 {
		t.Fatalf("Record and Since allocate: %v per run", a)
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			d += 997 * time.Nanosecond
			h.Record(d)
		}
	})
}
