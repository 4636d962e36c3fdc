package wire

import (
	"errors"

	"github.com/ringcast/ringcast/transport"
)

// ProtocolVersion is the version of the protocol spoken between ringcast
// nodes: the link handshake (transport.Config.ProtocolVersion) refuses a
// peer speaking another one. Version 3 gave every message its own frame
// type: ReplicaDeliver, Handoff and ReplicaNodes split off Deliver and
// State. Version 4 sends a topic's state in bounded parts: State and
// Handoff gained Xfer, and StateChunk and ChunkAck carry the rest.
// Version 5 added the topic listing (TopicsRequest and Topics), presence
// (PresenceReport, PresenceAck, PresenceWatch, PresenceUnwatch,
// PresenceSync and PresenceDiff) and queue groups (QueueJoin,
// QueueJoinAck, QueueLeave, QueueDeliver and QueueAck).
const ProtocolVersion uint8 = 5

// Frame types of package pubsub's messages, one per message. The values
// are part of the wire protocol and never change; a new message gets a new
// value. The comment names the message that forms the body.
const (
	FramePublish        transport.FrameType = 16 // Publish
	FramePublishAck     transport.FrameType = 17 // PublishAck
	FrameDeliver        transport.FrameType = 18 // Deliver
	FrameSubscribe      transport.FrameType = 19 // Subscribe
	FrameSubscribeAck   transport.FrameType = 20 // SubscribeAck
	FrameUnsubscribe    transport.FrameType = 21 // Unsubscribe
	FrameStateRequest   transport.FrameType = 22 // StateRequest
	FrameState          transport.FrameType = 23 // State (reply to StateRequest)
	FrameStateAck       transport.FrameType = 24 // StateAck (reply to Handoff)
	FrameReplicate      transport.FrameType = 25 // Replicate
	FrameReplicateAck   transport.FrameType = 26 // ReplicateAck
	FrameHistoryRequest transport.FrameType = 27 // HistoryRequest
	FrameHistory        transport.FrameType = 28 // History
	FrameReplicaDeliver transport.FrameType = 29 // ReplicaDeliver
	FrameHandoff        transport.FrameType = 30 // Handoff
	FrameReplicaNodes   transport.FrameType = 31 // ReplicaNodes
	FrameStateChunk     transport.FrameType = 32 // StateChunk
	FrameChunkAck       transport.FrameType = 33 // ChunkAck
	FrameTopicsRequest  transport.FrameType = 34 // TopicsRequest
	FrameTopics         transport.FrameType = 35 // Topics (reply to TopicsRequest)

	// Presence (presence.go).
	FramePresenceReport  transport.FrameType = 40 // PresenceReport
	FramePresenceAck     transport.FrameType = 41 // PresenceAck
	FramePresenceWatch   transport.FrameType = 42 // PresenceWatch
	FramePresenceUnwatch transport.FrameType = 43 // PresenceUnwatch
	FramePresenceSync    transport.FrameType = 44 // PresenceSync
	FramePresenceDiff    transport.FrameType = 45 // PresenceDiff
)

// ErrMalformed reports a body that does not decode as its frame type's
// message. Decode errors wrap it.
var ErrMalformed = errors.New("wire: malformed body")

// Message is implemented by every message of this package (with pointer
// receivers). A message value is not safe for concurrent use while it is
// being decoded into; encoding only reads it.
type Message interface {
	transport.Message
	// DecodeBody parses a body into the message, overwriting every field.
	// []byte fields alias b (zero copy), strings are copies. Errors wrap
	// ErrMalformed.
	DecodeBody(b []byte) error
	// maxBodySize bounds the encoded body, so EncodeFrame allocates once.
	maxBodySize() int
}

// names holds the name of every frame type of this package.
var names = [...]string{
	FramePublish:        "Publish",
	FramePublishAck:     "PublishAck",
	FrameDeliver:        "Deliver",
	FrameSubscribe:      "Subscribe",
	FrameSubscribeAck:   "SubscribeAck",
	FrameUnsubscribe:    "Unsubscribe",
	FrameStateRequest:   "StateRequest",
	FrameState:          "State",
	FrameStateAck:       "StateAck",
	FrameReplicate:      "Replicate",
	FrameReplicateAck:   "ReplicateAck",
	FrameHistoryRequest: "HistoryRequest",
	FrameHistory:        "History",
	FrameReplicaDeliver: "ReplicaDeliver",
	FrameHandoff:        "Handoff",
	FrameReplicaNodes:   "ReplicaNodes",
	FrameStateChunk:     "StateChunk",
	FrameChunkAck:       "ChunkAck",
	FrameTopicsRequest:  "TopicsRequest",
	FrameTopics:         "Topics",

	FramePresenceReport:  "PresenceReport",
	FramePresenceAck:     "PresenceAck",
	FramePresenceWatch:   "PresenceWatch",
	FramePresenceUnwatch: "PresenceUnwatch",
	FramePresenceSync:    "PresenceSync",
	FramePresenceDiff:    "PresenceDiff",

	FrameQueueJoin:    "QueueJoin",
	FrameQueueJoinAck: "QueueJoinAck",
	FrameQueueLeave:   "QueueLeave",
	FrameQueueDeliver: "QueueDeliver",
	FrameQueueAck:     "QueueAck",
}

