// Package transport links ringcast nodes to each other: one long-lived TCP
// connection per peer and direction, carrying length-prefixed frames with
// msgpack bodies, written in batches from bounded queues.
//
// A Transport listens for its peers and keeps one outbound link per peer
// it sends to. Package pubsub builds messages (Publish, Deliver, ...),
// encodes each once with EncodeFrame, and hands the frame to Send for
// every peer that needs it; frames received from peers go to the
// configured Handler.
//
// # Frame format
//
// Every frame is
//
//	[4-byte big-endian N][1-byte FrameType][N-1 bytes body]
//
// with N = 1 + len(body). A reader checks 1 <= N <= Config.MaxFrameSize
// before it allocates anything; a peer that violates it has its connection
// closed with a logged error ("transport: frame too large: N > max").
// Bodies are msgpack arrays of the message's fields in declaration order.
// The codecs are hand-written (no reflection): encoders use the smallest
// msgpack format for each value, decoders accept any format that can hold
// the field, check every length against the remaining bytes, and skip
// trailing fields added by later versions. []byte fields of decoded
// messages alias the body. Every body received is a fresh allocation
// owned by the Handler.
//
// Frame types below FramePublish belong to the link (handshake, ping) and
// never reach the Handler; the others are package pubsub's, with values
// fixed by the protocol.
//
// # Handshake
//
// The dialer sends Hello{Cluster, Node, Version, Nonce}; the listener
// answers HelloAck{Node, Version, Nonce, Proof, Err}; the dialer finishes
// with Proof{Proof}. The listener refuses a different ProtocolVersion
// (ErrVersionMismatch), cluster name (ErrClusterMismatch), or its own
// node name (ErrPeerMismatch), and a Hello that does not arrive within
// HandshakeTimeout; the dialer refuses a listener that is not the peer it
// dialled (ErrPeerMismatch). With Config.Secret, each side proves it
// knows the secret with an HMAC-SHA256 over both nonces and both names,
// checked by the other (ErrAuth); a node with a secret and one without
// refuse each other. A refusing listener answers HelloAck{Err: reason},
// closes and logs at Warn; the dialer logs the reason (wrapping the same
// sentinel error) and retries with backoff. The secret authenticates;
// frames are not encrypted.
//
// # Links
//
// Each node dials its own outbound link to each peer, lazily on the first
// Send. Accepted connections carry frames from the dialer only (the
// listener just answers pings), so two nodes that send to each other use
// two TCP connections; frames from A to B are in Send order on A's link.
// A link reconnects after a failure with exponential backoff between
// ReconnectMin and ReconnectMax, with jitter. The dialer pings every
// IdleTimeout/3 and the listener answers; either side closes a connection
// on which nothing arrived for IdleTimeout. ClosePeer stops a link (for a
// node that left); Close stops everything and waits for every goroutine.
//
// # Queues and batching
//
// Send never blocks and never does I/O: it copies the frame to the end of
// the link's queue, one byte buffer bounded by QueueFrames frames and
// QueueBytes bytes, or fails with ErrQueueFull; SendMsg encodes a message
// straight into it. One writer goroutine per link waits for the queue to
// become non-empty, swaps it for its own drained buffer and writes the
// whole batch in chunks of at most 256 KiB, each under WriteTimeout, so a
// loaded link makes one syscall per batch, not one per frame, and a frame
// costs a copy rather than an allocation. No lock is held during I/O.
// Frames in a batch whose write fails are lost and counted as dropped; the
// frames still queued are sent after the reconnect.
//
// # Counters
//
// Stats reports, per peer, the frames sent and received per type, bytes,
// drops, dials and whether the outbound link is connected. The counters
// are atomics updated once per batch on the writer side and once per
// frame on the reader side; Stats turns them into maps.
package transport
