package main

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// payloadSize is the size of every published message.
const payloadSize = 128

// errStalled is returned by a flow whose subscribers made no progress for
// stallTimeout: deliveries were lost (or are stuck), and the workload stops
// publishing and counts them instead of waiting for ever.
var errStalled = errors.New("peers: subscribers stalled")

// window is the flow control every system gets: the publisher asks before
// each message, and waits while too many deliveries are outstanding.
type window interface {
	// acquire waits until message number sent (0-based) may be published.
	// It calls beforeWait, if set, before it blocks.
	acquire(sent int64) error
	// delivered returns the deliveries received so far.
	delivered() int64
	newSink() *sink
	// reset zeroes the counters; nothing may be in flight.
	reset()
	setBeforeWait(func())
}

// sink counts the deliveries of one subscriber. deliver is never called
// concurrently for one sink.
type sink struct {
	n      atomic.Int64
	probed atomic.Bool // a probe arrived: the subscription is live
	onStep func(v int64)
	_      [40]byte
}

func (s *sink) deliver() {
	v := s.n.Add(1)
	if s.onStep != nil {
		s.onStep(v)
	}
}

// sinks is a fixed set of sinks.
type sinks struct {
	mu  sync.Mutex
	all []*sink
}

func (ss *sinks) add(s *sink) {
	ss.mu.Lock()
	ss.all = append(ss.all, s)
	ss.mu.Unlock()
}

func (ss *sinks) list() []*sink {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.all
}

func (ss *sinks) resetSinks() {
	for _, s := range ss.list() {
		s.n.Store(0)
	}
}

func (ss *sinks) delivered() int64 {
	var n int64
	for _, s := range ss.list() {
		n += s.n.Load()
	}
	return n
}

// fanoutFlow bounds how far the publisher runs ahead of the slowest of
// subscribers that all receive every message. A bound on the total alone
// is not enough: one subscriber whose dispatch is delayed falls behind
// while the others keep the total low. While the publisher waits, the
// sinks that were behind count down and the last one wakes it.
type fanoutFlow struct {
	sinks
	window  int64
	floor   int64
	target  atomic.Int64
	pending atomic.Int64
	wake    chan struct{}
	stall   time.Duration
	before  func()
}

func (f *fanoutFlow) setBeforeWait(fn func()) { f.before = fn }

func (f *fanoutFlow) reset() {
	f.resetSinks()
	f.floor = 0
}

func newFanoutFlow(window int, stall time.Duration) *fanoutFlow {
	return &fanoutFlow{window: int64(window), wake: make(chan struct{}, 1), stall: stall}
}

func (f *fanoutFlow) newSink() *sink {
	s := &sink{}
	s.onStep = func(v int64) {
		if v == f.target.Load() && f.pending.Add(-1) == 0 {
			select {
			case f.wake <- struct{}{}:
			default:
			}
		}
	}
	f.add(s)
	return s
}

func (f *fanoutFlow) scan(target int64) (slowest, below int64) {
	slowest = math.MaxInt64
	for _, s := range f.list() {
		n := s.n.Load()
		slowest = min(slowest, n)
		if n < target {
			below++
		}
	}
	return slowest, below
}

func (f *fanoutFlow) acquire(sent int64) error {
	if sent-f.floor < f.window {
		return nil
	}
	if f.floor, _ = f.scan(0); sent-f.floor < f.window {
		return nil
	}
	if f.before != nil {
		f.before()
	}
	target := sent - f.window/2
	f.pending.Store(0)
	f.target.Store(target)
	defer f.target.Store(0)
	slowest, below := f.scan(target)
	if f.pending.Add(below) > 0 {
		timer := time.NewTimer(f.stall)
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
		} else if time.Since(progress) > f.stall {
			return errStalled
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// totalFlow bounds the total of outstanding deliveries, for workloads in
// which each message goes to one subscriber of many.
type totalFlow struct {
	sinks
	window   int64
	total    atomic.Int64
	resumeAt atomic.Int64
	wake     chan struct{}
	stall    time.Duration
	before   func()
}

func (f *totalFlow) setBeforeWait(fn func()) { f.before = fn }

func (f *totalFlow) reset() {
	f.resetSinks()
	f.total.Store(0)
}

func newTotalFlow(window int, stall time.Duration) *totalFlow {
	return &totalFlow{window: int64(window), wake: make(chan struct{}, 1), stall: stall}
}

func (f *totalFlow) newSink() *sink {
	s := &sink{}
	s.onStep = func(int64) {
		d := f.total.Add(1)
		if r := f.resumeAt.Load(); r != 0 && d >= r {
			select {
			case f.wake <- struct{}{}:
			default:
			}
		}
	}
	f.add(s)
	return s
}

func (f *totalFlow) acquire(sent int64) error {
	if sent+1-f.total.Load() <= f.window {
		return nil
	}
	if f.before != nil {
		f.before()
	}
	target := sent + 1 - f.window/2
	f.resumeAt.Store(target)
	defer f.resumeAt.Store(0)
	timer := time.NewTimer(f.stall)
	defer timer.Stop()
	last := f.total.Load()
	for f.total.Load() < target {
		select {
		case <-f.wake:
		case <-timer.C:
			d := f.total.Load()
			if d == last {
				return errStalled
			}
			last = d
			timer.Reset(f.stall)
		}
	}
	return nil
}
