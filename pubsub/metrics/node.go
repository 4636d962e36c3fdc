package metrics

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringcast/ringcast/pubsub"
)

// Option configures a collector.
type Option func(*options)

type options struct {
	constLabels prometheus.Labels
}

// WithConstLabels adds labels with fixed values to every metric of the
// collector: with them, one registry may hold the collectors of several
// nodes of one process (e.g. {"node": name}). The map is copied.
func WithConstLabels(labels prometheus.Labels) Option {
	return func(o *options) {
		o.constLabels = make(prometheus.Labels, len(labels))
		for k, v := range labels {
			o.constLabels[k] = v
		}
	}
}

func newOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// descs builds the descriptors of one collector.
type descs struct {
	o   options
	all []*prometheus.Desc
}

func (d *descs) new(name, help string, labels ...string) *prometheus.Desc {
	desc := prometheus.NewDesc(name, help, labels, d.o.constLabels)
	d.all = append(d.all, desc)
	return desc
}

// nodeCollector reads a node's state at each scrape.
type nodeCollector struct {
	node *pubsub.Node
	d    descs

	nodeInfo, joined, members, memberInfo, ringShare *prometheus.Desc

	ownedTopics, replicaTopics, localTopics, subscriptions                              *prometheus.Desc
	historyMessages, publishOutcomes                                                    *prometheus.Desc
	queueGroups, queueUnacked, queueWaiting, queueRedelivered, queueLocal, queueMembers *prometheus.Desc

	publishes, forwarded, sequenced, deliveries, refused, slowConsumers *prometheus.Desc
	gaps, lost, repairs, handoffs, failovers, forgotten, replicated     *prometheus.Desc
	claimDuration, sendErrors, badFrames                                *prometheus.Desc

	storeClaims, storeTxns, storeCommitted, storeFenced, storeErrors *prometheus.Desc
	storeReads, storeTrimmed, storeAppend, storeClaim                *prometheus.Desc

	framesSent, framesReceived, bytesSent, bytesReceived *prometheus.Desc
	linkDropped, linkConnected, linkDials                *prometheus.Desc
	peersRefused                                         *prometheus.Desc
}

