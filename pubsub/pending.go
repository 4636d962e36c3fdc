package pubsub

import (
	"fmt"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// pendingTable correlates requests sent to other nodes with their replies.
// A completion function runs exactly once: with the reply, with
// ErrUnavailable when the timeout passes, or with ErrClosed at Close.
type pendingTable struct {
	timers *timers // runs the timeouts

	mu     sync.Mutex
	next   uint64
	m      map[uint64]*pendingReq
	closed bool
}

type pendingReq struct {
	peer  string // where the request went
	fn    func(from string, msg wire.Message, err error)
	timer *timer
}

func newPendingTable(t *timers) *pendingTable {
	return &pendingTable{timers: t, m: make(map[uint64]*pendingReq)}
}

// add registers fn and returns the request id; timeout 0 means none (the
// caller cancels).
func (p *pendingTable) add(peer string, timeout time.Duration, fn func(from string, msg wire.Message, err error)) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	id := p.next
	if p.closed {
		// The transport is closed too: the caller's send fails and it
		// handles the error itself.
		return id
	}
	r := &pendingReq{peer: peer, fn: fn}
	if timeout > 0 {
		r.timer = p.timers.after(timeout, func() {
			if r := p.take(id); r != nil {
				r.fn("", nil, ErrUnavailable)
			}
		})
	}
	p.m[id] = r
	return id
}

func (p *pendingTable) take(id uint64) *pendingReq {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.m[id]
	if r != nil {
		delete(p.m, id)
		if r.timer != nil {
			r.timer.stop()
		}
	}
	return r
}

// complete delivers a reply; replies to unknown (timed out) ids are dropped.
func (p *pendingTable) complete(from string, id uint64, msg wire.Message) {
	if r := p.take(id); r != nil {
		r.fn(from, msg, nil)
	}
}

// cancel forgets a request without calling its function.
func (p *pendingTable) cancel(id uint64) { p.take(id) }

// failPeer fails the requests sent to a member that departed: their answer
// will not come, and the callers can try the topic's new owner.
func (p *pendingTable) failPeer(peer string) {
	p.mu.Lock()
	var failed []*pendingReq
	for id, r := range p.m {
		if r.peer == peer {
			delete(p.m, id)
			if r.timer != nil {
				r.timer.stop()
			}
			failed = append(failed, r)
		}
	}
	p.mu.Unlock()
	for _, r := range failed {
		r.fn("", nil, fmt.Errorf("%w: %s left the cluster before answering", ErrUnavailable, peer))
	}
}

// close fails every request still waiting.
func (p *pendingTable) close() {
	p.mu.Lock()
	p.closed = true
	reqs := p.m
	p.m = make(map[uint64]*pendingReq)
	p.mu.Unlock()
	for _, r := range reqs {
		if r.timer != nil {
			r.timer.stop()
		}
		r.fn("", nil, ErrClosed)
	}
}
