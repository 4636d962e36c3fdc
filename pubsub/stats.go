package pubsub

import (
	"sync/atomic"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/hist"
)

type counters struct {
	published     atomic.Uint64
	sequenced     atomic.Uint64
	forwarded     atomic.Uint64
	delivered     atomic.Uint64
	dropped       atomic.Uint64
	slowConsumers atomic.Uint64
	duplicates    atomic.Uint64
	gaps          atomic.Uint64
	lost          atomic.Uint64
	unrouted      atomic.Uint64
	handoffs      atomic.Uint64
	sendErrors    atomic.Uint64
	badFrames     atomic.Uint64
	replicated    atomic.Uint64
	failovers     atomic.Uint64
	forgotten     atomic.Uint64
	repairs       atomic.Uint64
	stale         atomic.Uint64
	// outcomes counts the publishes accepted (published) by ack level
	// (AckOwner, AckNone, AckReplicated) and result (0 ok, 1 failed).
	outcomes [3][2]atomic.Uint64

	storeClaims      atomic.Uint64
	storeBatches     atomic.Uint64
	storeCommitted   atomic.Uint64
	storeAppendNanos atomic.Uint64
	storeFenced      atomic.Uint64
	storeErrors      atomic.Uint64
	storeReads       atomic.Uint64
	storeTrimmed     atomic.Uint64

	// Durations: a claim from its start until the topic is served, one
	// store transaction (Append), one claim in the store (Claim).
	claimDuration hist.Histogram
	storeAppend   hist.Histogram
	storeClaim    hist.Histogram
}

// Stats is a snapshot of a node's counters. Counters only grow; gauges
// (the counts of topics and subscriptions) are current values.
type Stats struct {
	Node string `json:"node"`

	Published     uint64 `json:"published"`      // Publish calls accepted on this node
	Sequenced     uint64 `json:"sequenced"`      // messages this node sequenced as a topic owner
	Forwarded     uint64 `json:"forwarded"`      // publishes sent on to another node
	Delivered     uint64 `json:"delivered"`      // messages handed to local subscriptions
	Dropped       uint64 `json:"dropped"`        // messages discarded by OverflowDropOldest
	SlowConsumers uint64 `json:"slow_consumers"` // subscriptions ended by ErrSlowConsumer
	Duplicates    uint64 `json:"duplicates"`     // duplicate deliveries discarded
	Gaps          uint64 `json:"gaps"`           // sequence gaps given up on after GapTimeout
	Lost          uint64 `json:"lost"`           // messages those gaps skipped
	Unrouted      uint64 `json:"unrouted"`       // deliveries for topics with no local subscriber
	Handoffs      uint64 `json:"handoffs"`       // topics moved to another owner
	SendErrors    uint64 `json:"send_errors"`    // frames that could not be queued to a peer
	BadFrames     uint64 `json:"bad_frames"`     // malformed or unknown frames from peers
	Replicated    uint64 `json:"replicated"`     // message copies this node stored as a replica
	Failovers     uint64 `json:"failovers"`      // topics this node rebuilt from replicas
	Forgotten     uint64 `json:"forgotten"`      // idle topics this node stopped owning (IdleTopicTTL)
	Repairs       uint64 `json:"repairs"`        // history requests sent to fill sequence gaps
	Stale         uint64 `json:"stale"`          // deliveries refused: from a node other than the topic's owner, or of an older epoch

	// Outcomes splits Published by ack level and result.
	Outcomes PublishOutcomes `json:"outcomes"`

	// Queues describes the queue groups this node has members of and
	// those it keeps as a topic's owner.
	Queues QueueStats `json:"queues"`

	// Store counts this node's work with Config.Store (all zero without one).
	Store StoreStats `json:"store"`

	OwnedTopics int `json:"owned_topics"` // topics this node sequences
	// HistoryMessages counts the messages the histories of the owned
	// topics hold in memory (Config.HistorySize, HistoryTTL).
	HistoryMessages int `json:"history_messages"`
	ReplicaTopics   int `json:"replica_topics"` // topics this node keeps a replica copy of
	LocalTopics     int `json:"local_topics"`   // topics with local subscribers
	Subscriptions   int `json:"subscriptions"`  // local subscriptions

	// ClaimDuration is the time topics spent being claimed: from the
	// moment this node found itself the owner of a topic it held no state
	// for (it joined, the owner failed, a publish reached it first) until
	// it served the topic, its claim in the store included for a durable
	// topic.
	ClaimDuration HistogramSnapshot `json:"claim_duration"`

	// Links holds per-peer link counters: frames sent and received per
	// frame type, bytes, drops. Links.Peers[p].Sent[FrameDeliver] is the
	// number of plain deliveries this node sent to p.
	Links LinkStats `json:"links"`
}