// NewCollector returns a collector of node's metrics, for the embedding
// program to register in its registry. Each scrape reads node.Stats once
// (which visits every topic the node holds: see [pubsub.Node.Stats]) and
// the node's view of the cluster. The metrics are listed in the package
// documentation.
func NewCollector(node *pubsub.Node, opts ...Option) prometheus.Collector {
	c := &nodeCollector{node: node, d: descs{o: newOptions(opts)}}
	d := &c.d
	c.nodeInfo = d.new("ringcast_node_info", "The node's name, as a label; always 1.", "node")
	c.joined = d.new("ringcast_joined", "1 once the node has joined its cluster (or started one), 0 before.")
	c.members = d.new("ringcast_cluster_members", "Members of the cluster alive in this node's view, this node included.")
	c.memberInfo = d.new("ringcast_member_info", "One series per member alive in this node's view, with its roles (comma-separated) and protocol version; always 1.", "member", "roles", "version")
	c.ringShare = d.new("ringcast_member_ring_share", "Fraction of the hash ring (0 to 1) each member owns in this node's view; 0 for a member without the topics role.", "member")

	c.ownedTopics = d.new("ringcast_topics_owned", "Topics this node sequences, as their owner.")
	c.replicaTopics = d.new("ringcast_topics_replica", "Topics this node keeps a replica copy of.")
	c.localTopics = d.new("ringcast_topics_local", "Topics with subscribers on this node.")
	c.subscriptions = d.new("ringcast_subscriptions", "Subscriptions on this node.")

	c.publishes = d.new("ringcast_publishes_total", "Publish calls accepted on this node.")
	c.forwarded = d.new("ringcast_publishes_forwarded_total", "Publishes this node sent on to the topic's owner.")
	c.sequenced = d.new("ringcast_messages_sequenced_total", "Messages this node numbered as a topic's owner.")
	c.deliveries = d.new("ringcast_deliveries_total", `Messages for this node's subscriptions, by result: "delivered" (handed to a subscription), "dropped" (discarded by a full subscription that drops its oldest).`, "result")
	c.refused = d.new("ringcast_deliveries_refused_total", `Deliveries from other nodes not handed to any subscription, by reason: "duplicate" (already delivered), "stale" (from a node other than the topic's owner, or of an older epoch), "unrouted" (no local subscriber).`, "reason")
	c.slowConsumers = d.new("ringcast_slow_consumers_total", "Subscriptions ended because their queue was full.")
	c.gaps = d.new("ringcast_gaps_total", "Sequence gaps given up on after the gap timeout.")
	c.lost = d.new("ringcast_gap_messages_lost_total", "Messages skipped by the gaps given up on.")
	c.repairs = d.new("ringcast_gap_repairs_total", "History requests sent to fill sequence gaps.")
	c.handoffs = d.new("ringcast_handoffs_total", "Topics this node handed to another owner.")
	c.failovers = d.new("ringcast_failovers_total", "Topics this node rebuilt from replicas after their owner failed.")
	c.forgotten = d.new("ringcast_topics_forgotten_total", "Idle topics this node stopped owning.")
	c.replicated = d.new("ringcast_replicated_messages_total", "Message copies this node stored as a replica.")
	c.claimDuration = d.new("ringcast_claim_duration_seconds", "Time topics spent being claimed: from this node finding itself the owner of a topic it held no state for until it served the topic (the claim in the store included).")
	c.sendErrors = d.new("ringcast_send_errors_total", "Frames that could not be queued to a peer.")
	c.badFrames = d.new("ringcast_bad_frames_total", "Malformed or unknown frames received from peers.")

	c.storeClaims = d.new("ringcast_store_claims_total", "Topics this node claimed in the store.")
	c.storeTxns = d.new("ringcast_store_transactions_total", "Store transactions (group commits) written.")
	c.storeCommitted = d.new("ringcast_store_committed_messages_total", "Messages committed to the store.")
	c.storeFenced = d.new("ringcast_store_fenced_total", "Claims this node lost to another node's in the store (step-downs).")
	c.storeErrors = d.new("ringcast_store_errors_total", "Failed store calls (unreachable, full, timed out).")
	c.storeReads = d.new("ringcast_store_reads_total", "History pages read from the store.")
	c.storeTrimmed = d.new("ringcast_store_trimmed_messages_total", "Messages the store deleted by retention.")
	c.storeAppend = d.new("ringcast_store_append_duration_seconds", "Time of each store transaction, failed and fenced ones included.")
	c.storeClaim = d.new("ringcast_store_claim_duration_seconds", "Time of each claim call to the store, failed ones included.")

	c.framesSent = d.new("ringcast_link_frames_sent_total", "Frames written to a peer's link, by peer and frame type.", "peer", "type")
	c.framesReceived = d.new("ringcast_link_frames_received_total", "Frames read from a peer's links, by peer and frame type.", "peer", "type")
	c.bytesSent = d.new("ringcast_link_sent_bytes_total", "Bytes of frames written to a peer, headers included.", "peer")
	c.bytesReceived = d.new("ringcast_link_received_bytes_total", "Bytes of frames read from a peer, headers included.", "peer")
	c.linkDropped = d.new("ringcast_link_dropped_frames_total", "Frames for a peer refused because its link's queue was full, lost in a failed write, or queued when the link closed.", "peer")
	c.linkConnected = d.new("ringcast_link_connected", "1 while the outbound link to a peer is connected, 0 otherwise.", "peer")
	c.linkDials = d.new("ringcast_link_dials_total", "Successful outbound connections to a peer: its first and every reconnection.", "peer")
	c.peersRefused = d.new("ringcast_peer_connections_refused_total", `Inbound peer connections refused, by reason: "max_inbound" (too many open), "pending_per_addr" (too many handshakes from one address), "protected_mode" (a remote peer without a secret or TLS), "handshake" (bad secret, certificate, cluster name or version, timeout, garbage), "violations" (an authenticated connection closed on a bad frame).`, "reason")
	c.queueGroups = d.new("ringcast_queue_groups", "Queue groups of the topics this node owns.")
	c.queueUnacked = d.new("ringcast_queue_unacked_messages", "Messages of durable topics given to a queue group member and not acknowledged yet, at this node as owner.")
	c.queueWaiting = d.new("ringcast_queue_waiting_messages", "Messages waiting in memory for a queue group member, at this node as owner.")
	c.queueRedelivered = d.new("ringcast_queue_redelivered_total", "Messages this node, as owner, gave a queue group again (no acknowledgement in time, or the member's node lost).")
	c.queueLocal = d.new("ringcast_queue_local_groups", "Queue groups this node has members of.")
	c.queueMembers = d.new("ringcast_queue_members", "Queue group members (subscriptions) on this node.")
	c.historyMessages = d.new("ringcast_history_messages", "Messages the in-memory histories of this node's owned topics hold.")
	c.publishOutcomes = d.new("ringcast_publish_outcomes_total", `Publishes accepted on this node, by ack level ("none", "owner", "replicated") and result ("ok", "error": the owner unreachable, the store down, the caller's deadline).`, "ack", "result")
	return c
}

