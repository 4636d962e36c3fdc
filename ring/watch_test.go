package ring

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestWatchCoalesces(t *testing.T) {
	r := &Ring{watchers: make(map[uint64]chan *View)}
	a, cancelA := r.Watch()
	b, cancelB := r.Watch()
	defer cancelB()
	for i := range uint64(5) {
		r.publish(&View{version: i + 1})
	}
	for _, ch := range []<-chan *View{a, b} {
		if len(ch) != 1 {
			t.Fatalf("watcher holds %d views", len(ch))
		}
		if v := <-ch; v.Version() != 5 {
			t.Fatalf("watcher got version %d, want the latest (5)", v.Version())
		}
	}
	if r.View().Version() != 5 {
		t.Fatalf("View() = %d", r.View().Version())
	}
	cancelA()
	cancelA()
	r.publish(&View{version: 6})
	if len(a) != 0 {
		t.Fatal("cancelled watcher received a view")
	}
	if v := <-b; v.Version() != 6 {
		t.Fatalf("remaining watcher got %d", v.Version())
	}
}

func TestWatchCluster(t *testing.T) {
	seed := newTestRing(t, testConfig("node-0"))
	stuck, cancelStuck := seed.Watch() // never read until the end
	defer cancelStuck()
	live, cancelLive := seed.Watch()
	defer cancelLive()

	var (
		mu       sync.Mutex
		versions []uint64
		lastLen  int
	)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case v := <-live:
				mu.Lock()
				versions = append(versions, v.Version())
				lastLen = v.Len()
				mu.Unlock()
			}
		}
	}()
	defer wg.Wait()
	defer close(done)

	rings := []*Ring{seed}
	for i := 1; i <= 3; i++ {
		r := newTestRing(t, testConfig(fmt.Sprintf("node-%d", i)))
		if _, err := r.Join(context.Background(), seed.GossipAddr()); err != nil {
			t.Fatal(err)
		}
		rings = append(rings, r)
	}
	// The watcher that never reads does not hold up membership.
	waitConverged(t, rings, names(rings...))
	final := seed.View().Version()
	waitFor(t, 5*time.Second, "the live watcher to see the final view", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(versions) > 0 && versions[len(versions)-1] == final && lastLen == 4
	})
	mu.Lock()
	for i := 1; i < len(versions); i++ {
		if versions[i] <= versions[i-1] {
			t.Fatalf("versions not increasing: %v", versions)
		}
	}
	mu.Unlock()

	// The stuck watcher holds one view: the latest, not the first.
	var got *View
	waitFor(t, 5*time.Second, "the stuck watcher to hold the final view", func() bool {
		select {
		case got = <-stuck:
		default:
		}
		return got != nil && got.Version() == final
	})
	if got.Len() != 4 {
		t.Fatalf("stuck watcher's view has %d members", got.Len())
	}
	if final < 4 {
		t.Fatalf("final version %d: expected at least 4 changes", final)
	}

	// After cancel, nothing more is delivered.
	cancelStuck()
	if err := rings[3].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the live watcher to see the failure", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return lastLen == 3
	})
	if len(stuck) != 0 {
		t.Fatal("cancelled watcher received a view")
	}
}
