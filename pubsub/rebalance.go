package pubsub

import (
	"time"

	"github.com/ringcast/ringcast/ring"
)

// reregisterAfter is how long a node waits for an owner to acknowledge a
// re-registration before sending it again (re-registering is idempotent; the
// first one may have been forwarded toward an owner that failed).
const reregisterAfter = time.Second

// reconcileInterval is how often a node re-checks, besides every ring
// change, that each topic it owns is still its own and that each local
// topic is registered with the current owner. It repairs what a lost frame
// or a view that changed twice in quick succession left behind.
const reconcileInterval = 250 * time.Millisecond

// loop follows ring changes. It is the only goroutine that moves topics
// and re-registers subscriptions, so those never race with each other.
func (n *Node) loop() {
	defer close(n.loopDone)
	views, cancel := n.ring.Watch()
	defer cancel()
	tick := time.NewTicker(reconcileInterval)
	defer tick.Stop()
	prev := n.ring.View()
	for {
		select {
		case <-n.done:
			return
		case v := <-views:
			n.departed(prev, v)
			prev = v
			n.peers.flushParked()
			n.reconcile()
		case <-tick.C:
			n.retention.tick(time.Now())
			n.peers.flushParked()
			n.reconcile()
		}
	}
}

// departed forgets members that left between two views: their links close
// and owners stop sending to them. It also notes members that stopped
// owning topics while staying members (draining before a graceful leave):
// they still hold the state of their topics until they have handed it off,
// so claims ask them too.
func (n *Node) departed(prev, next *ring.View) {
	var gone []string
	for _, m := range prev.Members() {
		now, ok := next.Member(m.Name)
		switch {
		case !ok:
			gone = append(gone, m.Name)
			n.drained.Delete(m.Name)
		case m.HasRole(RoleTopics) && !now.HasRole(RoleTopics):
			n.drained.Store(m.Name, time.Now())
		case now.HasRole(RoleTopics):
			n.drained.Delete(m.Name)
		}
	}
	if len(gone) == 0 {
		return
	}
	n.log.Info("members departed", "members", gone)
	n.presenceDeparted(gone)
	for _, name := range gone {
		n.tr.ClosePeer(name)
		n.pending.failPeer(name)
		n.peers.departed(name)
	}
	n.queueNodesDeparted(gone)
	for _, ot := range n.owned.all() {
		ot.mu.Lock()
		if ot.gone.Load() {
			ot.mu.Unlock()
			continue
		}
		for _, name := range gone {
			n.unsubscribeLocked(ot, name, maxHops)
			if ot.state == stateMoved && ot.movedTo == name {
				n.owned.drop(ot)
			}
		}
		ot.mu.Unlock()
	}
}

// reconcile moves topics this node no longer owns to their owner, drops
// tombstones every view now agrees on, expires history, forgets idle
// topics, and re-registers local topics whose owner changed or did not
// answer.
func (n *Node) reconcile() {
	n.presenceReconcile() // while leaving too: local entries move with the ring
	if n.leaving.Load() {
		return // Shutdown hands everything off itself and waits for it
	}
	v := n.view()
	now := time.Now()
	for _, ot := range n.owned.all() {
		owner := ""
		if m, err := v.Owner(ot.name); err == nil {
			owner = m.Name
		}
		ot.mu.Lock()
		if ot.gone.Load() {
			ot.mu.Unlock()
			continue
		}
		switch ot.state {
		case stateReady:
			ot.hist.expire(now.UnixNano())
			if owner != "" && owner != n.name {
				ot.mu.Unlock()
				n.handoff(ot, owner, nil)
				continue
			}
			if n.retention.idle(n.retention.now(), ot.active, len(ot.nodes), &ot.hist) && len(ot.queued) == 0 && ot.dur.settled(ot.seq) {
				n.owned.drop(ot)
				n.stats.forgotten.Add(1)
				n.log.Debug("idle topic forgotten", "topic", ot.name, "epoch", ot.epoch, "seq", ot.seq)
				// A Topic handle may hold ot until its next publish: let
				// go of what ot holds now.
				ot.hist, ot.local, ot.replicas, ot.replicaView = history{}, nil, nil, nil
			}
		case stateMoved:
			if owner != n.name {
				n.owned.drop(ot)
			}
		}
		ot.mu.Unlock()
	}
	n.reconcileReplicas(v, now)
	for _, lt := range n.local.all() {
		owner, _ := n.ownerName(lt.name)
		reg := &n.local.reg(lt.name).mu
		reg.Lock()
		lt.mu.Lock()
		stale := !lt.removed && owner != "" && lt.based &&
			(lt.owner != owner || !lt.confirmed && now.Sub(lt.regAt) > reregisterAfter)
		lt.mu.Unlock()
		if stale {
			n.register(lt, false)
		}
		reg.Unlock()
	}
	n.reconcileQueues(now)
}
