package pubsub

import (
	"context"
	"time"
)

// storeSweepInterval is how often a node applies the store retention of
// Durability rules (MaxAge, MaxCount) to the durable topics it owns.
var storeSweepInterval = time.Minute

// storeSweepPage is how many topics one listing of the store returns.
const storeSweepPage = 1000

// sweepStore applies store retention every storeSweepInterval until the
// node closes. Each node trims the topics it owns in its view of the ring,
// listed from the store (so that a topic nobody has used since a restart
// is trimmed too); the deletes are idempotent, so two nodes whose views
// disagree for a moment both trimming a topic do no harm.
func (n *Node) sweepStore() {
	defer n.storeWork.Done()
	if !n.durability.bounded() {
		return
	}
	tick := time.NewTicker(storeSweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.storeCtx.Done():
			return
		case <-tick.C:
			n.trimStore(n.storeCtx, time.Now())
		}
	}
}

// bounded reports whether any durable rule bounds what the store keeps.
func (rs durabilityRules) bounded() bool {
	for _, r := range rs {
		if !r.Memory && (r.MaxAge > 0 || r.MaxCount > 0) {
			return true
		}
	}
	return false
}

// trimStore makes one pass of store retention over the topics this node
// owns. A failure ends the pass; the next one starts over.
func (n *Node) trimStore(ctx context.Context, now time.Time) {
	after := ""
	for {
		lctx, cancel := context.WithTimeout(ctx, n.cfg.StoreTimeout)
		heads, err := n.cfg.Store.Topics(lctx, after, storeSweepPage)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("store retention: listing topics failed", "err", err, "kind", "store-sweep")
			}
			return
		}
		for _, h := range heads {
			r := n.durability.durable(h.Name)
			if r == nil || r.MaxAge <= 0 && r.MaxCount == 0 || !n.isRingOwner(n.name, h.Name) {
				continue
			}
			var through uint64
			if r.MaxCount > 0 && h.Seq > r.MaxCount {
				through = h.Seq - r.MaxCount
			}
			var before int64
			if r.MaxAge > 0 {
				before = now.Add(-r.MaxAge).UnixNano()
			}
			tctx, cancel := context.WithTimeout(ctx, n.cfg.StoreTimeout)
			deleted, err := n.cfg.Store.Trim(tctx, h.Name, through, before)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					n.log.Warn("store retention: trim failed", "topic", h.Name, "err", err, "kind", "store-sweep")
				}
				return
			}
			n.stats.storeTrimmed.Add(uint64(deleted))
		}
		if len(heads) < storeSweepPage {
			return
		}
		after = heads[len(heads)-1].Name
	}
}
