// Package metrics exposes the state of a ringcast node, and of a WebSocket
// gateway, as Prometheus metrics: [NewCollector], [NewGatewayCollector]
// and [NewStoreCollector] (the store's size) return [prometheus.Collector]
// values that an embedding program registers
// in its own registry, next to its own metrics.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(node), metrics.NewGatewayCollector(gw))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Package pubsub itself does not depend on the Prometheus client: this
// package reads its exported state ([pubsub.Node.Stats], the members in
// the node's view, [gateway.Handler.Stats]) once per scrape. Node.Stats
// visits every topic the node holds: scrape every few seconds, not more.
//
// # Conventions
//
// Every name starts with ringcast_; counters end in _total; durations are
// in seconds and sizes in bytes. Label values are bounded: member and peer
// names (members of the cluster), frame types, and fixed sets of results
// and reasons; never a topic name. Counters start from zero when the
// process starts; a peer's link counters start again when the node had no
// link with it for a while (a Prometheus counter reset). With
// [WithConstLabels], one registry holds the collectors of several nodes.
//
// # Node metrics
//
// Cluster, as this node sees it:
//
//	ringcast_node_info{node}                      gauge      1, with the node's name
//	ringcast_joined                               gauge      1 once joined (or started alone), else 0
//	ringcast_cluster_members                      gauge      members alive in this node's view, itself included
//	ringcast_member_info{member,roles,version}    gauge      1 per member alive in the view; roles comma-separated
//	ringcast_member_ring_share{member}            gauge      fraction of the ring (0 to 1) the member owns
//
// Topics and messages:
//
//	ringcast_topics_owned                         gauge      topics this node sequences
//	ringcast_topics_replica                       gauge      topics it keeps a replica copy of
//	ringcast_topics_local                         gauge      topics with local subscribers
//	ringcast_subscriptions                        gauge      local subscriptions
//	ringcast_history_messages                     gauge      messages the in-memory histories of its owned topics hold
//	ringcast_publishes_total                      counter    Publish calls accepted on this node
//	ringcast_publish_outcomes_total{ack,result}   counter    those by ack level ("none", "owner", "replicated") and result ("ok", "error")
//	ringcast_queue_groups                         gauge      queue groups of the topics it owns
//	ringcast_queue_unacked_messages               gauge      durable messages given to a member, not acknowledged yet
//	ringcast_queue_waiting_messages               gauge      messages waiting in memory for a member
//	ringcast_queue_redelivered_total              counter    messages given to a group again
//	ringcast_queue_local_groups                   gauge      queue groups it has members of
//	ringcast_queue_members                        gauge      queue group members on this node
//	ringcast_publishes_forwarded_total            counter    publishes sent on to the topic's owner
//	ringcast_messages_sequenced_total             counter    messages numbered here as a topic's owner
//	ringcast_deliveries_total{result}             counter    messages for local subscriptions: result="delivered" or "dropped" (drop-oldest overflow)
//	ringcast_deliveries_refused_total{reason}     counter    deliveries from peers not handed on: reason="duplicate", "stale" or "unrouted"
//	ringcast_slow_consumers_total                 counter    subscriptions ended because their queue was full
//	ringcast_gaps_total                           counter    sequence gaps given up on
//	ringcast_gap_messages_lost_total              counter    messages those gaps skipped
//	ringcast_gap_repairs_total                    counter    history requests sent to fill gaps
//	ringcast_replicated_messages_total            counter    message copies stored here as a replica
//	ringcast_handoffs_total                       counter    topics handed to another owner
//	ringcast_failovers_total                      counter    topics rebuilt here from replicas
//	ringcast_topics_forgotten_total               counter    idle topics no longer owned
//	ringcast_claim_duration_seconds               histogram  claims of topics, from start until the topic is served (its count is the number of claims)
//	ringcast_send_errors_total                    counter    frames that could not be queued to a peer
//	ringcast_bad_frames_total                     counter    malformed or unknown frames from peers
//
// Store (all zero on a node without one):
//
//	ringcast_store_claims_total                   counter    topics claimed in the store
//	ringcast_store_transactions_total             counter    transactions (group commits) written
//	ringcast_store_committed_messages_total       counter    messages committed
//	ringcast_store_fenced_total                   counter    claims lost to another node's
//	ringcast_store_errors_total                   counter    failed store calls
//	ringcast_store_reads_total                    counter    history pages read
//	ringcast_store_trimmed_messages_total         counter    messages deleted by retention
//	ringcast_store_append_duration_seconds        histogram  time of each transaction
//	ringcast_store_claim_duration_seconds         histogram  time of each claim call
//	ringcast_store_size_bytes                     gauge      the store's bytes on disk (NewStoreCollector, a store.Sizer)
//
// Links to peers:
//
//	ringcast_link_frames_sent_total{peer,type}     counter  frames written, by frame type ("Deliver", "Publish", "Ping", ...)
//	ringcast_link_frames_received_total{peer,type} counter  frames read, by frame type
//	ringcast_link_sent_bytes_total{peer}           counter  bytes of frames written, headers included
//	ringcast_link_received_bytes_total{peer}       counter  bytes of frames read
//	ringcast_link_dropped_frames_total{peer}       counter  frames dropped: queue full, failed write, link closed
//	ringcast_link_connected{peer}                  gauge    1 while the outbound link is connected
//	ringcast_link_dials_total{peer}                counter  successful outbound connections (reconnections included)
//	ringcast_peer_connections_refused_total{reason} counter inbound peer connections refused: reason="max_inbound",
//	                                                        "pending_per_addr", "protected_mode", "handshake" or "violations"
//
// The histograms' buckets are fixed: their upper bounds double from 25µs
// to about 13s.
//
// # Gateway metrics
//
// [NewGatewayCollector] exports every numeric field of [gateway.Stats]:
// unsigned fields as counters, signed ones as gauges, none with labels.
//
//	ringcast_gateway_connections                  gauge    WebSocket connections open
//	ringcast_gateway_queued_bytes                 gauge    bytes waiting in their outbound queues
//	ringcast_gateway_topics                       gauge    topics with a subscription for clients
//	ringcast_gateway_sessions                     gauge    joins of channel topics in progress
//	ringcast_gateway_connections_accepted_total   counter  connections upgraded
//	ringcast_gateway_upgrades_refused_total       counter  upgrades refused, for any reason
//	ringcast_gateway_upgrades_refused_host_total  counter  of which for a Host not allowed
//	ringcast_gateway_upgrades_refused_origin_total counter of which for an Origin not allowed
//	ringcast_gateway_upgrades_refused_conn_limit_total counter of which for too many connections from one address
//	ringcast_gateway_denied_total                 counter  joins, history reads, publishes refused by authorization
//	ringcast_gateway_joins_rate_limited_total     counter  joins refused by a rate limit
//	ringcast_gateway_publishes_rate_limited_total counter  publishes refused by a rate limit
//	ringcast_gateway_flood_closed_total           counter  connections closed for flooding past their rate limits
//	ringcast_gateway_joins_total                  counter  successful joins, rejoins included
//	ringcast_gateway_publishes_total              counter  successful publishes by clients
//	ringcast_gateway_frames_received_total        counter  messages read from clients
//	ringcast_gateway_frames_sent_total            counter  messages written to clients
//	ringcast_gateway_slow_consumers_total         counter  connections closed as slow consumers
//	ringcast_gateway_errors_total                 counter  error replies, failed publishes, undecodable messages
//	ringcast_gateway_subscribe_errors_total       counter  subscriptions to the cluster that failed
//	ringcast_gateway_channel_errors_total         counter  channel errors sent because a subscription ended
//	ringcast_gateway_join_resets_total            counter  resuming joins answered "reset"
//	ringcast_gateway_channel_pushes_total         counter  messages channels pushed to their sessions
//
// A field of gateway.Stats not listed here (added later) is exported as
// ringcast_gateway_NAME_total (counter) or ringcast_gateway_NAME (gauge),
// NAME being its JSON name.
package metrics