// StoreStats counts a node's work with its store.
type StoreStats struct {
	Claims     uint64        `json:"claims"`      // topics this node claimed in the store
	Batches    uint64        `json:"batches"`     // transactions (group commits) written
	Committed  uint64        `json:"committed"`   // messages committed
	AppendTime time.Duration `json:"append_time"` // time spent in those transactions, in total
	Fenced     uint64        `json:"fenced"`      // claims lost to another node's (step-downs)
	Errors     uint64        `json:"errors"`      // failed store calls (unreachable, full, timeout)
	Reads      uint64        `json:"reads"`       // history pages read from the store
	Trimmed    uint64        `json:"trimmed"`     // messages deleted by retention

	// AppendLatency is the time of each transaction (Batches): failed and
	// fenced ones included.
	AppendLatency HistogramSnapshot `json:"append_latency"`
	// ClaimLatency is the time of each claim call to the store, failed
	// ones included.
	ClaimLatency HistogramSnapshot `json:"claim_latency"`
}

// HistogramSnapshot is a copy of a histogram of durations. Its buckets are
// fixed: their bounds double from 25µs to about 13s.
type HistogramSnapshot struct {
	// Bounds holds the buckets' upper bounds, in increasing order.
	Bounds []time.Duration `json:"bounds"`
	// Counts[i] counts the durations in (Bounds[i-1], Bounds[i]] (up to
	// Bounds[0] for i = 0); Counts[len(Bounds)] counts those longer than
	// the last bound.
	Counts []uint64 `json:"counts"`
	// Count is the number of durations recorded: the sum of Counts.
	Count uint64 `json:"count"`
	// Sum is the sum of the durations recorded. The counts are copied one
	// at a time while recording goes on, and Sum may be off by what was
	// recorded meanwhile.
	Sum time.Duration `json:"sum"`
}

// histogramSnapshot copies h.
func histogramSnapshot(h *hist.Histogram) HistogramSnapshot {
	hs := h.Snapshot()
	s := HistogramSnapshot{
		Bounds: make([]time.Duration, hist.Bounds),
		Counts: hs.Counts[:],
		Count:  hs.Count,
		Sum:    hs.Sum,
	}
	for i := range s.Bounds {
		s.Bounds[i] = hist.Bound(i)
	}
	return s
}

// QueueStats describes a node's queue groups (SubscribeQueue).
type QueueStats struct {
	// Groups counts the groups of topics this node owns, Unacked the
	// messages of durable topics given to a member and not acknowledged
	// yet, Waiting those waiting for a member (or read back from the
	// store) in memory.
	Groups  int `json:"groups"`
	Unacked int `json:"unacked"`
	Waiting int `json:"waiting"`
	// Redelivered counts the messages this node, as owner, gave a group
	// again after QueueAckTimeout or the loss of the member's node.
	Redelivered uint64 `json:"redelivered"`
	// LocalGroups counts the groups this node has members of, Members
	// those members.
	LocalGroups int `json:"local_groups"`
	Members     int `json:"members"`
}

// queueStats reads the queue tables, taking their locks in turn.
func (n *Node) queueStats() QueueStats {
	var qs QueueStats
	qo := &n.queueOwner
	qo.mu.Lock()
	for _, groups := range qo.topics {
		for _, g := range groups {
			qs.Groups++
			qs.Unacked += len(g.flights)
			qs.Waiting += len(g.backlog)
		}
	}
	qo.mu.Unlock()
	qs.Redelivered = qo.redelivered.Load()
	for _, lq := range n.queues.all() {
		lq.mu.Lock()
		qs.LocalGroups++
		qs.Members += len(lq.members)
		lq.mu.Unlock()
	}
	return qs
}

