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
	wire.FramePublishAck:     (*Node).handlePublishAck,
	wire.FrameSubscribe:      (*Node).handleSubscribe,
	wire.FrameSubscribeAck:   (*Node).handleSubscribeAck,
	wire.FrameUnsubscribe:    (*Node).handleUnsubscribe,
	wire.FrameStateRequest:   (*Node).handleStateRequest,
	wire.FrameState:          (*Node).handleState,
	wire.FrameHandoff:        (*Node).handleHandoff,
	wire.FrameReplicaNodes:   (*Node).handleReplicaNodes,
	wire.FrameStateAck:       (*Node).handleStateAck,
	wire.FrameReplicate:      (*Node).handleReplicate,
	wire.FrameReplicateAck:   (*Node).handleReplicateAck,
	wire.FrameHistoryRequest: (*Node).handleHistoryRequest,
	wire.FrameHistory:        (*Node).handleHistory,
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
	n.log.Warn("unknown frame type from peer", "peer", from, "type", Frame(typ))
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

// The replies complete the pending request they answer.

func (n *Node) handlePublishAck(from string, body []byte) {
	var m wire.PublishAck
	if n.decode(from, &m, body) {
		n.pending.complete(from, m.ReqID, &m)
	}
}

func (n *Node) handleSubscribeAck(from string, body []byte) {
	var m wire.SubscribeAck
	if n.decode(from, &m, body) {
		n.pending.complete(from, m.ReqID, &m)
	}
}

func (n *Node) handleState(from string, body []byte) {
	var m wire.State
	if n.decode(from, &m, body) {
		n.pending.complete(from, m.ReqID, &m)
	}
}

func (n *Node) handleStateAck(from string, body []byte) {
	var m wire.StateAck
	if n.decode(from, &m, body) {
		n.pending.complete(from, m.ReqID, &m)
	}
}

func (n *Node) handleReplicateAck(from string, body []byte) {
	var m wire.ReplicateAck
	if n.decode(from, &m, body) {
		n.pending.complete(from, m.ReqID, &m)
	}
}

func (n *Node) handleHistory(from string, body []byte) {
	var m wire.History
	if n.decode(from, &m, body) {
		n.pending.complete(from, m.ReqID, &m)
	}
}

func (n *Node) handleSubscribe(from string, body []byte) {
	n.noteRequest()
	var m wire.Subscribe
	if n.decode(from, &m, body) {
		n.onSubscribe(from, &m)
	}
}

func (n *Node) handleUnsubscribe(from string, body []byte) {
	var m wire.Unsubscribe
	if !n.decode(from, &m, body) {
		return
	}
	origin := m.Origin
	if origin == "" {
		origin = from
	}
	if err := ValidateTopic(m.Topic); err != nil {
		n.stats.badFrames.Add(1)
		n.log.Warn("unsubscribe from an invalid topic refused", "peer", from, "err", err)
		return
	}
	n.ownerUnsubscribe(m.Topic, origin, m.Hops)
}

func (n *Node) handleStateRequest(from string, body []byte) {
	var m wire.StateRequest
	if n.decode(from, &m, body) {
		n.onStateRequest(from, &m)
	}
}

func (n *Node) handleHandoff(from string, body []byte) {
	var m wire.Handoff
	if n.decode(from, &m, body) {
		n.onHandoff(from, &m)
	}
}

func (n *Node) handleReplicaNodes(from string, body []byte) {
	var m wire.ReplicaNodes
	if n.decode(from, &m, body) {
		n.onReplicaNodes(from, &m)
	}
}

func (n *Node) handleHistoryRequest(from string, body []byte) {
	var m wire.HistoryRequest
	if n.decode(from, &m, body) {
		n.onHistoryRequest(from, &m)
	}
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

// malformed counts and logs a frame whose body does not decode.
func (n *Node) malformed(from string, typ transport.FrameType, err error) {
	n.stats.badFrames.Add(1)
	n.log.Warn("malformed frame from peer", "peer", from, "type", Frame(typ), "err", err)
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
