package pubsub

import (
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/transport"
)

// frameHandlers holds the handler of each frame type a peer may send.
var frameHandlers = [256]func(n *Node, from string, body []byte){
	wire.FrameDeliver:        (*Node).handleDeliver,
	wire.FrameReplicaDeliver: (*Node).handleReplicaDeliver,
	wire.FramePublish:        (*Node).handlePublish,
	wire.FrameReplicate:      (*Node).handleReplicate,
	wire.FrameSubscribe:      request((*Node).onSubscribe),
	wire.FrameUnsubscribe:    request((*Node).onUnsubscribe),
	wire.FrameStateRequest:   request((*Node).onStateRequest),
	wire.FrameHandoff:        request((*Node).onHandoff),
	wire.FrameStateChunk:     request((*Node).onStateChunk),
	wire.FrameChunkAck:       request((*Node).onChunkAck),
	wire.FrameReplicaNodes:   request((*Node).onReplicaNodes),
	wire.FrameHistoryRequest: request((*Node).onHistoryRequest),
	wire.FrameTopicsRequest:  request((*Node).onTopicsRequest),
	wire.FramePublishAck:     reply[wire.PublishAck],
	wire.FrameSubscribeAck:   reply[wire.SubscribeAck],
	wire.FrameState:          reply[wire.State],
	wire.FrameStateAck:       reply[wire.StateAck],
	wire.FrameReplicateAck:   reply[wire.ReplicateAck],
	wire.FrameHistory:        reply[wire.History],
	wire.FrameTopics:         reply[wire.Topics],

	wire.FramePresenceReport:  request((*Node).onPresenceReport),
	wire.FramePresenceAck:     reply[wire.PresenceAck],
	wire.FramePresenceWatch:   request((*Node).onPresenceWatch),
	wire.FramePresenceUnwatch: request((*Node).onPresenceUnwatch),
	wire.FramePresenceSync:    request((*Node).onPresenceSync),
	wire.FramePresenceDiff:    request((*Node).onPresenceDiff),

	wire.FrameQueueDeliver: (*Node).handleQueueDeliver,
	wire.FrameQueueJoin:    request((*Node).onQueueJoin),
	wire.FrameQueueLeave:   request((*Node).onQueueLeave),
	wire.FrameQueueAck:     request((*Node).onQueueAck),
	wire.FrameQueueJoinAck: reply[wire.QueueJoinAck],
}

// handleFrame is the transport's Handler: it decodes a frame from a peer
// and acts on it. It runs on the link's read goroutine and never blocks:
// deliveries go into subscription buffers, owner work is in-memory, and
// replies are queued on links.
func (n *Node) handleFrame(from string, typ transport.FrameType, body []byte) {
	if n.isClosed() {
		return
	}
	if h := frameHandlers[typ]; h != nil {
		h(n, from, body)
		return
	}
	n.stats.badFrames.Add(1)
	n.log.Warn("unknown frame type from peer", "kind", "unknown-frame", "peer", from, "type", Frame(typ))
}

// request returns the handler of a request frame: it decodes the body
// into an M and hands it to on.
func request[M any, P interface {
	*M
	wire.Message
}](on func(n *Node, from string, m P)) func(n *Node, from string, body []byte) {
	return func(n *Node, from string, body []byte) {
		var m M
		if n.decode(from, P(&m), body) {
			on(n, from, &m)
		}
	}
}

// reply is the handler of a reply frame: it completes the request the
// reply answers (a reply to a request that timed out is dropped).
func reply[M any, P interface {
	*M
	wire.Reply
}](n *Node, from string, body []byte) {
	var m M
	if p := P(&m); n.decode(from, p, body) {
		n.pending.complete(from, p.RequestID(), p)
	}
}

// The frames of every message decode through their concrete type, so that
// the message stays on this stack (decode's interface would put it on the
// heap): Deliver, ReplicaDeliver, Publish, Replicate.

func (n *Node) handleDeliver(from string, body []byte) {
	var m wire.Deliver
	if err := m.DecodeBody(body); err != nil {
		n.malformed(from, wire.FrameDeliver, err)
		return
	}
	n.deliver(from, m.Topic, m.Epoch, m.Seq, m.Data)
}

// handleReplicaDeliver keeps the replica's copy, then delivers it.
func (n *Node) handleReplicaDeliver(from string, body []byte) {
	var m wire.ReplicaDeliver
	if err := m.DecodeBody(body); err != nil {
		n.malformed(from, wire.FrameReplicaDeliver, err)
		return
	}
	r := wire.Replicate(m)
	n.onReplicate(from, &r)
	n.deliver(from, m.Topic, m.Epoch, m.Seq, m.Data)
}

func (n *Node) handlePublish(from string, body []byte) {
	n.noteRequest()
	var m wire.Publish
	if err := m.DecodeBody(body); err != nil {
		n.malformed(from, wire.FramePublish, err)
		return
	}
	n.onPublish(from, &m)
}

func (n *Node) handleReplicate(from string, body []byte) {
	var m wire.Replicate
	if err := m.DecodeBody(body); err != nil {
		n.malformed(from, wire.FrameReplicate, err)
		return
	}
	n.onReplicate(from, &m)
}

// onUnsubscribe handles a subscriber node that has no subscriber left.
func (n *Node) onUnsubscribe(from string, m *wire.Unsubscribe) {
	origin := m.Origin
	if origin == "" {
		origin = from
	}
	if err := ValidateTopic(m.Topic); err != nil {
		n.stats.badFrames.Add(1)
		n.log.Warn("unsubscribe from an invalid topic refused", "kind", "invalid-topic", "peer", from, "err", err)
		return
	}
	n.ownerUnsubscribe(m.Topic, origin, m.Hops)
}

// noteRequest records when a draining node last received a request (see
// linger); at other times nobody needs it.
func (n *Node) noteRequest() {
	if n.leaving.Load() {
		n.lastRequest.Store(time.Now().UnixNano())
	}
}

func (n *Node) decode(from string, m wire.Message, body []byte) bool {
	if err := m.DecodeBody(body); err != nil {
		n.malformed(from, m.FrameType(), err)
		return false
	}
	return true
}

// malformed counts and logs a frame whose body does not decode. A peer
// that sends many logs a few lines an interval, by frame type (see
// Config.Logger).
func (n *Node) malformed(from string, typ transport.FrameType, err error) {
	n.stats.badFrames.Add(1)
	n.log.Warn("malformed frame from peer", "kind", "malformed/"+Frame(typ).String(), "peer", from, "type", Frame(typ), "err", err)
}

// onPublish handles a publish from a peer: sequence it if this node owns the
// topic, forward it otherwise.
func (n *Node) onPublish(from string, m *wire.Publish) {
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
func (n *Node) onSubscribe(from string, m *wire.Subscribe) {
	n.noteRequest()
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
