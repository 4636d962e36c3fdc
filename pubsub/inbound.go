package pubsub

import (
	"time"

	"github.com/ringcast/ringcast/transport"
)

// HandleFrame implements transport.Handler: it decodes a frame from a peer
// and acts on it. It runs on the link's read goroutine and never blocks:
// deliveries go into subscription buffers, owner work is in-memory, and
// replies are queued on links.
func (n *Node) HandleFrame(from string, typ transport.FrameType, body []byte) {
	if n.isClosed() {
		return
	}
	switch typ {
	// The three frames of every message decode through their concrete
	// type, so that the message stays on this stack (decode's interface
	// would put it on the heap).
	case transport.FrameDeliver:
		var m transport.Deliver
		if err := m.DecodeBody(body); err != nil {
			n.malformed(from, typ, err)
			return
		}
		if m.Replica {
			r := transport.Replicate{ReqID: m.ReqID, Topic: m.Topic, Epoch: m.Epoch, Seq: m.Seq, Time: m.Time, Data: m.Data}
			n.onReplicate(from, &r)
		}
		n.deliver(from, m.Topic, m.Epoch, m.Seq, m.Data)
	case transport.FramePublish:
		n.noteRequest()
		var m transport.Publish
		if err := m.DecodeBody(body); err != nil {
			n.malformed(from, typ, err)
			return
		}
		n.onPublish(from, &m)
	case transport.FramePublishAck:
		var m transport.PublishAck
		if n.decode(from, &m, body) {
			n.pending.complete(from, m.ReqID, &m)
		}
	case transport.FrameSubscribe:
		n.noteRequest()
		var m transport.Subscribe
		if n.decode(from, &m, body) {
			n.onSubscribe(from, &m)
		}
	case transport.FrameSubscribeAck:
		var m transport.SubscribeAck
		if n.decode(from, &m, body) {
			n.pending.complete(from, m.ReqID, &m)
		}
	case transport.FrameUnsubscribe:
		var m transport.Unsubscribe
		if n.decode(from, &m, body) {
			origin := m.Origin
			if origin == "" {
				origin = from
			}
			if err := ValidateTopic(m.Topic); err != nil {
				n.stats.badFrames.Add(1)
				n.log.Warn("unsubscribe from an invalid topic refused", "peer", from, "err", err)
				break
			}
			n.ownerUnsubscribe(m.Topic, origin, m.Hops)
		}
	case transport.FrameStateRequest:
		var m transport.StateRequest
		if n.decode(from, &m, body) {
			n.onStateRequest(from, &m)
		}
	case transport.FrameState:
		var m transport.TopicState
		if !n.decode(from, &m, body) {
			return
		}
		switch {
		case m.Handoff && m.Replica:
			n.onReplicaNodes(from, &m)
		case m.Handoff:
			n.onHandoff(from, &m)
		default:
			n.pending.complete(from, m.ReqID, &m)
		}
	case transport.FrameReplicate:
		var m transport.Replicate
		if err := m.DecodeBody(body); err != nil {
			n.malformed(from, typ, err)
			return
		}
		n.onReplicate(from, &m)
	case transport.FrameReplicateAck:
		var m transport.ReplicateAck
		if n.decode(from, &m, body) {
			n.pending.complete(from, m.ReqID, &m)
		}
	case transport.FrameHistoryRequest:
		var m transport.HistoryRequest
		if n.decode(from, &m, body) {
			n.onHistoryRequest(from, &m)
		}
	case transport.FrameHistory:
		var m transport.History
		if n.decode(from, &m, body) {
			n.pending.complete(from, m.ReqID, &m)
		}
	case transport.FrameStateAck:
		var m transport.StateAck
		if n.decode(from, &m, body) {
			n.pending.complete(from, m.ReqID, &m)
		}
	default:
		n.stats.badFrames.Add(1)
		n.log.Warn("unknown frame type from peer", "peer", from, "type", typ)
	}
}

// noteRequest records when a draining node last received a request (see
// linger); at other times nobody needs it.
func (n *Node) noteRequest() {
	if n.leaving.Load() {
		n.lastRequest.Store(time.Now().UnixNano())
	}
}

func (n *Node) decode(from string, m transport.Message, body []byte) bool {
	if err := m.DecodeBody(body); err != nil {
		n.malformed(from, m.FrameType(), err)
		return false
	}
	return true
}

// malformed counts and logs a frame whose body does not decode.
func (n *Node) malformed(from string, typ transport.FrameType, err error) {
	n.stats.badFrames.Add(1)
	n.log.Warn("malformed frame from peer", "peer", from, "type", typ, "err", err)
}

// onPublish handles a publish from a peer: sequence it if this node owns the
// topic, forward it otherwise.
func (n *Node) onPublish(from string, m *transport.Publish) {
	r := pubReq{topic: m.Topic, data: m.Data, origin: m.Origin, reqID: m.ReqID, ack: Ack(m.Ack), hops: m.Hops}
	req := &r
	if req.origin == "" {
		req.origin = from
	}
	if len(req.data) > n.cfg.MaxPayload {
		n.router.replyPublish(req, pubResult{err: ErrPayloadTooLarge})
		return
	}
	// A topic in the owner table is valid (nothing enters it unchecked) and
	// is sequenced, queued or forwarded by its state: one lookup for the
	// common case of a publish reaching its owner.
	ot := n.owned.get(req.topic)
	if ot == nil {
		if err := ValidateTopic(req.topic); err != nil {
			n.router.replyPublish(req, pubResult{err: err})
			return
		}
		owner, err := n.ringOwner(req.topic)
		if err != nil {
			n.router.replyPublish(req, pubResult{err: err})
			return
		}
		if owner != n.name {
			if err := n.router.sendPublish(req, owner); err != nil {
				n.router.replyPublish(req, pubResult{err: err})
			}
			return
		}
	}
	if res, ok := n.publishOwned(ot, req); ok {
		n.router.replyPublish(req, res)
	}
}

// onSubscribe handles a subscriber node's registration.
func (n *Node) onSubscribe(from string, m *transport.Subscribe) {
	req := &subReq{topic: m.Topic, origin: m.Origin, reqID: m.ReqID, since: m.Since, hasSince: m.HasSince, hops: m.Hops}
	if req.origin == "" {
		req.origin = from
	}
	if err := ValidateTopic(req.topic); err != nil {
		n.router.replySubscribe(req, 0, 0, err)
		return
	}
	n.ownerSubscribe(req) // it routes the request on when this node holds no state
}
