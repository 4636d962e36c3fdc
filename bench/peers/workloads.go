package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ringcast/ringcast/bench"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Settings shared by every workload and system.
type settings struct {
	duration time.Duration // publishing time of a measured run
	warmup   time.Duration // publishing time before it, not measured
	drain    time.Duration // deadline for the last deliveries
	stall    time.Duration // a window that does not open for that long ends publishing
	setup    time.Duration // deadline for subscribing and probing
}

const (
	// perSubWindow is the number of messages the publisher may be ahead of
	// its slowest subscriber (W1, W2): well under ringcast's default
	// subscription buffer (1,024) and NATS's pending limit (65,536).
	perSubWindow = 256
	// manyTopicsWindow bounds W3's outstanding deliveries (one per message),
	// within half of ringcast's per-link queue (a message in flight may hold
	// two frames in one queue).
	manyTopicsWindow = 4096
	// pacedRate is W2's fixed rate for latency, in messages per second.
	pacedRate = 2000
	// sampleEvery: throughput runs time one delivery in sampleEvery.
	sampleEvery = 64
)

// subscriber places one subscriber: its node and topic.
type subscriber struct {
	node  int
	topic string
}

// workload is one of W1-W3 for one system.
type workload struct {
	id, title string
	nodes     int
	subs      func() []subscriber
	topics    []string // published round-robin
	paced     bool     // W2 latency: pacedRate, every delivery timed
	perTopic  bool     // each message has one subscriber (W3): total window
}

func workloads() []workload {
	one := func(n, node int, topic string) []subscriber {
		out := make([]subscriber, n)
		for i := range out {
			out[i] = subscriber{node, topic}
		}
		return out
	}
	w2 := func() []subscriber { return append(one(150, 1, "w2"), one(150, 2, "w2")...) }
	w3topics := make([]string, 10000)
	for i := range w3topics {
		w3topics[i] = "w3." + strconv.Itoa(i)
	}
	return []workload{
		{id: "W1-1", title: "W1 embedded fan-out, 1 subscriber", nodes: 1,
			subs: func() []subscriber { return one(1, 0, "w1") }, topics: []string{"w1"}},
		{id: "W1-1000", title: "W1 embedded fan-out, 1,000 subscribers", nodes: 1,
			subs: func() []subscriber { return one(1000, 0, "w1") }, topics: []string{"w1"}},
		{id: "W2-max", title: "W2 cluster fan-out, 3 nodes x 150 subscribers on 2, max throughput", nodes: 3,
			subs: w2, topics: []string{"w2"}},
		{id: "W2-2000", title: "W2 cluster fan-out at 2,000 msg/s, latency", nodes: 3,
			subs: w2, topics: []string{"w2"}, paced: true},
		{id: "W3", title: "W3 10,000 topics, 1 subscriber each on node i%3", nodes: 3,
			subs: func() []subscriber {
				out := make([]subscriber, len(w3topics))
				for i, t := range w3topics {
					out[i] = subscriber{i % 3, t}
				}
				return out
			}, topics: w3topics, perTopic: true},
	}
}

// result is one workload run against one system.
type result struct {
	Workload     string  `json:"workload"`
	System       string  `json:"system"`
	DeliveriesPS float64 `json:"deliveries_per_s"`
	MessagesPS   float64 `json:"messages_per_s"`
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
	MaxUs        float64 `json:"max_us"`
	Published    int64   `json:"published"`
	Expected     int64   `json:"expected"`
	Delivered    int64   `json:"delivered"`
	Lost         int64   `json:"lost"`
	Stalled      bool    `json:"stalled"`
	ElapsedS     float64 `json:"elapsed_s"`
	Error        string  `json:"error,omitempty"`

	// Round numbers a single run (1, 2, ...). In a summary of several
	// rounds (see summarize) it is 0 and Rounds, MinDPS and MaxDPS say how
	// many runs the medians come from and how far apart they were.
	Round  int     `json:"round,omitempty"`
	Rounds int     `json:"rounds,omitempty"`
	MinDPS float64 `json:"min_deliveries_per_s,omitempty"`
	MaxDPS float64 `json:"max_deliveries_per_s,omitempty"`
}

// pubNode is the node every workload publishes from.
const pubNode = 0

// run runs w against sys: subscribe, probe until every subscription
// delivers, warm up, then measure.
func (w workload) run(ctx context.Context, sys System, st settings) (result, error) {
	res := result{Workload: w.id, System: sys.Name()}
	t := w.newTrial(ctx, sys, st)
	setupCtx, cancel := context.WithTimeout(ctx, st.setup)
	defer cancel()
	if err := t.subscribe(setupCtx); err != nil {
		return res, fmt.Errorf("subscribe: %w", err)
	}
	if err := probe(setupCtx, sys, pubNode, t.subs, t.sinks); err != nil {
		return res, err
	}
	if st.warmup > 0 {
		if err := t.warmUp(); err != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
	}
	return t.measure(res)
}

// trial is one run of a workload against a system: its subscriptions, the
// flow window that paces the publisher and the latency histogram.
type trial struct {
	w       workload
	ctx     context.Context
	sys     System
	st      settings
	subs    []subscriber
	sinks   []*sink
	flow    window
	hist    bench.Histogram
	every   int64 // one delivery in every is timed
	fanout  int64 // deliveries per message
	payload []byte
}

