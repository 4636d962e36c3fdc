package inbox

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// presence keeps the online markers of the users who have a live inbox
// session on this node (Service.SetOnline with an expiry OnlineTTL ahead,
// renewed every OnlineRefresh), and clears a user's marker when their last
// session here ends. The email reminders skip users who are online.
//
// One goroutine, started by newPresence and stopped by close, writes the
// markers, one user at a time: the latest state of a user is what ends up
// written, whatever the order in which sessions come and go.
type presence struct {
	svc     Service
	node    string
	ttl     time.Duration
	refresh time.Duration
	timeout time.Duration
	clock   func() time.Time
	log     *slog.Logger

	mu    sync.Mutex
	users map[string]int      // live sessions per user
	dirty map[string]struct{} // users whose marker is to be written
	wake  chan struct{}       // capacity 1: the writer has work
	done  chan struct{}       // closed by close
	ended chan struct{}       // closed by the writer as it exits
}

func newPresence(svc Service, o Options) *presence {
	p := &presence{
		svc:     svc,
		node:    o.NodeName,
		ttl:     o.OnlineTTL,
		refresh: o.OnlineRefresh,
		timeout: o.DBTimeout,
		clock:   o.Clock,
		log:     o.Logger,
		users:   make(map[string]int),
		dirty:   make(map[string]struct{}),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		ended:   make(chan struct{}),
	}
	go p.run()
	return p
}

// add counts a new session of user; the first one marks them online.
func (p *presence) add(user string) {
	p.mu.Lock()
	p.users[user]++
	first := p.users[user] == 1
	if first {
		p.dirty[user] = struct{}{}
	}
	p.mu.Unlock()
	if first {
		p.kick()
	}
}

// remove uncounts a session of user; the last one clears their marker.
func (p *presence) remove(user string) {
	p.mu.Lock()
	p.users[user]--
	last := p.users[user] <= 0
	if last {
		delete(p.users, user)
		p.dirty[user] = struct{}{}
	}
	p.mu.Unlock()
	if last {
		p.kick()
	}
}

// online returns the number of users with a live session.
func (p *presence) online() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.users)
}

func (p *presence) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// close stops the writer once it has written what is due.
func (p *presence) close() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.ended
}

func (p *presence) run() {
	defer close(p.ended)
	tick := time.NewTicker(p.refresh)
	defer tick.Stop()
	for {
		select {
		case <-p.wake:
			p.flush()
		case <-tick.C:
			p.renew()
		case <-p.done:
			p.flush()
			return
		}
	}
}

// flush writes the markers of the users whose state changed: set if they
// have a live session, cleared otherwise. A user whose state changes
// again meanwhile is marked dirty again, and written at the next wake-up.
func (p *presence) flush() {
	p.mu.Lock()
	users := make([]string, 0, len(p.dirty))
	for u := range p.dirty {
		users = append(users, u)
	}
	clear(p.dirty)
	p.mu.Unlock()
	for _, u := range users {
		p.mu.Lock()
		online := p.users[u] > 0
		p.mu.Unlock()
		p.write(u, online)
	}
}

// renew extends the markers of every user with a live session.
func (p *presence) renew() {
	p.mu.Lock()
	users := make([]string, 0, len(p.users))
	for u := range p.users {
		users = append(users, u)
	}
	p.mu.Unlock()
	for _, u := range users {
		p.write(u, true)
	}
}

func (p *presence) write(user string, online bool) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	var err error
	if online {
		err = p.svc.SetOnline(ctx, user, p.node, p.clock().Add(p.ttl))
	} else {
		err = p.svc.ClearOnline(ctx, user, p.node)
	}
	if err != nil {
		p.log.Warn("inbox: online marker not written", "user", user, "online", online, "err", err)
	}
}
