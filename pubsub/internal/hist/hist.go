package hist

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	// Base is the upper bound of the first bucket.
	Base = 25 * time.Microsecond
	// Bounds is the number of buckets with an upper bound; one more holds
	// what is longer than the last bound.
	Bounds = 20
)

// Histogram counts durations in buckets. The zero value is empty and ready;
// a Histogram must not be copied after first use. Its methods may be called
// from any goroutine.
type Histogram struct {
	counts [Bounds + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// Bound returns the upper bound of bucket i, for i < Bounds.
func Bound(i int) time.Duration { return Base << i }

// bucket returns the index of the bucket holding d.
func bucket(d time.Duration) int {
	if d <= Base {
		return 0
	}
	// (d-1)/Base is in [2^(i-1), 2^i) for d in (Base·2^(i-1), Base·2^i].
	return min(bits.Len64(uint64((d-1)/Base)), Bounds)
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	h.counts[bucket(d)].Add(1)
	h.sum.Add(int64(max(d, 0)))
}

// Since records the time elapsed since start.
func (h *Histogram) Since(start time.Time) { h.Record(time.Since(start)) }

// Snapshot is a copy of a Histogram's counts.
type Snapshot struct {
	// Counts[i] is the number of durations in bucket i (see the package
	// documentation): Counts[Bounds] counts those longer than the last
	// bound.
	Counts [Bounds + 1]uint64
	// Count is the number of durations recorded, the sum of Counts.
	Count uint64
	// Sum is the sum of the durations recorded.
	Sum time.Duration
}

// Snapshot returns the histogram's current counts.
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}
