package logsample

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// newSampler returns the sampler of a new handler.
func newSampler(interval time.Duration, burst int, now func() time.Time) *sampler {
	return New(slog.DiscardHandler, Options{Interval: interval, Burst: burst, Now: now}).(*handler).s
}

func TestSamplerAllow(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	s := newSampler(10*time.Second, 2, clock.Now)
	check := func(key string, wantOK bool, wantSuppressed int, wantSince time.Duration) {
		t.Helper()
		ok, n, since := s.allow(key)
		if ok != wantOK || n != wantSuppressed || since != wantSince {
			t.Fatalf("allow(%q) = %v, %d, %v; want %v, %d, %v", key, ok, n, since, wantOK, wantSuppressed, wantSince)
		}
	}
	check("a", true, 0, 0) // the first records of a key pass
	clock.advance(time.Millisecond)
	check("a", true, 0, 0)
	for range 1523 {
		clock.advance(time.Millisecond)
		check("a", false, 0, 0)
	}
	check("b", true, 0, 0) // keys are sampled apart
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

func TestSamplerBoundsKeys(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	s := newSampler(time.Second, 1, clock.Now)
	for i := range MaxKeys {
		if ok, _, _ := s.allow("key" + strconv.Itoa(i)); !ok {
			t.Fatalf("first record of key %d suppressed", i)
		}
	}
	// Keys past the bound share one entry.
	if ok, _, _ := s.allow("new1"); !ok {
		t.Fatal("first record past the bound suppressed")
	}
	if ok, _, _ := s.allow("new2"); ok {
		t.Fatal("second record past the bound passed")
	}
	if len(s.keys) != MaxKeys+1 {
		t.Fatalf("%d keys tracked, want %d", len(s.keys), MaxKeys+1)
	}

	// Once their interval is over, keys with nothing to report make room
	// for new ones; the shared key keeps its count.
	clock.advance(time.Second)
	if ok, _, _ := s.allow("new3"); !ok {
		t.Fatal("new key after the interval suppressed")
	}
	if len(s.keys) != 2 || s.keys["new3"] == nil || s.keys[otherKey] == nil {
		t.Fatalf("keys after the sweep: %v", s.keys)
	}
	if ok, n, _ := s.allow("new4"); !ok || n != 0 {
		t.Fatalf("allow(new4) = %v, %d; want its own key", ok, n)
	}
}

func TestHandlerSamples(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	var buf bytes.Buffer
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}), Options{Burst: 1, Now: clock.Now})
	l := slog.New(h)
	for range 1000 {
		l.Warn("refused a connection", "kind", "refused", "remote", "127.0.0.1:1")
		l.Info("below the level", "kind", "refused") // neither logged nor counted
		clock.advance(time.Millisecond)
	}
	clock.advance(9 * time.Second)
	l.Warn("refused a connection", "kind", "refused", "remote", "127.0.0.1:2")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	if want := `msg="refused a connection (and 999 more like it in the last 10s)" kind=refused remote=127.0.0.1:2 suppressed=999`; !strings.Contains(lines[1], want) {
		t.Fatalf("second line %q, want it to contain %q", lines[1], want)
	}
	if ok, _, _ := h.(*handler).s.allow("INFO\x00below the level\x00refused"); !ok {
		t.Fatal("a record below the level was counted")
	}
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelWarn) {
		t.Fatal("Enabled does not follow the wrapped handler")
	}
}

// count returns how many lines of out contain s.
func count(out *bytes.Buffer, s string) int { return strings.Count(out.String(), s) }

// Records are keyed by level, message and kind attribute: keys do not
// share a budget. Records without a kind are never sampled.
func TestHandlerKeys(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(New(slog.NewTextHandler(&buf, nil), Options{Burst: 2}))
	for range 10 {
		l.Warn("refused", "kind", "a", "remote", "x")
		l.Warn("refused", "kind", "b")
		l.Error("refused", "kind", "a")
		l.Warn("other message")
		l.With("kind", "c").Warn("refused")
		l.With("kind", "c").Warn("refused", "kind", "d") // the record's kind wins
		l.WithGroup("g").With("kind", "e").Warn("refused")
	}
	for _, want := range []string{
		"level=WARN msg=refused kind=a",
		"level=WARN msg=refused kind=b",
		"level=ERROR msg=refused kind=a",
		"level=WARN msg=refused kind=c\n",
		"level=WARN msg=refused kind=c kind=d",
	} {
		if n := count(&buf, want); n != 2 {
			t.Errorf("%d lines with %q, want 2", n, want)
		}
	}
	// Kindless records pass, every one; a kind inside a group is not the
	// record's kind, so those pass too.
	if n := count(&buf, "msg=\"other message\""); n != 10 {
		t.Errorf("%d lines of a kindless record, want 10", n)
	}
	if n := count(&buf, "g.kind=e"); n != 10 {
		t.Errorf("%d lines with g.kind=e, want 10:\n%s", n, buf.String())
	}
}

// Loggers derived with With and WithGroup share one budget.
func TestDerivedLoggersShareBudget(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(New(slog.NewTextHandler(&buf, nil), Options{}))
	for i := range 10 {
		l.With("node", i).Warn("flood", "kind", "k")
		l.WithGroup("g").Warn("flood", "kind", "k")
	}
	if n := count(&buf, "msg=flood"); n != DefaultBurst {
		t.Fatalf("%d lines, want %d:\n%s", n, DefaultBurst, buf.String())
	}
}

// The handler may be used from many goroutines at once: every record is
// either passed or counted.
func TestHandlerConcurrent(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	sink := &countHandler{}
	l := slog.New(New(sink, Options{Now: clock.Now}))
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			d := l.With("g", g)
			for range each {
				d.Warn("flood", "kind", "k")
				d.Info("other", "kind", strconv.Itoa(g)) // other keys, concurrently
			}
		})
	}
	wg.Wait()
	clock.advance(DefaultInterval)
	l.Warn("flood", "kind", "k")
	if got, want := sink.passed.Load(), int64(DefaultBurst+1); got != want {
		t.Fatalf("%d records passed, want %d", got, want)
	}
	if got, want := sink.suppressed.Load(), int64(goroutines*each-DefaultBurst); got != want {
		t.Fatalf("%d records reported dropped, want %d", got, want)
	}
}

// countHandler counts the warnings it handles and the drops they report.
type countHandler struct {
	passed, suppressed atomic.Int64
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level != slog.LevelWarn {
		return nil
	}
	h.passed.Add(1)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == SuppressedKey {
			h.suppressed.Add(a.Value.Int64())
		}
		return true
	})
	return nil
}

func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }
