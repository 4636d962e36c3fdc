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
// # Queue groups
//
// A subscription made with SubscribeQueue (or the InQueue option) is a
// member of a queue group of its topic: each message goes to exactly one
// live member of the group, wherever in the cluster it is, while plain
// subscribers of the topic still receive every message (NATS's queue
// subscribers, Kafka's consumer groups). A topic may have any number of
// groups; each receives every message once.
//
// A node tells the topic's owner (in its view of the ring) when its first
// member of a group arrives (SubscribeQueue returns once the owner
// answered) and when its last one leaves, and tells it again every second
// and whenever the ring changes, so that a new owner learns the groups
// within a second and nothing has to be handed over. Per message and
// group the owner picks one node that has members, taking them in turn,
// and sends it one frame; that node hands the message to one of its
// members, also in turn, skipping members that have stopped or whose
// buffer is full. The split is therefore even across nodes, and across
// the members of a node, as long as members keep up. An owner forgets a
// node that left the cluster at once, and one it has not heard from for 5
// seconds.
//
// On a memory topic delivery is at most once: a message is lost when no
// node has a member when the owner sequences it, when every member of the
// chosen node is stopped or full (Stats.Dropped), or when its node or the
// owner fails with it in flight; while ownership moves, the new owner may
// sequence messages before the members' nodes have told it about their
// groups (up to a second). A member that Unsubscribes still reads what was
// buffered for it with Next, so stopping a member loses nothing.
//
// On a durable topic delivery is at least once. The owner keeps each
// message it gave a group until a member acknowledges it (Subscription.Ack,
// or the return of a SubscribeQueueFunc handler), and sends it again, to
// another node when there is one, after Config.QueueAckTimeout, or at once
// when the member's node leaves the group or the cluster. Messages
// sequenced while the group has no member wait for one. The group's
// cursor, the position up to which every message is acknowledged, is saved
// in the store (store.QueueCursors, both backends) at most every 250 ms;
// when another node takes over the group (a failover, a hand-off, a
// restart, or the first member after none) it reads the cursor and
// delivers again, from the store, everything after it. So an acknowledged
// message is never lost and an unacknowledged one comes again, possibly
// twice: handlers must be idempotent. Bounds: per group the owner holds at
// most 65,536 unacknowledged and 65,536 waiting messages in memory; a
// group past them falls behind: its new messages stay in the store only,
// and the owner reads them back a page at a time as its members catch up.
// Only messages that retention removed from the store before the group
// read them are given up (counted in Stats.Lost).
//
// Explicit acknowledgement was chosen over acknowledging when Next
// returns: a member that dies while it handles a message must not have
// acknowledged it.
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
// # Presence
//
// For the topics Config.Presence names (per namespace: "rooms:*"), a node
// tracks who is on a topic across the cluster: Track (or the
// WithPresence option of Subscribe) adds an entry, a key such as a user
// with opaque data, and returns once the topic's owner holds it; Presence
// returns the set, by key, each entry a Meta with a Ref unique in the
// cluster; WatchPresence follows it: the whole set first, then every join
// and leave, in the order the owner made them.
//
// The topic's owner holds the set. Each node reports only its own
// entries to it: the changes made while a report is in flight go into the
// next one (batched, one report per topic at a time, sent on change only),
// and the owner passes each change on, once per watching node, to the
// nodes that watch the topic, which keep a copy for their watches. The
// changes are numbered: a watching node that misses one (a link broke)
// syncs its copy again. When
// a member leaves or is declared failed, the owner removes its entries
// and tells the watchers (who also drop them on their own, in case the
// owner was that member): a failed node's entries leave within the
// failure detection time (Config.Gossip).
//
// The set is not part of a topic's hand-off or claim. When the ring moves
// a topic, the old owner drops its set, and every node reports all its
// entries of the topic again to the new owner (a Reset); a watching node
// syncs with the new owner and keeps meanwhile, for up to 2 s, the entries
// of live nodes whose Reset the new owner has not received yet, so that
// watchers see no leave and join of entries that never left. This is
// simpler than moving the set with the topic's state, and it is also
// what repairs a set whose owner failed, with nothing to copy it from: the
// nodes that hold the entries are the source of truth, and a failed
// report is followed by a Reset.
//
// Bounds: PresenceRule.MaxEntries entries per topic and
// PresenceRule.MaxMetasPerKey per key (defaults 100,000 and 100), keys of
// at most MaxPresenceKeyLen bytes, data of at most MaxPresenceData bytes.
// The owner checks them and refuses the entries beyond them: Track fails
// with ErrPresenceLimit. A watch that falls behind (its buffer holds
// Config.SubscriptionBuffer diffs) gets the whole set again instead of
// the diffs it missed.
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
// Presence: presence.go (the API, its rules and the peer frames'
// handlers), presence_local.go (this node's entries and their reports),
// presence_owner.go (the owner's sets), presence_watch.go (the copies of
// watching nodes, PresenceWatch).
//
// Queue groups: queue.go (SubscribeQueue, a node's members and the
// delivery to one of them), queue_owner.go (the owner's groups, the choice
// of a node, acknowledgements and redelivery), queue_store.go (a durable
// group's cursor in the store, and the replay after it).
//
// Durable topics: durability.go (which topics, their retention; the
// topic patterns of its rules, and of presence's, are in pattern.go),
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
