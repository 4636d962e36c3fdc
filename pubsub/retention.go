package pubsub

import (
	"sync/atomic"
	"time"
)

// retention is what a node keeps of a topic's state and for how long:
// the bounds of a history (HistorySize, HistoryTTL), how long a topic with
// nothing to keep lingers (IdleTopicTTL), and the coarse clock they are
// measured by. The owner and replica tables share one.
type retention struct {
	histSize int
	histTTL  time.Duration
	idleTTL  time.Duration
	clock    atomic.Int64 // unix nanos, refreshed every reconcileInterval: see now
}

func newRetention(cfg Config) *retention {
	r := &retention{histSize: cfg.HistorySize, histTTL: cfg.HistoryTTL, idleTTL: cfg.IdleTopicTTL}
	r.tick(time.Now())
	return r
}

// newHistory returns an empty history with the configured bounds.
func (r *retention) newHistory() history { return newHistory(r.histSize, r.histTTL) }

// tick refreshes the clock.
func (r *retention) tick(t time.Time) { r.clock.Store(t.UnixNano()) }

// now returns a coarse clock for history timestamps: reading the system
// clock for every message costs more than the message on some machines, and
// history expiry is only as precise as reconcile, which runs with the same
// period.
func (r *retention) now() int64 { return r.clock.Load() }

// idle reports whether a topic's state (an owner's or a replica's) holds
// nothing worth keeping: no subscriber node, nothing in history, and no
// activity for IdleTopicTTL. now and active are readings of now(), so
// the TTL holds to within a reconcile interval.
func (r *retention) idle(now, active int64, nodes int, h *history) bool {
	ttl := r.idleTTL
	return ttl >= 0 && nodes == 0 && h.n == 0 && now-active >= int64(ttl)
}
