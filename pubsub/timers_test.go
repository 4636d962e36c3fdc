package pubsub

import (
	"sync"
	"testing"
	"time"
)

func TestTimersRunInOrderOnOneGoroutine(t *testing.T) {
	tm := newTimers()
	stop := make(chan struct{})
	go tm.run(stop)
	defer func() { close(stop); <-tm.done }()

	var (
		mu  sync.Mutex
		got []int
	)
	done := make(chan struct{})
	add := func(i int) func() {
		return func() {
			mu.Lock()
			got = append(got, i)
			n := len(got)
			mu.Unlock()
			if n == 3 {
				close(done)
			}
		}
	}
	tm.after(30*time.Millisecond, add(3))
	tm.after(10*time.Millisecond, add(1))
	second := tm.after(time.Hour, add(2))
	second.reset(20 * time.Millisecond)
	never := tm.after(15*time.Millisecond, add(99))
	if !never.stop() {
		t.Fatal("stop of a scheduled timer reported false")
	}
	if never.stop() {
		t.Fatal("second stop reported true")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("timers did not run")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("ran %v, want [1 2 3]", got)
	}
}

func TestTimersStopWithPendingWork(t *testing.T) {
	tm := newTimers()
	stop := make(chan struct{})
	go tm.run(stop)
	ran := make(chan struct{}, 1)
	tm.after(time.Hour, func() { ran <- struct{}{} })
	close(stop)
	select {
	case <-tm.done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after stop")
	}
	select {
	case <-ran:
		t.Fatal("a timer ran after stop")
	default:
	}
}
