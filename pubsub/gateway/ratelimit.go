package gateway

import (
	"sync"
	"time"

	cws "github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// Rate limits of joins and publishes: token buckets per connection, made
// on the connection's first join or publish, and per user (Identity.User),
// shared by the user's connections. An operation past a limit gets the
// error reply "rate limited" and the socket stays open; a connection that
// goes on sending refused operations much faster than it is allowed is
// closed (see floodRefusalRate).

const (
	reasonRateLimited = "rate limited"
	reasonFlood       = "rate limited: too many refused messages"

	// A connection may be refused for rate limits floodRefusalBurst times
	// at once, and floodRefusalRate times a second after that; the next
	// refusal closes it with StatusPolicyViolation (1008) and reasonFlood.
	// A client that sends at twice its rate is never closed; one that
	// sends 3,000 publishes a second against a limit of 100 is closed
	// within half a second.
	floodRefusalRate  = 100
	floodRefusalBurst = 1000

	// userIdleTTL is how long the limits of a user without connections are
	// kept, so that reconnecting does not refill them; maxIdleUsers bounds
	// how many such users are kept.
	userIdleTTL  = time.Minute
	maxIdleUsers = 10000
)

// opKind is what a rate limit counts.
type opKind uint8

const (
	opJoin opKind = iota
	opPublish
)

// bucket is the rate and burst of one limit; a zero rate is no limit.
type bucket struct {
	r     rate.Limit
	burst int
}

func (b bucket) on() bool { return b.r > 0 }

func (b bucket) limiter() *rate.Limiter { return rate.NewLimiter(b.r, b.burst) }

// makeBucket returns the bucket of an Options rate and burst, already
// defaulted: a negative rate means no limit.
func makeBucket(r float64, burst int) bucket {
	if r < 0 {
		return bucket{}
	}
	return bucket{r: rate.Limit(r), burst: burst}
}

// userLimits holds the limiters shared by each user's connections.
type userLimits struct {
	join, publish bucket

	mu    sync.Mutex
	users map[string]*userLimit
	idle  int // entries without connections
}

// userLimit is one user's limiters; refs counts the user's connections.
type userLimit struct {
	join, publish *rate.Limiter // nil: no limit
	refs          int
	released      time.Time // when refs fell to 0
}

func newUserLimits(join, publish bucket) *userLimits {
	if !join.on() && !publish.on() {
		return nil
	}
	return &userLimits{join: join, publish: publish, users: make(map[string]*userLimit)}
}

// acquire returns the limits of user for one more connection; release
// gives them back.
func (u *userLimits) acquire(user string) *userLimit {
	u.mu.Lock()
	defer u.mu.Unlock()
	e := u.users[user]
	if e == nil {
		e = &userLimit{}
		if u.join.on() {
			e.join = u.join.limiter()
		}
		if u.publish.on() {
			e.publish = u.publish.limiter()
		}
		u.users[user] = e
	} else if e.refs == 0 {
		u.idle--
	}
	e.refs++
	return e
}

func (u *userLimits) release(user string, e *userLimit) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if e.refs--; e.refs > 0 {
		return
	}
	e.released = time.Now()
	if u.idle++; u.idle > maxIdleUsers {
		u.sweepLocked(e.released)
	}
}

// sweepLocked forgets the users without connections for userIdleTTL, and
// if that leaves more than half of maxIdleUsers, as many others as needed.
func (u *userLimits) sweepLocked(now time.Time) {
	for name, e := range u.users {
		if e.refs == 0 && now.Sub(e.released) >= userIdleTTL {
			delete(u.users, name)
			u.idle--
		}
	}
	for name, e := range u.users {
		if u.idle <= maxIdleUsers/2 {
			break
		}
		if e.refs == 0 {
			delete(u.users, name)
			u.idle--
		}
	}
}

// size returns how many users have limiters, for tests.
func (u *userLimits) size() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.users)
}

// allow takes a token of op from the connection's and the user's limits,
// or refuses f with "rate limited" and reports false. It runs on the
// connection's worker, which owns the connection's limiters.
func (c *conn) allow(op opKind, f *frame) bool {
	h := c.h
	b, lim := h.joinBucket, &c.joinLim
	if op == opPublish {
		b, lim = h.publishBucket, &c.publishLim
	}
	ok := true
	if b.on() {
		if *lim == nil {
			*lim = b.limiter()
		}
		ok = (*lim).Allow()
	}
	if ok && c.user != nil {
		ul := c.user.join
		if op == opPublish {
			ul = c.user.publish
		}
		ok = ul == nil || ul.Allow()
	}
	if ok {
		return true
	}
	select {
	case <-c.done:
		return false // closing: whatever was queued is dropped
	default:
	}
	if op == opPublish {
		h.stats.rateLimitedPublishes.Add(1)
	} else {
		h.stats.rateLimitedJoins.Add(1)
	}
	h.log.Info("gateway: rate limited", "kind", "rate-limit", "conn", c.id, "remote", c.remote,
		"user", c.identity.User, "topic", f.topic, "event", f.event)
	if c.refusals == nil {
		c.refusals = rate.NewLimiter(floodRefusalRate, floodRefusalBurst)
	}
	if !c.refusals.Allow() {
		h.stats.floodClosed.Add(1)
		h.log.Warn("gateway: closing a connection that floods past its rate limits", "kind", "flood",
			"conn", c.id, "remote", c.remote, "user", c.identity.User)
		c.shutdown(cws.StatusPolicyViolation, reasonFlood, true)
		return false
	}
	c.refuseReason(f, reasonRateLimited)
	return false
}