// Describe sends the descriptors of every metric.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d.all {
		ch <- d
	}
}

// Collect reads the node's state once and sends the metrics.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.node.Stats()
	members := c.node.Members()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	gauge(c.nodeInfo, 1, s.Node)
	gauge(c.joined, boolValue(c.node.Joined()))
	gauge(c.members, float64(len(members)))
	for _, m := range members {
		roles := slices.Clone(m.Roles)
		slices.Sort(roles)
		gauge(c.memberInfo, 1, m.Name, strings.Join(roles, ","), strconv.Itoa(int(m.Version)))
		gauge(c.ringShare, c.node.RingShare(m.Name), m.Name)
	}

	gauge(c.ownedTopics, float64(s.OwnedTopics))
	gauge(c.replicaTopics, float64(s.ReplicaTopics))
	gauge(c.localTopics, float64(s.LocalTopics))
	gauge(c.subscriptions, float64(s.Subscriptions))
	gauge(c.historyMessages, float64(s.HistoryMessages))
	gauge(c.queueGroups, float64(s.Queues.Groups))
	gauge(c.queueUnacked, float64(s.Queues.Unacked))
	gauge(c.queueWaiting, float64(s.Queues.Waiting))
	counter(c.queueRedelivered, s.Queues.Redelivered)
	gauge(c.queueLocal, float64(s.Queues.LocalGroups))
	gauge(c.queueMembers, float64(s.Queues.Members))
	for ack, o := range map[string]pubsub.AckOutcomes{"none": s.Outcomes.None, "owner": s.Outcomes.Owner, "replicated": s.Outcomes.Replicated} {
		counter(c.publishOutcomes, o.OK, ack, "ok")
		counter(c.publishOutcomes, o.Failed, ack, "error")
	}

	counter(c.publishes, s.Published)
	counter(c.forwarded, s.Forwarded)
	counter(c.sequenced, s.Sequenced)
	counter(c.deliveries, s.Delivered, "delivered")
	counter(c.deliveries, s.Dropped, "dropped")
	counter(c.refused, s.Duplicates, "duplicate")
	counter(c.refused, s.Stale, "stale")
	counter(c.refused, s.Unrouted, "unrouted")
	counter(c.slowConsumers, s.SlowConsumers)
	counter(c.gaps, s.Gaps)
	counter(c.lost, s.Lost)
	counter(c.repairs, s.Repairs)
	counter(c.handoffs, s.Handoffs)
	counter(c.failovers, s.Failovers)
	counter(c.forgotten, s.Forgotten)
	counter(c.replicated, s.Replicated)
	ch <- histogram(c.claimDuration, s.ClaimDuration)
	counter(c.sendErrors, s.SendErrors)
	counter(c.badFrames, s.BadFrames)

	counter(c.storeClaims, s.Store.Claims)
	counter(c.storeTxns, s.Store.Batches)
	counter(c.storeCommitted, s.Store.Committed)
	counter(c.storeFenced, s.Store.Fenced)
	counter(c.storeErrors, s.Store.Errors)
	counter(c.storeReads, s.Store.Reads)
	counter(c.storeTrimmed, s.Store.Trimmed)
	ch <- histogram(c.storeAppend, s.Store.AppendLatency)
	ch <- histogram(c.storeClaim, s.Store.ClaimLatency)

	r := s.Links.Refused
	counter(c.peersRefused, r.MaxInbound, "max_inbound")
	counter(c.peersRefused, r.PendingPerAddr, "pending_per_addr")
	counter(c.peersRefused, r.ProtectedMode, "protected_mode")
	counter(c.peersRefused, r.Handshake, "handshake")
	counter(c.peersRefused, r.Violations, "violations")
	for peer, l := range s.Links.Peers {
		for t, n := range l.Sent {
			counter(c.framesSent, n, peer, t.String())
		}
		for t, n := range l.Received {
			counter(c.framesReceived, n, peer, t.String())
		}
		counter(c.bytesSent, l.BytesSent, peer)
		counter(c.bytesReceived, l.BytesReceived, peer)
		counter(c.linkDropped, l.Dropped, peer)
		gauge(c.linkConnected, boolValue(l.Connected), peer)
		counter(c.linkDials, l.Dials, peer)
	}
}

// histogram converts a snapshot of durations into a histogram in seconds.
func histogram(d *prometheus.Desc, h pubsub.HistogramSnapshot) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		if i < len(h.Counts) {
			cum += h.Counts[i]
		}
		buckets[seconds(b)] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, seconds(h.Sum), buckets)
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
