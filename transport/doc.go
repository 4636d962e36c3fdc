// Package transport links ringcast nodes to each other: one long-lived TCP
// connection per peer and direction, carrying length-prefixed typed
// frames, written in batches from bounded queues.
//
// A Transport listens for its peers and keeps one outbound link per peer
// it sends to. It carries its user's frames without knowing them: the user
// (package pubsub) picks the frame types from FirstUserFrame up, encodes a
// frame once (AppendFrame, AppendMessage) and hands it to Send for every
// peer that needs it, or has SendMsg encode a Message straight into one
// link's queue; frames received from peers go to the configured Handler as
// (peer, type, body).
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
// Every body received is a fresh allocation owned by the Handler. A body
// is allocated as its bytes arrive (32 KiB first, then doubling), never
// at the size the prefix claims, so a peer that announces a large frame
// and sends little of it holds little memory.
//
// Frame types below FirstUserFrame (16) belong to the link (handshake,
// ping): Send refuses them and they never reach the Handler. The others
// are the user's, and their bodies are opaque to the Transport. The
// handshake frames' bodies are msgpack arrays of their fields.
//
// # Handshake
//
// The dialer sends Hello{Cluster, Node, Version, Nonce, Link}; the listener
// answers HelloAck{Node, Version, Nonce, Proof, Err, Link}; the dialer
// finishes with Proof{Proof}. Version is Config.ProtocolVersion, the
// version of the user's protocol (zero is a valid one); Link is the
// version of the link protocol itself (2: version 1, which did not send
// it, never sealed frames). The listener refuses a different version of
// either (ErrVersionMismatch), cluster name (ErrClusterMismatch), or its own
// node name (ErrPeerMismatch), and a Hello that does not arrive within
// HandshakeTimeout; the dialer refuses a listener that is not the peer it
// dialled (ErrPeerMismatch). With Config.Secret, each side proves it
// knows the secret with an HMAC-SHA256 over both nonces and both names,
// checked by the other (ErrAuth); a node with a secret and one without
// refuse each other. A refusing listener answers HelloAck{Err: reason},
// closes and logs at Warn; the dialer logs the reason (wrapping the same
// sentinel error) and retries with backoff.
//
// The handshake runs under HandshakeTimeout, reads frames of at most
// 64 KiB through a 4 KiB buffer, and at most MaxPendingPerAddr (8)
// connections from one IP address may be in it at once: more are closed
// at once, logged and counted (Stats.Refused).
//
// # Security
//
// What protects a link depends on the Config:
//
//   - Secret: the handshake proves both ends know it, and every frame
//     after it is sealed with AES-256-GCM. Each direction has its own key,
//     derived with HKDF-SHA256 from the secret, both handshake nonces, both
//     node names and the cluster name; its nonce counts the frames sent in
//     that direction. A sealed frame is [N][ciphertext of type and body,
//     and a 16-byte tag], N authenticated as additional data and bounded
//     before anything is allocated. A frame that is altered, replayed,
//     reordered or cut fails to open: the connection is closed with a
//     logged protocol violation (ErrAuth) and nothing from it after that
//     point is delivered. The writer seals a whole batch into one reused
//     buffer, so sealing adds no allocation and no syscall.
//   - TLS: mutual TLS 1.3 with client certificates required and verified;
//     frames are not sealed again. A refused certificate is ErrAuth.
//   - Neither: protected mode. Anyone who can reach the port could join
//     and read everything, so the Transport accepts peers on loopback
//     only (others get HelloAck{Err: "transport: protected mode: ..."}
//     saying why and how to fix it, and are logged and counted), refuses
//     to dial peers that are not on loopback, and warns at start if it
//     listens on another address. Config.InsecureAllowRemotePeers turns
//     it off for a network whose every host is trusted.
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
// frame on the reader side; Stats turns them into maps. The Transport
// names only its own frame types; a user names its own when it presents
// the counts.
//
// # Files
//
//   - transport.go: Transport, Peer, Handler, Send, the accept loop and the
//     reading of inbound connections.
//   - frame.go: FrameType, Message, the errors, and building and reading
//     frames.
//   - link.go: an outbound link: its queue, writer, reconnects and pings.
//   - handshake.go: the handshake and its frames.
//   - config.go: Config and its defaults.
//   - stats.go: the per-peer counters.
package transport
