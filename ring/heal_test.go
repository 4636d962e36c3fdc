package ring

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// TestHealRestartedSeed stops the seed without leaving and starts it again
// at the same address, alone: the members that joined through it rejoin it,
// and the three form one cluster again.
func TestHealRestartedSeed(t *testing.T) {
	addr := loopbackAddr()
	seed, err := New(seedConfig("seed", addr))
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	var rings []*Ring
	for _, name := range []string{"b", "c"} {
		cfg := testConfig(name)
		cfg.Seeds = []string{addr}
		r := newTestRing(t, cfg)
		if err := r.JoinSeeds(context.Background()); err != nil {
			t.Fatalf("%s: JoinSeeds = %v", name, err)
		}
		rings = append(rings, r)
	}
	waitConverged(t, append([]*Ring{seed}, rings...), names(append([]*Ring{seed}, rings...)...))

	if err := seed.Close(); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, rings, names(rings...))
	again := newTestRing(t, seedConfig("seed", addr))
	start := time.Now()
	all := append([]*Ring{again}, rings...)
	waitConverged(t, all, names(all...))
	t.Logf("restarted seed merged back in %v", time.Since(start))
	checkSameOwners(t, all, topics(500))
}

// TestHealLostMember restarts a member that failed, alone and without
// seeds: the survivors reconnect to it. A member that left gracefully is
// not kept for healing.
func TestHealLostMember(t *testing.T) {
	addrB, addrC := loopbackAddr(), loopbackAddr()
	rec := &recorder{}
	acfg := testConfig("a")
	acfg.Logger = slog.New(rec)
	a := newTestRing(t, acfg)
	b, err := New(seedConfig("b", addrB))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := New(seedConfig("c", addrC))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, r := range []*Ring{b, c} {
		if _, err := r.Join(ctx, a.GossipAddr()); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, []*Ring{a, b, c}, []string{"a", "b", "c"})

	if err := c.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, []*Ring{a}, []string{"a"})
	if !rec.has(slog.LevelInfo, "member left", "c") {
		t.Fatal("c's leave not logged as one")
	}

	// Healing keeps b, which failed, and not c, which left.
	a.mu.Lock()
	_, bLost := a.lost["b"]
	_, cLost := a.lost["c"]
	a.mu.Unlock()
	if !bLost || cLost {
		t.Fatalf("members kept for healing: b %v (want true), c %v (want false)", bLost, cLost)
	}

	// b comes back alone and is reconnected; healing never takes c up.
	// (Whether a node started again at c's address rejoins is memberlist's
	// business: it keeps gossiping to a departed address for a while, and
	// a node there refutes that it left. That is not healing.)
	b2 := newTestRing(t, seedConfig("b", addrB))
	waitConverged(t, []*Ring{a, b2}, []string{"a", "b"})
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		_, cLost := a.lost["c"]
		a.mu.Unlock()
		if cLost {
			t.Fatal("healing took up a member that left")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHealOff: a negative ReconnectInterval turns healing off.
func TestHealOff(t *testing.T) {
	addr := loopbackAddr()
	cfg := testConfig("a")
	cfg.ReconnectInterval = -1
	a := newTestRing(t, cfg)
	b, err := New(seedConfig("b", addr))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Join(context.Background(), a.GossipAddr()); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, []*Ring{a, b}, []string{"a", "b"})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, []*Ring{a}, []string{"a"})
	a.mu.Lock()
	lost := len(a.lost)
	a.mu.Unlock()
	if lost != 0 {
		t.Fatalf("%d lost members kept with healing off", lost)
	}
}