// PublishOutcomes counts the publishes of one node by ack level: an ack
// level's OK are those that returned no error, Failed those that did (the
// owner unreachable, the store down, the context done, ...). A publish
// with AckNone fails only when it cannot be queued toward the owner.
type PublishOutcomes struct {
	Owner      AckOutcomes `json:"owner"`
	None       AckOutcomes `json:"none"`
	Replicated AckOutcomes `json:"replicated"`
}

// AckOutcomes counts the publishes of one ack level by result.
type AckOutcomes struct {
	OK     uint64 `json:"ok"`
	Failed uint64 `json:"failed"`
}

// outcome counts a publish accepted with ack that returned err, and
// returns r and err.
func (n *Node) outcome(ack Ack, r PublishResult, err error) (PublishResult, error) {
	if ack > AckReplicated {
		ack = AckOwner // an unknown level waits as AckOwner does
	}
	failed := 0
	if err != nil {
		failed = 1
	}
	n.stats.outcomes[ack][failed].Add(1)
	return r, err
}

func (c *counters) publishOutcomes() PublishOutcomes {
	at := func(a Ack) AckOutcomes {
		return AckOutcomes{OK: c.outcomes[a][0].Load(), Failed: c.outcomes[a][1].Load()}
	}
	return PublishOutcomes{Owner: at(AckOwner), None: at(AckNone), Replicated: at(AckReplicated)}
}

// Stats returns a snapshot of the node's counters. The gauges visit every
// topic the node holds, taking each topic's lock in turn: with hundreds of
// thousands of topics a call costs tens of milliseconds, so poll it every
// few seconds rather than per request.
func (n *Node) Stats() Stats {
	s := Stats{
		Node:          n.name,
		Published:     n.stats.published.Load(),
		Sequenced:     n.stats.sequenced.Load(),
		Forwarded:     n.stats.forwarded.Load(),
		Delivered:     n.stats.delivered.Load(),
		Dropped:       n.stats.dropped.Load(),
		SlowConsumers: n.stats.slowConsumers.Load(),
		Duplicates:    n.stats.duplicates.Load(),
		Gaps:          n.stats.gaps.Load(),
		Lost:          n.stats.lost.Load(),
		Unrouted:      n.stats.unrouted.Load(),
		Handoffs:      n.stats.handoffs.Load(),
		SendErrors:    n.stats.sendErrors.Load(),
		BadFrames:     n.stats.badFrames.Load(),
		Replicated:    n.stats.replicated.Load(),
		Failovers:     n.stats.failovers.Load(),
		Forgotten:     n.stats.forgotten.Load(),
		Repairs:       n.stats.repairs.Load(),
		Stale:         n.stats.stale.Load(),
		Outcomes:      n.stats.publishOutcomes(),
		Queues:        n.queueStats(),
		ClaimDuration: histogramSnapshot(&n.stats.claimDuration),
		Links:         linkStats(n.tr.Stats()),
		Store: StoreStats{
			Claims:     n.stats.storeClaims.Load(),
			Batches:    n.stats.storeBatches.Load(),
			Committed:  n.stats.storeCommitted.Load(),
			AppendTime: time.Duration(n.stats.storeAppendNanos.Load()),
			Fenced:     n.stats.storeFenced.Load(),
			Errors:     n.stats.storeErrors.Load(),
			Reads:      n.stats.storeReads.Load(),
			Trimmed:    n.stats.storeTrimmed.Load(),

			AppendLatency: histogramSnapshot(&n.stats.storeAppend),
			ClaimLatency:  histogramSnapshot(&n.stats.storeClaim),
		},
	}
	for _, ot := range n.owned.all() {
		ot.mu.Lock()
		if ot.state == stateReady && !ot.gone.Load() {
			s.OwnedTopics++
			s.HistoryMessages += ot.hist.n
		}
		ot.mu.Unlock()
	}
	s.ReplicaTopics = n.replicas.m.Len()
	for _, lt := range n.local.all() {
		lt.mu.Lock()
		s.LocalTopics++
		s.Subscriptions += len(lt.subs)
		lt.mu.Unlock()
	}
	return s
}