func (w workload) newTrial(ctx context.Context, sys System, st settings) *trial {
	t := &trial{w: w, ctx: ctx, sys: sys, st: st, subs: w.subs(), every: sampleEvery, fanout: 1,
		payload: make([]byte, payloadSize)}
	if w.perTopic {
		t.flow = newTotalFlow(manyTopicsWindow, st.stall)
	} else {
		t.flow = newFanoutFlow(perSubWindow, st.stall)
		t.fanout = int64(len(t.subs))
	}
	t.flow.setBeforeWait(func() { _ = sys.Flush(ctx, pubNode) })
	t.sinks = make([]*sink, len(t.subs))
	if w.paced {
		t.every = 1
	}
	return t
}

// subscribe places every subscriber; each counts its deliveries in its sink
// and times one in t.every.
func (t *trial) subscribe(ctx context.Context) error {
	return forEach(ctx, len(t.subs), func(ctx context.Context, i int) error {
		sk := t.flow.newSink()
		t.sinks[i] = sk
		offset := int64(i)
		return t.sys.Subscribe(ctx, t.subs[i].node, t.subs[i].topic, func(sent int64) {
			if sent == 0 {
				sk.probed.Store(true)
				return
			}
			if (sk.n.Load()+offset)%t.every == 0 {
				t.hist.Record(bench.Now() - sent)
			}
			sk.deliver()
		})
	})
}

// publish publishes for d, as fast as the window allows or at pacedRate,
// and reports how many messages went out and whether the window stalled.
func (t *trial) publish(d time.Duration) (published int64, stalled bool, err error) {
	ctx, sys := t.ctx, t.sys
	begin := time.Now()
	interval := time.Second / pacedRate
	for i := int64(0); ; i++ {
		if i%64 == 0 && time.Since(begin) >= d {
			break
		}
		if t.w.paced {
			if wait := time.Until(begin.Add(time.Duration(i) * interval)); wait > 0 {
				time.Sleep(wait)
			}
			if time.Since(begin) >= d {
				break
			}
		}
		if err := t.flow.acquire(i); err != nil {
			if errors.Is(err, errStalled) {
				return i, true, sys.Flush(ctx, pubNode)
			}
			return i, false, err
		}
		bench.Stamp(t.payload)
		if err := sys.Publish(ctx, pubNode, t.w.topics[i%int64(len(t.w.topics))], t.payload); err != nil {
			return i, false, fmt.Errorf("publish %d: %w", i, err)
		}
		if t.w.paced {
			if err := sys.Flush(ctx, pubNode); err != nil {
				return i + 1, false, err
			}
		}
		published = i + 1
	}
	return published, false, sys.Flush(ctx, pubNode)
}

// drain waits until want deliveries arrived or the drain deadline passed,
// and returns the deliveries and the time it stopped waiting.
func (t *trial) drain(want int64) (int64, time.Time) {
	deadline := time.Now().Add(t.st.drain)
	for {
		got := t.flow.delivered()
		if got >= want || time.Now().After(deadline) {
			return got, time.Now()
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// warmUp publishes for the warm-up time, checks that everything arrived and
// zeroes the counters.
func (t *trial) warmUp() error {
	n, stalled, err := t.publish(t.st.warmup)
	if err != nil {
		return err
	}
	if got, _ := t.drain(n * t.fanout); stalled || got < n*t.fanout {
		return fmt.Errorf("%d of %d deliveries arrived", got, n*t.fanout)
	}
	t.flow.reset()
	t.hist.Reset()
	return nil
}

// measure publishes for the measured time and fills res in.
func (t *trial) measure(res result) (result, error) {
	begin := time.Now()
	n, stalled, err := t.publish(t.st.duration)
	if err != nil {
		return res, err
	}
	got, end := t.drain(n * t.fanout)
	elapsed := end.Sub(begin).Seconds()
	res.Published, res.Expected, res.Delivered = n, n*t.fanout, got
	res.Lost = max(res.Expected-got, 0)
	res.Stalled = stalled
	res.ElapsedS = elapsed
	res.DeliveriesPS = float64(got) / elapsed
	res.MessagesPS = float64(n) / elapsed
	res.P50us = orZero(t.hist.Quantile(0.50) / 1e3)
	res.P99us = orZero(t.hist.Quantile(0.99) / 1e3)
	res.MaxUs = float64(t.hist.Max()) / 1e3
	return res, nil
}

// orZero maps NaN (no sample) to 0, which JSON can carry.
func orZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// probe publishes probes (zero stamps) to every topic that still has a
// subscriber without one, until all have one: then every subscription is
// live cluster-wide, whatever the system propagates asynchronously.
func probe(ctx context.Context, sys System, node int, subs []subscriber, sinks []*sink) error {
	zero := make([]byte, payloadSize)
	for {
		waiting := map[string]bool{}
		for i, s := range subs {
			if !sinks[i].probed.Load() {
				waiting[s.topic] = true
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		for topic := range waiting {
			if err := sys.Publish(ctx, node, topic, zero); err != nil {
				return fmt.Errorf("probe: %w", err)
			}
		}
		if err := sys.Flush(ctx, node); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("probe: %d topics still without a live subscription: %w", len(waiting), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// forEach runs fn for i in [0, n) on up to 32 goroutines and returns the
// first error.
func forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range min(n, 32) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err })
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
