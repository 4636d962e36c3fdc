package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// The log sampler. A flood of refused connections (a port scan, a peer misconfigured in a loop) must not become a flood of log lines:
// the first logSampleBurst lines of a kind are logged, then the rest of the
// interval's are counted and dropped, and the next line logged says how many
// were.
//
// The sampler is a copy of the one in package ring (for memberlist's logs) and package gateway (for refused upgrades): the packages share
// nothing else, and each keeps its own small helper rather than depend on
// the other.

const (
	// logSampleInterval is the least time between two lines of one kind.
	logSampleInterval = 10 * time.Second
	// logSampleBurst is how many lines of a kind are logged per interval.
	logSampleBurst = 3
	// maxSampledKinds bounds the kinds a sampler tracks; kinds beyond it
	// share one entry.
	maxSampledKinds = 64
	// otherKind is the kind of every line once maxSampledKinds are tracked.
	otherKind = "\x00other"
)

// logSampler decides which lines of a repeating kind are logged. It is safe
// for concurrent use.
type logSampler struct {
	interval time.Duration
	burst    int

	mu    sync.Mutex
	now   func() time.Time
	kinds map[string]*sampledKind
}

type sampledKind struct {
	start      time.Time // when the kind's current interval began
	logged     int       // lines of the kind logged in it
	suppressed int       // lines of the kind dropped in it
}

// newLogSampler returns a sampler that logs burst lines of a kind per
// interval, reading the time from now (time.Now if nil).
func newLogSampler(interval time.Duration, burst int, now func() time.Time) *logSampler {
	if now == nil {
		now = time.Now
	}
	return &logSampler{interval: interval, burst: max(burst, 1), now: now, kinds: make(map[string]*sampledKind)}
}

// allow reports whether a line of kind is to be logged now and, if so, how
// many lines of the kind were suppressed since the previous one was logged,
// and how long ago that was.
func (s *logSampler) allow(kind string) (ok bool, suppressed int, since time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	k := s.kinds[kind]
	if k == nil {
		if len(s.kinds) >= maxSampledKinds {
			kind = otherKind
			k = s.kinds[kind]
		}
		if k == nil {
			s.kinds[kind] = &sampledKind{start: now, logged: 1}
			return true, 0, 0
		}
	}
	if since = now.Sub(k.start); since >= s.interval {
		suppressed = k.suppressed
		k.start, k.logged, k.suppressed = now, 1, 0
		return true, suppressed, since
	}
	if k.logged < s.burst {
		k.logged++
		return true, 0, 0
	}
	k.suppressed++
	return false, 0, 0
}

// setClock makes s read the time from now.
func (s *logSampler) setClock(now func() time.Time) {
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

// log logs msg with args at level on l unless a line of kind was logged
// less than the interval ago. A line that follows suppressed ones says how
// many, in its message and as the attribute "suppressed".
func (s *logSampler) log(l *slog.Logger, level slog.Level, kind, msg string, args ...any) {
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	ok, n, since := s.allow(kind)
	if !ok {
		return
	}
	if n > 0 {
		msg = fmt.Sprintf("%s (and %d more like it in the last %v)", msg, n, since.Round(time.Second))
		args = append(args, "suppressed", n)
	}
	l.Log(ctx, level, msg, args...)
}