// Name returns the name of one of this package's frame types ("Deliver"
// for FrameDeliver), or "" for any other value.
func Name(t transport.FrameType) string {
	if int(t) < len(names) {
		return names[t]
	}
	return ""
}

// New returns a zero message for one of this package's frame types, or
// nil for any other value.
func New(t transport.FrameType) Message {
	switch t {
	case FramePublish:
		return new(Publish)
	case FramePublishAck:
		return new(PublishAck)
	case FrameDeliver:
		return new(Deliver)
	case FrameReplicaDeliver:
		return new(ReplicaDeliver)
	case FrameSubscribe:
		return new(Subscribe)
	case FrameSubscribeAck:
		return new(SubscribeAck)
	case FrameUnsubscribe:
		return new(Unsubscribe)
	}
	return newStateMessage(t)
}

// newStateMessage is New for the state, replication and history messages.
func newStateMessage(t transport.FrameType) Message {
	switch t {
	case FrameStateRequest:
		return new(StateRequest)
	case FrameState:
		return new(State)
	case FrameHandoff:
		return new(Handoff)
	case FrameReplicaNodes:
		return new(ReplicaNodes)
	case FrameStateAck:
		return new(StateAck)
	case FrameReplicate:
		return new(Replicate)
	case FrameReplicateAck:
		return new(ReplicateAck)
	case FrameHistoryRequest:
		return new(HistoryRequest)
	case FrameHistory:
		return new(History)
	case FrameStateChunk:
		return new(StateChunk)
	case FrameChunkAck:
		return new(ChunkAck)
	case FrameTopicsRequest:
		return new(TopicsRequest)
	case FrameTopics:
		return new(Topics)
	}
	return newQueueMessage(t)
}

// newPresenceMessage is New for the presence messages.
func newPresenceMessage(t transport.FrameType) Message {
	switch t {
	case FramePresenceReport:
		return new(PresenceReport)
	case FramePresenceAck:
		return new(PresenceAck)
	case FramePresenceWatch:
		return new(PresenceWatch)
	case FramePresenceUnwatch:
		return new(PresenceUnwatch)
	case FramePresenceSync:
		return new(PresenceSync)
	case FramePresenceDiff:
		return new(PresenceDiff)
	}
	return nil
}

// EncodeFrame returns a complete frame (header and body) for m in a newly
// allocated slice of the right size, ready for transport.Transport.Send to
// one peer or several. To send one message to one peer,
// transport.Transport.SendMsg saves the allocation; to send it to several,
// append it to a reused buffer with transport.AppendMessage or the
// AppendFrame methods of the hot messages.
func EncodeFrame(m Message) []byte {
	return transport.AppendMessage(make([]byte, 0, transport.FrameHeaderSize+m.maxBodySize()), m)
}

// AppendFrame appends a complete Deliver frame to dst, as
// transport.AppendMessage(dst, m) but without converting m to an
// interface, so that a Deliver built for one fan-out can stay on the
// caller's stack.
func (m *Deliver) AppendFrame(dst []byte) []byte {
	start := len(dst)
	return transport.EndFrame(m.AppendBody(transport.BeginFrame(dst, FrameDeliver)), start)
}

// AppendFrame appends a complete ReplicaDeliver frame to dst; see
// Deliver.AppendFrame.
func (m *ReplicaDeliver) AppendFrame(dst []byte) []byte {
	start := len(dst)
	return transport.EndFrame(m.AppendBody(transport.BeginFrame(dst, FrameReplicaDeliver)), start)
}

// AppendFrame appends a complete Publish frame to dst; see
// Deliver.AppendFrame.
func (m *Publish) AppendFrame(dst []byte) []byte {
	start := len(dst)
	return transport.EndFrame(m.AppendBody(transport.BeginFrame(dst, FramePublish)), start)
}

// AppendFrame appends a complete Replicate frame to dst; see
// Deliver.AppendFrame.
func (m *Replicate) AppendFrame(dst []byte) []byte {
	start := len(dst)
	return transport.EndFrame(m.AppendBody(transport.BeginFrame(dst, FrameReplicate)), start)
}

// Reply is a message that answers a request: RequestID is the ReqID of
// the request it answers.
type Reply interface {
	Message
	RequestID() uint64
}

func (m *PublishAck) RequestID() uint64   { return m.ReqID }
func (m *SubscribeAck) RequestID() uint64 { return m.ReqID }
func (m *State) RequestID() uint64        { return m.ReqID }
func (m *StateAck) RequestID() uint64     { return m.ReqID }
func (m *ReplicateAck) RequestID() uint64 { return m.ReqID }
func (m *History) RequestID() uint64      { return m.ReqID }
