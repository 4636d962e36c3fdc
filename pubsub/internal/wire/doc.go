// Package wire defines the messages ringcast nodes exchange over their
// links, one frame type per message, and the msgpack codec they use.
//
// Package transport carries the frames without knowing them: a frame is
//
//	[4-byte big-endian N][1-byte FrameType][N-1 bytes body]
//
// and the types from transport.FirstUserFrame up are this package's
// (FramePublish = 16 ... FrameChunkAck = 33, and the presence frames
// FramePresenceReport = 40 ... FramePresenceDiff = 45). ProtocolVersion names
// this set of messages; package pubsub hands it to the transport, whose
// handshake refuses a peer speaking another version.
//
// # Messages
//
// Publish is answered by PublishAck, Subscribe by SubscribeAck; Deliver
// carries a sequenced message to a node with subscribers, Unsubscribe
// withdraws a node's interest. A new owner's StateRequest is answered by
// State; the previous owner pushes a Handoff, answered by StateAck. A
// state too large for one frame continues in StateChunk frames, each
// answered by a ChunkAck, so that a sender keeps a few parts in flight
// and never fills a link's queue.
// Replicate (answered by ReplicateAck) gives a replica its copy of a
// message, ReplicaDeliver does so and delivers it at once, ReplicaNodes
// tells a replica the topic's subscriber nodes. HistoryRequest is answered
// by History.
//
// Presence: a node reports the changes of its local presence entries of
// a topic to the topic's owner in a PresenceReport (answered by
// PresenceAck; Reset replaces everything the owner holds from that node);
// PresenceWatch is answered by the topic's set in PresenceSync frames,
// after which the owner sends every change as a PresenceDiff until
// PresenceUnwatch.
//
// Queue groups (frame types 48 to 55): QueueJoin (answered by QueueJoinAck
// when it carries a ReqID) tells an owner that a node has members of a
// group, QueueLeave that it has none left; QueueDeliver carries a message
// to the one node of a group the owner chose, and QueueAck acknowledges it
// for a durable topic.
//
// # Encoding
//
// Bodies are msgpack arrays of the message's fields in declaration order.
// The codecs are hand-written (no reflection): encoders use the smallest
// msgpack format for each value, decoders accept any format that can hold
// the field, check every length against the remaining bytes before they
// allocate, and skip trailing fields added by later versions. []byte
// fields of decoded messages alias the body; strings are copies. Decode
// errors wrap ErrMalformed.
//
// # Files
//
//   - frame.go: ProtocolVersion, the frame types, Message, New, Name,
//     EncodeFrame and the AppendFrame methods of the hot messages.
//   - codec.go: the msgpack appenders and the decoder.
//   - messages.go: Publish, PublishAck, Deliver, ReplicaDeliver,
//     Subscribe, SubscribeAck, Unsubscribe.
//   - state.go: StateRequest, State, Handoff, StateChunk, ChunkAck,
//     ReplicaNodes, StateAck, and the size bounds a sender of parts uses.
//   - replicate.go: Replicate, ReplicateAck, HistoryRequest, History and
//     the history list encoding.
//   - presence.go: PresenceReport, PresenceAck, PresenceWatch,
//     PresenceUnwatch, PresenceSync, PresenceDiff and the entry list
//     encoding.
//   - queue.go: QueueJoin, QueueJoinAck, QueueLeave, QueueDeliver,
//     QueueAck.
package wire
