package pubsub

import (
	"sync/atomic"
	"time"
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

	storeClaims      atomic.Uint64
	storeBatches     atomic.Uint64
	storeCommitted   atomic.Uint64
	storeAppendNanos atomic.Uint64
	storeFenced      atomic.Uint64
	storeErrors      atomic.Uint64
	storeReads       atomic.Uint64
	storeTrimmed     atomic.Uint64
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

	// Store counts this node's work with Config.Store (all zero without one).
	Store StoreStats `json:"store"`

	OwnedTopics   int `json:"owned_topics"`   // topics this node sequences
	ReplicaTopics int `json:"replica_topics"` // topics this node keeps a replica copy of
	LocalTopics   int `json:"local_topics"`   // topics with local subscribers
	Subscriptions int `json:"subscriptions"`  // local subscriptions

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
		},
	}
	for _, ot := range n.owned.all() {
		ot.mu.Lock()
		if ot.state == stateReady && !ot.gone.Load() {
			s.OwnedTopics++
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
