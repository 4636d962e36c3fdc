package ring

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// maxReconnectsPerRound bounds the addresses one healing round contacts.
// One answer is enough to merge two sides: a push/pull exchange carries the
// whole membership of both.
const maxReconnectsPerRound = 4

// maxReconnectBackoff is how many reconnect intervals a target that keeps
// failing waits at most between two attempts.
const maxReconnectBackoff = 4

// lostMember is a member that failed (it did not leave gracefully), kept
// so that healing can try to reach it again.
type lostMember struct {
	name     string
	addr     string
	failedAt time.Time
	next     time.Time     // earliest next attempt
	wait     time.Duration // wait after the next failed attempt
}

// noteFailed records that member name, at gossip address addr, failed.
// Called with r.mu held.
func (r *Ring) noteFailed(name, addr string, now time.Time) {
	if r.set.ReconnectInterval < 0 || name == r.set.NodeName || addr == "" {
		return
	}
	iv := r.set.ReconnectInterval
	r.lost[name] = &lostMember{name: name, addr: addr, failedAt: now, next: now.Add(iv), wait: iv}
}

// heal runs the healing rounds until Close. Each round, every
// ReconnectInterval, tries to reach the seeds that are not alive members
// (once this node has joined) and the failed members whose wait is over.
//
// Memberlist alone never merges two sides of a healed partition once each
// has declared the other dead and stopped gossiping to it, nor a seed that
// was restarted and formed a cluster of its own: neither side knows a live
// member of the other. A push/pull exchange with any one of them merges the
// two memberships; the members on each side that were declared dead then
// refute it and are alive again everywhere.
func (r *Ring) heal() {
	defer r.wg.Done()
	iv := r.set.ReconnectInterval
	seedNext := make(map[string]*lostMember)
	t := time.NewTimer(jitter(iv))
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		if r.leaving.Load() {
			return
		}
		r.healRound(seedNext)
		t.Reset(jitter(iv))
	}
}

// healRound makes one healing round; seedNext holds the seed addresses'
// backoff between rounds.
func (r *Ring) healRound(seedNext map[string]*lostMember) {
	now := time.Now()
	alive := r.aliveAddrs()
	targets := r.dueLost(now, alive)
	if len(r.set.Seeds) > 0 && r.Joined() && !r.Joining() {
		targets = append(targets, r.dueSeeds(now, alive, seedNext)...)
	}
	if len(targets) == 0 {
		return
	}
	slices.SortFunc(targets, func(a, b *lostMember) int { return cmp.Compare(a.next.UnixNano(), b.next.UnixNano()) })
	if len(targets) > maxReconnectsPerRound {
		targets = targets[:maxReconnectsPerRound]
	}
	limit := time.Duration(maxReconnectBackoff) * r.set.ReconnectInterval
	r.mu.Lock()
	for _, tg := range targets {
		tg.next = now.Add(jitter(tg.wait))
		tg.wait = min(2*tg.wait, limit)
	}
	r.mu.Unlock()
	r.reconnect(targets)
}

// aliveAddrs returns the gossip addresses of the alive members, this node
// included. It reads the member table: the nodes memberlist's Members
// returns are updated in place by its goroutines.
func (r *Ring) aliveAddrs() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	alive := make(map[string]bool, len(r.entries)+1)
	alive[r.gossipAddr] = true
	for _, e := range r.entries {
		alive[e.member.GossipAddr] = true
	}
	return alive
}

// dueLost returns the failed members to try now, and forgets those whose
// reconnect timeout has passed or whose address now belongs to an alive
// member.
func (r *Ring) dueLost(now time.Time, alive map[string]bool) []*lostMember {
	r.mu.Lock()
	defer r.mu.Unlock()
	var due []*lostMember
	for name, lm := range r.lost {
		switch {
		case alive[lm.addr]:
			delete(r.lost, name)
		case now.Sub(lm.failedAt) > r.set.ReconnectTimeout:
			delete(r.lost, name)
			r.log.Info("no longer trying to reach failed member", "member", name, "gossip_addr", lm.addr,
				"failed_for", now.Sub(lm.failedAt).Round(time.Second))
		case !now.Before(lm.next):
			due = append(due, lm)
		}
	}
	return due
}

// dueSeeds returns the seed addresses that are not alive members and whose
// wait is over; seedNext keeps their backoff and forgets seeds that are
// alive.
func (r *Ring) dueSeeds(now time.Time, alive map[string]bool, seedNext map[string]*lostMember) []*lostMember {
	addrs, err := r.resolveSeeds(r.ctx)
	if err != nil {
		r.log.Debug("resolving seeds failed", "seeds", r.set.Seeds, "err", err)
	}
	for addr := range seedNext {
		if alive[addr] || !slices.Contains(addrs, addr) {
			delete(seedNext, addr)
		}
	}
	var due []*lostMember
	for _, addr := range addrs {
		if alive[addr] {
			continue
		}
		s := seedNext[addr]
		if s == nil {
			iv := r.set.ReconnectInterval
			s = &lostMember{addr: addr, failedAt: now, next: now, wait: iv}
			seedNext[addr] = s
		}
		if !now.Before(s.next) {
			due = append(due, s)
		}
	}
	return due
}

// reconnect contacts the targets at once and waits for every attempt; a
// target that is unreachable costs at most the TCP timeout.
func (r *Ring) reconnect(targets []*lostMember) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		merged bool
	)
	for _, tg := range targets {
		wg.Go(func() {
			if r.closed.Load() {
				return
			}
			if _, err := r.ml.Join([]string{tg.addr}); err != nil {
				r.log.Debug("reconnect attempt failed", "member", tg.name, "gossip_addr", tg.addr, "err", err)
				return
			}
			mu.Lock()
			merged = true
			mu.Unlock()
			attrs := []any{"gossip_addr", tg.addr}
			if tg.name != "" {
				attrs = append(attrs, "member", tg.name)
			} else {
				attrs = append(attrs, "seed", true)
			}
			r.log.Info("reconnected to a member out of sight", attrs...)
		})
	}
	wg.Wait()
	if merged {
		r.joined.Store(true)
		r.rebuild()
	}
}
