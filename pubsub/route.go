package pubsub

import (
	"fmt"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// router forwards requests toward a topic's owner and returns the owner's
// answers to where the requests came from: this node's waiter, or the
// origin node's pending table.
type router struct {
	self    string
	peers   *peers
	pending *pendingTable
	timeout time.Duration // Config.RequestTimeout: the longest wait for an answer
	stats   *counters
}

// maxHops bounds how often a request is forwarded between nodes whose views
// of the ring disagree.
const maxHops = 4

// replyPublish returns a publish result to its origin.
func (r *router) replyPublish(req *pubReq, res pubResult) {
	if req.done != nil {
		req.done <- res
		return
	}
	if req.reqID == 0 {
		return
	}
	ack := &wire.PublishAck{ReqID: req.reqID, Epoch: res.epoch, Seq: res.seq, Code: errorCode(res.err)}
	if res.err != nil {
		ack.Err = res.err.Error()
	}
	if req.origin == r.self {
		// This node's own request came back to it through nodes whose views
		// disagreed: its waiter is in the pending table.
		r.pending.complete(r.self, req.reqID, ack)
		return
	}
	if err := r.peers.sendMsg(req.origin, ack); err != nil {
		r.stats.sendErrors.Add(1)
	}
}

// sendPublish forwards req toward target, the owner as this node sees it.
func (r *router) sendPublish(req *pubReq, target string) error {
	if req.hops >= maxHops {
		return fmt.Errorf("%w: %q forwarded %d times between nodes that disagree on its owner", ErrNoOwner, req.topic, req.hops)
	}
	// A request of this node's that came back to it (nodes whose views
	// disagree) already has its waiter; only one added here is cancelled
	// when the frame cannot be sent.
	added := req.origin == r.self && req.ack != AckNone && req.reqID == 0
	if added {
		if req.done == nil {
			req.done = make(chan pubResult, 1)
		}
		done := req.done
		// The caller's context bounds the wait too, but a request whose
		// answer was lost (forwarded toward an owner that failed) must not
		// hold it longer than RequestTimeout.
		req.reqID = r.pending.add(target, r.timeout, func(_ string, msg wire.Message, err error) {
			var res pubResult
			if ack, ok := msg.(*wire.PublishAck); ok {
				res = pubResult{epoch: ack.Epoch, seq: ack.Seq, err: codeError(ack.Code, ack.Err)}
			} else {
				res.err = err
			}
			done <- res
		})
	}
	buf := getFrameBuf()
	m := wire.Publish{ReqID: req.reqID, Origin: req.origin, Topic: req.topic, Data: req.data, Ack: uint8(req.ack), Hops: req.hops + 1}
	frame := m.AppendFrame(*buf)
	err := r.peers.sendTo(target, frame)
	putFrameBuf(buf, frame)
	if err != nil {
		if added {
			r.pending.cancel(req.reqID)
		}
		return err
	}
	r.stats.forwarded.Add(1)
	return nil
}

func (r *router) replySubscribe(req *subReq, epoch, seq uint64, err error) {
	if req.done != nil {
		req.done(r.self, epoch, seq, err)
		return
	}
	ack := &wire.SubscribeAck{ReqID: req.reqID, Epoch: epoch, Seq: seq, Code: errorCode(err)}
	if err != nil {
		ack.Err = err.Error()
	}
	if req.origin == r.self {
		// Came back through nodes whose views disagreed (see replyPublish).
		r.pending.complete(r.self, req.reqID, ack)
		return
	}
	if err := r.peers.sendMsg(req.origin, ack); err != nil {
		r.stats.sendErrors.Add(1)
	}
}

// sendSubscribe forwards req toward target.
func (r *router) sendSubscribe(req *subReq, target string) error {
	if req.hops >= maxHops {
		return fmt.Errorf("%w: %q forwarded %d times between nodes that disagree on its owner", ErrNoOwner, req.topic, req.hops)
	}
	added := req.origin == r.self && req.reqID == 0 // see sendPublish
	if added {
		done := req.done
		req.reqID = r.pending.add(target, r.timeout, func(from string, msg wire.Message, err error) {
			if ack, ok := msg.(*wire.SubscribeAck); ok {
				done(from, ack.Epoch, ack.Seq, codeError(ack.Code, ack.Err))
				return
			}
			done("", 0, 0, err)
		})
	}
	m := &wire.Subscribe{ReqID: req.reqID, Origin: req.origin, Topic: req.topic, Since: req.since, HasSince: req.hasSince, Hops: req.hops + 1}
	if err := r.peers.sendMsg(target, m); err != nil {
		if added {
			r.pending.cancel(req.reqID)
		}
		return err
	}
	return nil
}
