package pubsub

import (
	"container/heap"
	"sync"
	"time"
)

// timers runs the node's delayed work (request timeouts, claim retries,
// gap expiries) on one goroutine that the node owns: Close stops it and
// waits for it, so no expiry runs after Close has returned, and no
// expiry runs on a goroutine nobody waits for.
//
// A function runs at most once per scheduling, never concurrently with
// another timer's, and without any lock of timers held, so it may take the
// node's locks and schedule or stop timers. It must not block.
type timers struct {
	mu   sync.Mutex
	due  timerHeap
	wake chan struct{} // a new earliest deadline; buffered
	done chan struct{} // closed when run has returned
}

// timer is one scheduled function. Its methods may be called from any
// goroutine.
type timer struct {
	t     *timers
	fn    func()
	at    time.Time // guarded by t.mu
	index int       // in t.due; -1 when not scheduled; guarded by t.mu
}

func newTimers() *timers {
	return &timers{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// after schedules fn to run once d has passed.
func (t *timers) after(d time.Duration, fn func()) *timer {
	tm := &timer{t: t, fn: fn, index: -1}
	tm.reset(d)
	return tm
}

// reset (re)schedules tm to run once d has passed from now, whether or not
// it was scheduled or has run.
func (tm *timer) reset(d time.Duration) {
	t := tm.t
	t.mu.Lock()
	tm.at = time.Now().Add(d)
	if tm.index >= 0 {
		heap.Fix(&t.due, tm.index)
	} else {
		heap.Push(&t.due, tm)
	}
	first := t.due[0] == tm
	t.mu.Unlock()
	if first {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// stop unschedules tm and reports whether it was scheduled. A function
// already taken to run still runs: callers check their state in it, as
// with time.Timer.
func (tm *timer) stop() bool {
	t := tm.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if tm.index < 0 {
		return false
	}
	heap.Remove(&t.due, tm.index)
	return true
}

// run runs due functions until stop is closed. It is the timers' only
// goroutine.
func (t *timers) run(stop <-chan struct{}) {
	defer close(t.done)
	clock := time.NewTimer(time.Hour)
	defer clock.Stop()
	for {
		select {
		case <-stop:
			return
		default:
		}
		fn, wait := t.next()
		if fn != nil {
			fn()
			continue
		}
		clock.Reset(wait)
		select {
		case <-stop:
			return
		case <-t.wake:
		case <-clock.C:
		}
	}
}

// next takes the earliest timer if it is due, or says how long until it is.
func (t *timers) next() (fn func(), wait time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.due) == 0 {
		return nil, time.Hour
	}
	if wait = time.Until(t.due[0].at); wait > 0 {
		return nil, wait
	}
	return heap.Pop(&t.due).(*timer).fn, 0
}

// timerHeap orders timers by deadline.
type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	tm := x.(*timer)
	tm.index = len(*h)
	*h = append(*h, tm)
}
func (h *timerHeap) Pop() any {
	old := *h
	tm := old[len(old)-1]
	old[len(old)-1] = nil
	tm.index = -1
	*h = old[:len(old)-1]
	return tm
}
