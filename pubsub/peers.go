package pubsub

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/ring"
	"github.com/ringcast/ringcast/transport"
)

// peers sends frames to other members of the cluster: straight onto their
// links when this node's view lists them, parked until it does otherwise
// (see parking). It is the only way the node's tables reach another node.
type peers struct {
	self   string
	tr     *transport.Transport
	ring   *ring.Ring
	stats  *counters     // sendErrors
	wait   time.Duration // how long a parked frame waits: Config.RequestTimeout
	parked parking
}

// sendTo queues a complete frame for a member. A node that gossip has not
// announced here yet (it just joined and asked something) gets its frames
// once it is, in order; see parking.
func (p *peers) sendTo(name string, frame []byte) error {
	peer, m, direct, err := p.route(name)
	switch {
	case err != nil:
		return err
	case !direct:
		return p.sendOrPark(name, m, peer.Addr != "", frame)
	}
	return p.send(name, peer.Addr, frame)
}

// sendMsg sends one message to a member, encoded straight into the link's
// queue when nothing is parked.
func (p *peers) sendMsg(name string, msg wire.Message) error {
	peer, _, direct, err := p.route(name)
	switch {
	case err != nil:
		return err
	case !direct:
		return p.sendTo(name, wire.EncodeFrame(msg))
	}
	if err := p.tr.SendMsg(peer, msg); err != nil {
		return linkError(err)
	}
	return nil
}

// route says how to reach a member: direct when the view lists it and no
// frame is parked (which would have to go first); otherwise through
// parking, with peer.Addr empty if the view does not list it yet.
func (p *peers) route(name string) (peer transport.Peer, m ring.Member, direct bool, err error) {
	if name == p.self {
		return peer, m, false, fmt.Errorf("%w: frame addressed to this node", ErrUnavailable)
	}
	m, ok := p.ring.View().Member(name)
	if ok {
		peer = transport.Peer{Name: name, Addr: m.PeerAddr}
	}
	return peer, m, ok && p.parked.count.Load() == 0, nil
}

func (p *peers) send(name, addr string, frame []byte) error {
	if err := p.tr.Send(transport.Peer{Name: name, Addr: addr}, frame); err != nil {
		return linkError(err)
	}
	return nil
}

// linkError wraps an error of the link's in ErrUnavailable, and a full
// queue in ErrQueueFull too, so that callers test it without importing
// package transport.
func linkError(err error) error {
	if errors.Is(err, transport.ErrQueueFull) {
		return fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrQueueFull, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// framePool holds buffers for frames encoded once and copied into several
// links' queues (Send copies), so fan-out allocates no frame.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledFrame keeps buffers grown by a large message out of the pool.
const maxPooledFrame = 64 << 10

func getFrameBuf() *[]byte { return framePool.Get().(*[]byte) }

func putFrameBuf(b *[]byte, frame []byte) {
	if cap(frame) <= maxPooledFrame {
		*b = frame[:0]
		framePool.Put(b)
	}
}
