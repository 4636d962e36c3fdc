package gateway

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestLogSamplerAllow(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	s := newLogSampler(10*time.Second, 2, clock.Now)
	check := func(kind string, wantOK bool, wantSuppressed int, wantSince time.Duration) {
		t.Helper()
		ok, n, since := s.allow(kind)
		if ok != wantOK || n != wantSuppressed || since != wantSince {
			t.Fatalf("allow(%q) = %v, %d, %v; want %v, %d, %v", kind, ok, n, since, wantOK, wantSuppressed, wantSince)
		}
	}
	check("a", true, 0, 0) // the first lines of a kind are logged
	clock.advance(time.Millisecond)
	check("a", true, 0, 0)
	for range 1523 {
		clock.advance(time.Millisecond)
		check("a", false, 0, 0)
	}
	check("b", true, 0, 0) // kinds are sampled apart
	clock.advance(10*time.Second - 1524*time.Millisecond)
	check("a", true, 1523, 10*time.Second)
	clock.advance(time.Second)
	check("a", true, 0, 0) // the burst of the new interval
	check("a", false, 0, 0)
	clock.advance(time.Minute)
	check("a", true, 1, time.Minute+time.Second)
	clock.advance(time.Minute)
	check("a", true, 0, time.Minute) // nothing suppressed in between
}

func TestLogSamplerBoundsKinds(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	s := newLogSampler(time.Second, 1, clock.Now)
	for i := range maxSampledKinds {
		if ok, _, _ := s.allow("kind" + strconv.Itoa(i)); !ok {
			t.Fatalf("first line of kind %d suppressed", i)
		}
	}
	// Kinds past the bound share one entry.
	if ok, _, _ := s.allow("new1"); !ok {
		t.Fatal("first line past the bound suppressed")
	}
	if ok, _, _ := s.allow("new2"); ok {
		t.Fatal("second line past the bound logged")
	}
	if len(s.kinds) != maxSampledKinds+1 {
		t.Fatalf("%d kinds tracked, want %d", len(s.kinds), maxSampledKinds+1)
	}
}

func TestLogSamplerLog(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	s := newLogSampler(10*time.Second, 1, clock.Now)
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for range 1000 {
		s.log(l, slog.LevelWarn, "refused", "refused a connection", "remote", "127.0.0.1:1")
		s.log(l, slog.LevelInfo, "info", "below the level") // neither logged nor counted
		clock.advance(time.Millisecond)
	}
	clock.advance(9 * time.Second)
	s.log(l, slog.LevelWarn, "refused", "refused a connection", "remote", "127.0.0.1:2")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	if want := `msg="refused a connection (and 999 more like it in the last 10s)" remote=127.0.0.1:2 suppressed=999`; !strings.Contains(lines[1], want) {
		t.Fatalf("second line %q, want it to contain %q", lines[1], want)
	}
	if ok, _, _ := s.allow("info"); !ok {
		t.Fatal("a line below the level was counted")
	}
}
