package main

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// histogram records durations in nanoseconds in log-linear buckets (16
// per power of two, about 6% precision). record may be called
// concurrently.
type histogram struct {
	buckets [1024]atomic.Uint64
	max     atomic.Int64
}

const subBucketBits = 4

func bucketOf(v uint64) int {
	if v < 1<<subBucketBits {
		return int(v)
	}
	e := bits.Len64(v) - subBucketBits - 1
	top := v >> uint(e)
	return (e+1)<<subBucketBits + int(top-1<<subBucketBits)
}

// bucketValue returns the middle of bucket i.
func bucketValue(i int) float64 {
	if i < 1<<subBucketBits {
		return float64(i)
	}
	e := i>>subBucketBits - 1
	top := uint64(i&(1<<subBucketBits-1) + 1<<subBucketBits)
	lo := top << uint(e)
	return float64(lo) + float64(uint64(1)<<uint(e))/2
}

func (h *histogram) record(d int64) {
	d = max(d, 0)
	h.buckets[bucketOf(uint64(d))].Add(1)
	for {
		m := h.max.Load()
		if d <= m || h.max.CompareAndSwap(m, d) {
			return
		}
	}
}

func (h *histogram) count() uint64 {
	var n uint64
	for i := range h.buckets {
		n += h.buckets[i].Load()
	}
	return n
}

// quantile returns the q-quantile, or 0 with no sample.
func (h *histogram) quantile(q float64) float64 {
	total := h.count()
	if total == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(total))), 1)
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return min(bucketValue(i), float64(h.max.Load()))
		}
	}
	return float64(h.max.Load())
}
