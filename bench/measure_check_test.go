package bench

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100000; v++ {
		h.Record(v * 1000) // 1 µs .. 100 ms, uniform
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 50e6}, {0.99, 99e6}} {
		got := h.Quantile(c.q)
		if got < c.want*0.93 || got > c.want*1.07 {
			t.Errorf("quantile(%v) = %.0f, want %.0f ±7%%", c.q, got, c.want)
		}
	}
	if h.Max() != 100e6 || h.Count() != 100000 {
		t.Errorf("max %d, count %d", h.Max(), h.Count())
	}
	for v := uint64(0); v < 1<<20; v = v*2 + 1 {
		if i := bucketOf(v); bucketValue(i) < float64(v)*0.9 || bucketValue(i) > float64(v)*1.1+1 {
			t.Errorf("value %d lands in bucket %d of value %.0f", v, i, bucketValue(i))
		}
	}
}

// TestFanoutFlow runs a publisher against subscribers that stall at
// random and checks that no subscriber is ever more than the window
// behind, and that every message arrives.
func TestFanoutFlow(t *testing.T) {
	const (
		subs     = 8
		window   = 16
		messages = 5000
	)
	f := newFanoutFlow(window)
	var published atomic.Int64
	var worst atomic.Int64
	chans := make([]chan struct{}, subs)
	var wg sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan struct{}, messages)
		sk := f.newSink()
		wg.Go(func() {
			for range chans[i] {
				if lag := published.Load() - sk.n.Load(); lag > worst.Load() {
					worst.Store(lag)
				}
				if rand.IntN(500) == 0 {
					time.Sleep(time.Millisecond)
				}
				sk.deliver()
			}
		})
	}
	for i := range int64(messages) {
		if err := f.acquire(i); err != nil {
			t.Fatal(err)
		}
		published.Add(1)
		for _, c := range chans {
			c <- struct{}{}
		}
	}
	if err := f.drain(messages, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, c := range chans {
		close(c)
	}
	wg.Wait()
	if w := worst.Load(); w > window {
		t.Fatalf("a subscriber was %d messages behind, window %d", w, window)
	}
}
