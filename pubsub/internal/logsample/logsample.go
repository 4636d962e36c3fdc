// Package logsample is a [slog.Handler] that samples repeated log records,
// so that a flood of one kind of line (a port scan of the peer port,
// garbage on the gossip port, a client retrying with a bad token) does not
// become a flood of log lines.
//
// Only records that carry a "kind" attribute are sampled: the lines a flood
// can repeat (a refused connection, a garbage packet, a refused upgrade)
// carry one, and every other line (a member joined, a topic moved) passes
// untouched, however many come. Records are sampled by key: their level,
// their message and their kind. Of each key the first
// Burst records of an interval pass; the rest of the interval's are counted
// and dropped, and the next record of the key that passes says how many
// were, in its message ("... (and 997 more like it in the last 10s)") and
// as the attribute "suppressed".
//
// Package pubsub wraps the logger of a node (which it hands to its
// transport and ring) in one sampling handler; package gateway wraps the
// logger of a Handler.
package logsample

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

const (
	// DefaultInterval is the interval of Options.Interval zero.
	DefaultInterval = 10 * time.Second
	// DefaultBurst is the burst of Options.Burst zero.
	DefaultBurst = 3
	// MaxKeys bounds the keys a sampler tracks: records of further keys
	// share one key, until tracked keys expire.
	MaxKeys = 64

	// KindKey is the attribute that tells records of one message apart.
	KindKey = "kind"
	// SuppressedKey is the attribute that counts the records dropped
	// before the one that carries it.
	SuppressedKey = "suppressed"

	// otherKey is the key of every record once MaxKeys keys are tracked.
	otherKey = "\x00other"
)

// Options configures a sampling handler. The zero value means the
// defaults.
type Options struct {
	// Interval is the period over which Burst records of a key pass.
	// Default DefaultInterval.
	Interval time.Duration
	// Burst is how many records of a key pass per interval. Default
	// DefaultBurst.
	Burst int
	// Now reads the time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// New returns a handler that passes to h the records that the sampling
// lets through. Enabled, and so the level, is h's: records below it are
// neither passed nor counted. Handlers derived from the returned one by
// WithAttrs and WithGroup share its sampling state, so that the loggers
// derived from one logger share one budget per key.
//
// The handler is safe for concurrent use if h is.
func New(h slog.Handler, o Options) slog.Handler {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &handler{next: h, s: &sampler{interval: o.Interval, burst: o.Burst, now: o.Now, keys: make(map[string]*entry)}}
}

// handler is a sampling slog.Handler. Its fields are never modified.
type handler struct {
	next slog.Handler
	s    *sampler
	// kind is the value of a "kind" attribute added by WithAttrs outside
	// any group; a record's own "kind" takes precedence.
	kind    string
	inGroup bool
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	kind := h.kind
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == KindKey {
			kind = a.Value.String()
			return false
		}
		return true
	})
	if kind == "" {
		return h.next.Handle(ctx, r)
	}
	ok, n, since := h.s.allow(r.Level.String() + "\x00" + r.Message + "\x00" + kind)
	if !ok {
		return nil
	}
	if n > 0 {
		msg := fmt.Sprintf("%s (and %d more like it in the last %v)", r.Message, n, since.Round(time.Second))
		nr := slog.NewRecord(r.Time, r.Level, msg, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			nr.AddAttrs(a)
			return true
		})
		nr.AddAttrs(slog.Int(SuppressedKey, n))
		r = nr
	}
	return h.next.Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := *h
	c.next = h.next.WithAttrs(attrs)
	if !h.inGroup {
		for _, a := range attrs {
			if a.Key == KindKey {
				c.kind = a.Value.String()
			}
		}
	}
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.inGroup = true
	return &c
}

// sampler decides which records of a key pass. It is safe for concurrent
// use.
type sampler struct {
	interval time.Duration
	burst    int
	now      func() time.Time

	mu    sync.Mutex
	keys  map[string]*entry
	swept time.Time // when expired keys were last dropped
}

// entry is the state of one key.
type entry struct {
	start      time.Time // when the key's current interval began
	passed     int       // records of the key passed in it
	suppressed int       // records of the key dropped in it
}

// allow reports whether a record of key passes now and, if so, how many
// records of the key were dropped since the previous one passed, and how
// long ago that interval began.
func (s *sampler) allow(key string) (ok bool, suppressed int, since time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e := s.keys[key]
	if e == nil {
		if len(s.keys) >= MaxKeys {
			s.sweepLocked(now)
		}
		if len(s.keys) >= MaxKeys {
			key = otherKey
			e = s.keys[key]
		}
		if e == nil {
			s.keys[key] = &entry{start: now, passed: 1}
			return true, 0, 0
		}
	}
	if since = now.Sub(e.start); since >= s.interval {
		suppressed = e.suppressed
		e.start, e.passed, e.suppressed = now, 1, 0
		return true, suppressed, since
	}
	if e.passed < s.burst {
		e.passed++
		return true, 0, 0
	}
	e.suppressed++
	return false, 0, 0
}

// sweepLocked drops, at most once per interval, the keys whose interval
// is over with nothing dropped: their next record passes whether they are
// tracked or not. Keys with a count to report stay.
func (s *sampler) sweepLocked(now time.Time) {
	if now.Sub(s.swept) < s.interval {
		return
	}
	s.swept = now
	for k, e := range s.keys {
		if e.suppressed == 0 && now.Sub(e.start) >= s.interval {
			delete(s.keys, k)
		}
	}
}
