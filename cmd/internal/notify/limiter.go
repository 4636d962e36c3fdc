package notify

import (
	"sync"
	"time"
)

// limiter counts attempts per key in fixed windows: at most n per window.
// It holds at most maxKeys keys; when full it forgets the keys whose
// window has ended, and if none has, refuses new keys until one does, so
// that a flood of distinct keys cannot grow it without bound.
type limiter struct {
	n      int
	window time.Duration

	mu   sync.Mutex
	keys map[string]*window
}

// window is one key's count in the window that started at start.
type window struct {
	start time.Time
	count int
}

// maxKeys bounds a limiter's memory.
const maxKeys = 100_000

func newLimiter(n int, w time.Duration) *limiter {
	return &limiter{n: n, window: w, keys: make(map[string]*window)}
}

// allow counts an attempt for key at now and reports whether it is within
// the limit. It also returns how long until the key's window ends.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.keys[key]
	if w == nil || now.Sub(w.start) >= l.window || now.Before(w.start) {
		if w == nil && len(l.keys) >= maxKeys {
			l.sweep(now)
			if len(l.keys) >= maxKeys {
				return false, l.window
			}
		}
		w = &window{start: now}
		l.keys[key] = w
	}
	w.count++
	return w.count <= l.n, w.start.Add(l.window).Sub(now)
}

// sweep forgets the keys whose window has ended.
func (l *limiter) sweep(now time.Time) {
	for k, w := range l.keys {
		if now.Sub(w.start) >= l.window {
			delete(l.keys, k)
		}
	}
}
