package bench

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Measuring: a latency histogram, and the two flow controls that bound
// how far a publisher may run ahead of its subscribers.

// recordSince records the latency of a payload made by Stamp.
func (h *Histogram) recordSince(p []byte) {
	h.Record(Now() - SentAt(p))
}

// report adds p50-µs, p99-µs and max-µs to b's metrics.
func (h *Histogram) report(b *testing.B) {
	if h.Count() == 0 {
		return
	}
	b.ReportMetric(h.Quantile(0.50)/1e3, "p50-µs")
	b.ReportMetric(h.Quantile(0.99)/1e3, "p99-µs")
	b.ReportMetric(float64(h.Max())/1e3, "max-µs")
}

// flow bounds the deliveries a publisher has caused and its subscribers
// have not yet received. Each subscriber counts into its own sink and
// credits the shared counter in batches, so the hot path touches no shared
// cache line on most deliveries; a waiting publisher is woken only once
// the outstanding count has fallen to half the window.
type flow struct {
	window    int64
	batch     int64
	delivered atomic.Int64 // credited by sinks, in batches
	resumeAt  atomic.Int64 // delivered count that wakes the publisher; 0 when it is not waiting
	wake      chan struct{}

	mu    sync.Mutex
	sinks []*sink
}

// sink counts the deliveries of one subscriber. deliver must not be called
// concurrently for one sink (SubscribeFunc handlers and Next readers never
// are).
type sink struct {
	f *flow
	n atomic.Int64
	_ [48]byte // keeps sinks of different subscribers off one cache line
}

// newFlow returns a flow allowing window outstanding deliveries among subs
// subscribers.
func newFlow(window, subs int) *flow {
	// A sink holds back fewer than batch deliveries: keep what all sinks
	// can hold back below half the window, or a drained subscriber set
	// would never wake the publisher.
	batch := int64(window) / int64(4*max(subs, 1))
	batch = min(max(batch, 1), 16)
	return &flow{window: int64(window), batch: batch, wake: make(chan struct{}, 1)}
}

func (f *flow) newSink() *sink {
	s := &sink{f: f}
	f.mu.Lock()
	f.sinks = append(f.sinks, s)
	f.mu.Unlock()
	return s
}

func (s *sink) deliver() {
	if v := s.n.Add(1); v%s.f.batch == 0 {
		s.f.credit(s.f.batch)
	}
}

func (f *flow) credit(k int64) {
	d := f.delivered.Add(k)
	if r := f.resumeAt.Load(); r != 0 && d >= r {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// exact returns the deliveries received so far, summed over the sinks.
func (f *flow) exact() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, s := range f.sinks {
		n += s.n.Load()
	}
	return n
}

// acquire waits until sent more deliveries fit in the window, where sent
// is the number of deliveries caused so far. It fails after stallTimeout
// without progress.
func (f *flow) acquire(sent, next int64) error {
	if sent+next-f.delivered.Load() <= f.window {
		return nil
	}
	target := sent + next - f.window/2
	f.resumeAt.Store(target)
	defer f.resumeAt.Store(0)
	timer := time.NewTimer(stallTimeout)
	defer timer.Stop()
	last := f.delivered.Load()
	for f.delivered.Load() < target {
		select {
		case <-f.wake:
		case <-timer.C:
			d := f.delivered.Load()
			if d == last {
				return fmt.Errorf("publisher stalled for %v: %d deliveries outstanding, window %d", stallTimeout, sent-d, f.window)
			}
			last = d
			timer.Reset(stallTimeout)
		}
	}
	return nil
}

// drain waits until want deliveries arrived, polling the exact counts.
func (f *flow) drain(want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got := f.exact()
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d deliveries missing after %v", want-got, want, timeout)
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}

// reset zeroes the counters; nothing may be in flight.
func (f *flow) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sinks {
		s.n.Store(0)
	}
	f.delivered.Store(0)
}

// fanoutFlow bounds how far a publisher runs ahead of the slowest of
// subscribers that all receive every message: at most window messages. A
// bound on the total alone is not enough: one subscriber whose dispatch is
// delayed (by the scheduler, by another process) falls behind while the
// others keep the total low, and overflows its buffer. The publisher keeps
// the slowest count it saw and rescans the sinks only when that says the
// window is full; while it waits, the sinks that were behind count down
// and the last one wakes it.
type fanoutFlow struct {
	window  int64
	floor   int64        // the publisher's last view of the slowest sink
	target  atomic.Int64 // count the waiting publisher needs every sink to reach; 0 when not waiting
	pending atomic.Int64 // sinks still below target
	wake    chan struct{}

	mu    sync.Mutex
	sinks []*fanSink
}

// fanSink counts the messages one subscriber received. deliver must not be
// called concurrently for one sink.
type fanSink struct {
	f *fanoutFlow
	n atomic.Int64
	_ [48]byte
}

func newFanoutFlow(window int) *fanoutFlow {
	return &fanoutFlow{window: int64(window), wake: make(chan struct{}, 1)}
}

func (f *fanoutFlow) newSink() *fanSink {
	s := &fanSink{f: f}
	f.mu.Lock()
	f.sinks = append(f.sinks, s)
	f.mu.Unlock()
	return s
}

func (s *fanSink) deliver() {
	if v := s.n.Add(1); v == s.f.target.Load() && s.f.pending.Add(-1) == 0 {
		select {
		case s.f.wake <- struct{}{}:
		default:
		}
	}
}

// scan returns the count of the slowest sink and how many sinks are below
// target.
func (f *fanoutFlow) scan(target int64) (slowest, below int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	slowest = math.MaxInt64
	for _, s := range f.sinks {
		n := s.n.Load()
		slowest = min(slowest, n)
		if n < target {
			below++
		}
	}
	return slowest, below
}

// acquire waits until one more message fits in the window, sent being the
// messages published so far. It fails after stallTimeout without
// progress.
func (f *fanoutFlow) acquire(sent int64) error {
	if sent-f.floor < f.window {
		return nil
	}
	if f.floor, _ = f.scan(0); sent-f.floor < f.window {
		return nil
	}
	target := sent - f.window/2
	f.pending.Store(0)
	f.target.Store(target)
	defer f.target.Store(0)
	slowest, below := f.scan(target)
	if f.pending.Add(below) > 0 {
		// Sinks that passed target during the scan were counted down but
		// not up, so the wake may come early: the loop below checks.
		timer := time.NewTimer(stallTimeout)
		select {
		case <-f.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
	progress := time.Now()
	for {
		last := slowest
		if slowest, _ = f.scan(target); slowest >= target {
			f.floor = slowest
			return nil
		}
		if slowest > last {
			progress = time.Now()
		} else if time.Since(progress) > stallTimeout {
			return fmt.Errorf("publisher stalled for %v: the slowest subscriber has %d of %d messages", stallTimeout, slowest, sent)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// drain waits until every sink has count messages.
func (f *fanoutFlow) drain(count int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		slowest, below := f.scan(count)
		if below == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d subscribers short of %d messages after %v (the slowest has %d)", below, count, timeout, slowest)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// reset zeroes the counters; nothing may be in flight.
func (f *fanoutFlow) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sinks {
		s.n.Store(0)
	}
	f.floor = 0
}
