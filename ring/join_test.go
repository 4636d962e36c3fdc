package ring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// loopbackAddr returns a gossip address on a loopback IP of its own
// (127.x.y.1), so that a test can stop a member and start another one at
// the same address without racing other tests for the port.
func loopbackAddr() string {
	return fmt.Sprintf("127.%d.%d.1:7946", 20+rand.IntN(200), 1+rand.IntN(250))
}

// seedConfig returns a test config bound to addr.
func seedConfig(name, addr string) Config {
	c := testConfig(name)
	c.BindAddr = addr
	return c
}

func TestResolveSeed(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		seed string
		want []string
	}{
		{"10.1.2.3:7946", []string{"10.1.2.3:7946"}},
		{"[::1]:7946", []string{"[::1]:7946"}},
		{"[0:0::1]:80", []string{"[::1]:80"}},
	} {
		got, err := resolveSeed(ctx, tc.seed)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("resolveSeed(%q) = %v, %v; want %v", tc.seed, got, err, tc.want)
		}
	}
	got, err := resolveSeed(ctx, "localhost:7946")
	if err != nil || !slices.Contains(got, "127.0.0.1:7946") {
		t.Errorf("resolveSeed(localhost) = %v, %v; want 127.0.0.1:7946 among them", got, err)
	}
	if got, err := resolveSeed(ctx, "no-port"); err == nil {
		t.Errorf("resolveSeed(no-port) = %v, nil", got)
	}
	if got, err := resolveSeed(ctx, "name.invalid:7946"); err == nil {
		t.Errorf("resolveSeed(name.invalid) = %v, nil", got)
	}
}

func TestSeedsValidated(t *testing.T) {
	for _, seeds := range [][]string{{"no-port"}, {":7946"}, {"host:"}} {
		c := testConfig("x")
		c.Seeds = seeds
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(Seeds: %q) = %v, want ErrInvalidConfig", seeds, err)
		}
	}
}

// TestJoinSeedsRetries starts a node whose seed is not running yet: the
// first attempt fails, the node keeps trying and joins once the seed starts.
func TestJoinSeedsRetries(t *testing.T) {
	addr := loopbackAddr()
	rec := &recorder{}
	cfg := testConfig("joiner")
	cfg.Seeds = []string{addr}
	cfg.Logger = slog.New(rec)
	j := newTestRing(t, cfg)
	if j.Joined() {
		t.Fatal("Joined before any join")
	}
	err := j.JoinSeeds(context.Background())
	if !errors.Is(err, ErrJoin) {
		t.Fatalf("JoinSeeds with the seed down = %v, want ErrJoin", err)
	}
	if !j.Joining() || j.Joined() {
		t.Fatalf("Joining = %v, Joined = %v after a failed first attempt", j.Joining(), j.Joined())
	}
	if err := j.JoinSeeds(context.Background()); err != nil {
		t.Fatalf("second JoinSeeds = %v, want nil", err)
	}
	// Several attempts fail: each one is logged once by the ring, and
	// memberlist's own line per address is demoted to Debug.
	waitFor(t, 5*time.Second, "three failed attempts", func() bool {
		return rec.count("joining the cluster failed; retrying") >= 2
	})
	rec.mu.Lock()
	for _, r := range rec.records {
		if r.Level >= slog.LevelWarn && r.Message != "joining the cluster failed; retrying" &&
			r.Message != "joining the cluster failed; retrying in the background" {
			t.Errorf("unexpected %v record %q", r.Level, r.Message)
		}
	}
	rec.mu.Unlock()

	seed := newTestRing(t, seedConfig("seed", addr))
	waitConverged(t, []*Ring{j, seed}, names(j, seed))
	waitFor(t, 5*time.Second, "the join to be logged", func() bool {
		return rec.count("joined the cluster") == 1 && !j.Joining()
	})
	if !j.Joined() {
		t.Fatal("Joined = false after joining")
	}
}

// TestJoinSeedsDNS joins a seed given by a host name.
func TestJoinSeedsDNS(t *testing.T) {
	seed := newTestRing(t, testConfig("seed"))
	_, port, _ := splitIPPort(seed.GossipAddr())
	cfg := testConfig("joiner")
	cfg.Seeds = []string{fmt.Sprintf("localhost:%d", port)}
	j := newTestRing(t, cfg)
	if err := j.JoinSeeds(context.Background()); err != nil {
		t.Fatalf("JoinSeeds(localhost) = %v", err)
	}
	if !j.Joined() || j.Joining() {
		t.Fatalf("Joined = %v, Joining = %v", j.Joined(), j.Joining())
	}
	waitConverged(t, []*Ring{j, seed}, names(j, seed))
}

// TestJoinSeedsSelf: a seed list that names only this node (a headless
// service with one pod) is no join; the node joins once another member
// joins it.
func TestJoinSeedsSelf(t *testing.T) {
	addr := loopbackAddr()
	cfg := seedConfig("alone", addr)
	cfg.Seeds = []string{addr}
	a := newTestRing(t, cfg)
	if err := a.JoinSeeds(context.Background()); !errors.Is(err, ErrJoin) {
		t.Fatalf("JoinSeeds(self) = %v, want ErrJoin", err)
	}
	b := newTestRing(t, testConfig("b"))
	if _, err := b.Join(context.Background(), addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the lone seed to count as joined", func() bool {
		return a.Joined() && !a.Joining()
	})
}

func TestJoinSeedsClosed(t *testing.T) {
	cfg := testConfig("x")
	cfg.Seeds = []string{loopbackAddr()}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = r.JoinSeeds(context.Background())
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.JoinSeeds(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("JoinSeeds after Close = %v", err)
	}
	if r.Joining() {
		t.Fatal("still joining after Close")
	}
}
