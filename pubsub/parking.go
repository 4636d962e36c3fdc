package pubsub

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringcast/ringcast/ring"
)

// parking holds frames for nodes this node's view does not list yet. A
// node that has just joined knows the cluster before the cluster knows it:
// it may ask this node for a topic's state (or register a subscription)
// before gossip has announced it here. Its answers wait, in order, until
// the view lists it, for at most RequestTimeout. Frames for a member that
// departed are refused at once instead.
type parking struct {
	count atomic.Int64 // frames parked, for the fast path of sendTo

	mu     sync.Mutex
	frames map[string][]parkedFrame
	gone   map[string]time.Time // recently departed members
}

type parkedFrame struct {
	frame []byte
	at    time.Time
}

// maxParkedPerPeer bounds what waits for one unknown node.
const maxParkedPerPeer = 1024

func (ps *peers) sendOrPark(name string, m ring.Member, known bool, frame []byte) error {
	p := &ps.parked
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.frames[name]
	if known {
		// Parked frames go first, so that order holds.
		ps.flushLocked(name, m.PeerAddr, q)
		return ps.send(name, m.PeerAddr, frame)
	}
	if _, gone := p.gone[name]; gone {
		return fmt.Errorf("%w: %s left the cluster", ErrUnavailable, name)
	}
	if len(q) >= maxParkedPerPeer {
		return fmt.Errorf("%w: %s is not a member yet and %d frames already wait for it", ErrUnavailable, name, len(q))
	}
	if p.frames == nil {
		p.frames = make(map[string][]parkedFrame)
	}
	// The caller may reuse frame (a pooled buffer): keep a copy.
	p.frames[name] = append(q, parkedFrame{frame: bytes.Clone(frame), at: time.Now()})
	p.count.Add(1)
	return nil
}

func (ps *peers) flushLocked(name, addr string, q []parkedFrame) {
	p := &ps.parked
	if len(q) == 0 {
		return
	}
	for _, f := range q {
		if err := ps.send(name, addr, f.frame); err != nil {
			ps.stats.sendErrors.Add(1)
		}
	}
	delete(p.frames, name)
	p.count.Add(-int64(len(q)))
}

// flushParked sends what waits for nodes the view now lists and drops what
// waited too long.
func (ps *peers) flushParked() {
	p := &ps.parked
	p.mu.Lock()
	defer p.mu.Unlock()
	v := ps.ring.View()
	cut := time.Now().Add(-ps.wait)
	for name, q := range p.frames {
		if m, ok := v.Member(name); ok {
			ps.flushLocked(name, m.PeerAddr, q)
			continue
		}
		keep := q[:0]
		for _, f := range q {
			if f.at.After(cut) {
				keep = append(keep, f)
			}
		}
		p.count.Add(-int64(len(q) - len(keep)))
		ps.stats.sendErrors.Add(uint64(len(q) - len(keep)))
		if len(keep) == 0 {
			delete(p.frames, name)
		} else {
			p.frames[name] = keep
		}
	}
	for name, at := range p.gone {
		if _, back := v.Member(name); back || at.Before(cut) {
			delete(p.gone, name)
		}
	}
}

// departed drops what waits for a member that left and refuses more.
func (ps *peers) departed(name string) {
	p := &ps.parked
	p.mu.Lock()
	defer p.mu.Unlock()
	if q := p.frames[name]; len(q) > 0 {
		delete(p.frames, name)
		p.count.Add(-int64(len(q)))
	}
	if p.gone == nil {
		p.gone = make(map[string]time.Time)
	}
	p.gone[name] = time.Now()
}
