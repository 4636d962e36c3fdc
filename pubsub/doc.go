// Package pubsub is ringcast's embeddable node: distributed publish and
// subscribe where every topic has one owner.
//
// A Node joins a cluster by gossip (package ring). Every topic is owned by
// one member with the "topics" role, chosen on a consistent hash ring. A
// publish goes straight to that owner, which gives the message the topic's
// next sequence number, keeps it in a short history, and sends it once to
// each node that has subscribers for the topic; each node hands it to its
// local subscriptions.
//
//	n, err := pubsub.New(pubsub.Config{Seeds: []string{"10.0.0.1:7946"}})
//	sub, err := n.Subscribe(ctx, "orders")
//	_, err = n.Publish(ctx, "orders", []byte("hello"))
//	msg, err := sub.Next(ctx)
//
// A program that publishes often to one topic can take a Topic handle
// (n.Topic("orders")), which validates the name once and, on the topic's
// owner, remembers where its state is.
//
// # Delivery
//
// Per topic there is one total order: every message carries the topic's
// epoch and a sequence number that increases by one per message. A
// subscriber receives each message at most once and in that order.
// Subscribe returns only once the owner has accepted the subscription, so
// every message published after it returns is delivered unless a node in
// between fails or a buffer overflows. Publish returns the sequence number
// the owner assigned (AckOwner, the default) or returns at once (AckNone).
//
// Epochs are ordered: a topic started later has a greater epoch, and a
// subscriber never receives a message of an older epoch after one of a
// newer epoch. A node's subscriptions to a topic follow one owner at a
// time: the node takes deliveries only from the owner it registered with
// (or the owner in its view, with which it re-registers) and refuses the
// others (Stats.Stale).
//
// The epoch changes only when a topic's state is lost or forgotten: its
// owner failed with no copy of the state left, or the topic sat idle with
// nothing to keep (no subscriber node, an empty history) for IdleTopicTTL
// and its owner and replicas let it go, so that per-user and other
// short-lived topics do not accumulate. While ownership changes gracefully
// (a node joins, or leaves with Shutdown), the old owner hands the topic's
// sequence, subscriber nodes and history to the new one, and sequences
// continue.
//
// During a partition each side serves the topic on its own: the side
// without the owner rebuilds it from a replica (same epoch, sequence
// failoverSeqGap ahead) or starts a new, later epoch. When the partition
// heals, the owner the ring settles on keeps the later state (the newer
// epoch, or in one epoch the higher sequence) and the other side's
// messages from the split are dropped. A subscriber on the kept side goes
// on; one on the other side switches once, when its node re-registers:
// ahead in the same epoch, after what history still holds of the kept
// side's messages, or to the head of the newer epoch. A node whose owner
// confirms an older epoch than the one it follows waits for the owner to
// take the newer state in; only if it has not after 5 × ClaimTimeout (its
// holders failed) does the node follow the older epoch.
//
// # Replication and recovery
//
// Each message is also copied to the next ReplicationFactor-1 members of
// the ring. Publish with WithAck(AckReplicated) returns once they hold it,
// and such a message survives the loss of any one node: the member that takes
// over a failed owner's topic rebuilds it from the replicas, in the same epoch.
// The owner keeps a bounded history (HistorySize, HistoryTTL). A subscriber
// passing Since(epoch, seq) receives what it missed before live messages, or
// gets a *HistoryGoneError (history evicted, another epoch, or seq beyond
// the topic's last message) naming where the topic is. A node that sees a gap in a topic's sequence
// fetches the missing messages from the owner's history.
//
// # Durable topics
//
// With Config.Store, the topics Config.Durability names are kept in a
// database (package store: SQLite embedded, or Postgres shared by a
// cluster). The store is then the single source of truth for a durable
// topic's order: its owner claims the topic in the store before it
// sequences anything and takes the epoch and last sequence number from
// there, commits each message (many topics' messages in one transaction)
// before it delivers or acknowledges it, and the topic goes on in the same
// epoch, with no gap and no failover jump, after a failover, a hand-off,
// or a restart of the whole cluster. Each claim fences the previous
// claimant's writes, so two nodes that both believe they own a topic (a
// network partition, an old owner that has not seen the ring move) can
// never both append: the loser's write is refused and it steps down,
// passing its publishes to the owner. Recent messages are served from
// memory; Since and gap repair read older ones from the store, a page at a
// time. When the store cannot be reached or written, publishes to durable
// topics fail with ErrStoreUnavailable and nothing unstored is
// acknowledged; memory-only topics are unaffected. Durable topics are not
// copied to replicas: the store is their copy.
//
// # Cost of a publish
//
// One frame to the owner (none when the owner is local) plus one frame per
// node that has subscribers, whatever the number of subscribers there; the
// frame is encoded once and shared. Replication adds one frame per replica
// that has no subscribers for the topic: a replica that has gets its copy
// inside the frame that delivers the message (encoded for it alone), so
// the payload crosses each link once. A node tells an owner about a topic
// only when its first local subscriber arrives and when its last one
// leaves.
//
// # Ownership changes
//
// When the ring changes, a node that no longer owns a topic pushes its state
// to the new owner and forwards late requests there. A node that becomes
// the owner of a topic it holds no state for first asks the member that
// would own the topic without it (the previous owner, after a join) and
// holds requests until it knows the topic's sequence, so that numbers never
// go backwards. A state of any size moves: one too large for a frame goes
// in parts of at most 256 KiB, a few at a time, and both sides hold the
// topic's requests until the last part has arrived. Nodes with local subscribers re-register with the new owner
// on their own, passing the last sequence number they delivered, and the
// owner sends them what its history holds after it.
//
// # Slow subscribers
//
// Each subscription has a bounded buffer. A subscription that falls behind
// ends with ErrSlowConsumer, or with OverflowDropOldest loses its oldest
// messages and is told how many (Message.Lost). It never slows the owner,
// the links, or other subscribers.
//
// # Security
//
// With Config.Secret, nodes prove the secret to each other before a link
// carries anything, every frame on a link is encrypted and authenticated
// (AES-256-GCM, per-direction keys derived from the secret and the
// handshake), and gossip is encrypted with a key derived from the same
// secret. Config.PeerTLS protects links with mutual TLS instead. Without
// either, a node runs in protected mode: it accepts peers and gossip from
// loopback only, so a single-host cluster works and nobody else can join
// it; Config.InsecureAllowRemotePeers turns that off for a trusted
// network. Peers that never finish the handshake hold a few KiB each, at
// most 8 per address (package transport).
//
// # Limits
//
// Topic names are 1 to 255 bytes of UTF-8 without control characters
// (ValidateTopic). Payloads are at most Config.MaxPayload (1 MiB by
// default). Invalid input returns an error wrapping ErrInvalidTopic or
// ErrPayloadTooLarge and changes nothing.
//
// # Files
//
// The client side: node.go (Node, New, membership and ring lookups),
// publish.go and handle.go (Publish, Topic handles), subscribe.go
// (Subscribe, registration with the owner), subscription.go and
// dispatch.go (buffers, Next, SubscribeFunc workers), recovery.go (Since,
// history requests), info.go, stats.go and listing.go (Topics: the
// cluster's topics, each member answering for those it owns, a page at a
// time).
//
// A message's path: route.go forwards requests toward the owner and returns
// its answers; sequence.go numbers a publish and fans it out; deliver.go
// hands deliveries to local subscriptions in order and repairs gaps;
// local.go holds the local topics; subscribers.go is the owner's table of
// subscriber nodes; replica.go copies messages to replicas; history.go is
// a topic's bounded history; inbound.go dispatches frames from peers.
//
// Ownership changes: owner.go (the owner table and a topic's states),
// claim.go (taking a topic over, after a join or a failure), handoff.go
// (passing it on gracefully, and Shutdown's drain), transfer.go and
// transfer_in.go (sending and receiving a state too large for one frame in
// acknowledged parts), rebalance.go (following ring changes: departures,
// reconciliation, idle topics).
//
// Durable topics: durability.go (which topics, their retention),
// durable.go (claims in the store, step-down, reads from it), commit.go
// (group commit), storeretention.go (the retention sweep).
//
// Plumbing: peers.go and parking.go (frames to other members), route.go's
// router, pending.go (requests waiting for answers), timers.go (the node's
// delayed work, on one goroutine it owns), links.go (frame names and
// per-peer link counters for Stats), retention.go (history bounds and idle
// expiry), lifecycle.go (Shutdown, Close), config.go, options.go,
// errors.go, topic.go. Peer messages and their codec are in internal/wire. Package topics holds the topic vocabulary shared
// with the gateway; internal/shard the sharded map every table uses;
// internal/logsample the sampling log handler that the node (for itself,
// its transport and its ring) and the gateway wrap their loggers in.
package pubsub
