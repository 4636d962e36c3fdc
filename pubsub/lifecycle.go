package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Shutdown leaves the cluster gracefully: it hands every topic this node
// owns to its next owner (waiting for their acknowledgements until ctx is
// done), announces its departure to the cluster, then closes. Subscriptions
// end with ErrClosed. Shutdown is idempotent; after Close it does nothing.
func (n *Node) Shutdown(ctx context.Context) error {
	if n.isClosed() {
		return n.Close()
	}
	if !n.leaving.CompareAndSwap(false, true) {
		// Another Shutdown is draining: wait for it rather than cut it short.
		select {
		case <-n.done:
		case <-ctx.Done():
		}
		return n.Close()
	}
	// Drain: tell the cluster this node no longer owns topics, so every
	// view takes it off the ring while it still forwards what reaches it.
	var err error
	if slices.Contains(n.cfg.Roles, RoleTopics) {
		roles := slices.DeleteFunc(slices.Clone(n.cfg.Roles), func(r string) bool { return r == RoleTopics })
		if derr := n.ring.SetRoles(ctx, roles); derr != nil {
			err = fmt.Errorf("pubsub: drain: %w", derr)
		}
	}
	err = errors.Join(err, n.handOffAll(ctx))
	n.linger(ctx)
	if lerr := n.ring.Leave(ctx); lerr != nil {
		err = errors.Join(err, fmt.Errorf("pubsub: leave: %w", lerr))
	}
	n.log.Info("node left the cluster")
	return errors.Join(err, n.Close())
}

// Close stops the node at once, without handing its topics off: the
// cluster sees it as failed. Subscriptions end with ErrClosed; handlers of
// SubscribeFunc are not called after that, and OnClose is. Close is
// idempotent and returns when every goroutine of the node has stopped, so
// it must not be called from a SubscribeFunc handler or an OnClose
// function (they run on the node's workers): start a goroutine for that.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		// No handler call starts from here on: what is buffered is
		// dropped, as the subscriptions end below.
		for _, lt := range n.local.all() {
			lt.mu.Lock()
			for _, s := range lt.subs {
				s.stopped.Store(true)
			}
			lt.mu.Unlock()
		}
		n.endQueueMembers(true)
		// As memberlist does: the links first, so that no frame arrives
		// while the rest stops, then gossip, then the node's own loops.
		n.closeErr = errors.Join(n.tr.Close(), n.ring.Close())
		<-n.loopDone
		<-n.timers.done
		// Store calls under way end; publishes still queued for the store
		// fail with ErrClosed.
		n.storeCancel()
		if n.committer != nil {
			<-n.committer.done
		}
		n.storeWork.Wait()
		n.pending.close()
		n.presenceIn.close()
		n.endSubscriptions()
		n.dispatch.close()
		n.log.Info("node closed")
	})
	return n.closeErr
}

// endSubscriptions ends every local subscription with ErrClosed.
func (n *Node) endSubscriptions() {
	n.endQueueMembers(false)
	for _, lt := range n.local.all() {
		lt.mu.Lock()
		subs := lt.subs
		if lt.gapTimer != nil {
			lt.gapTimer.stop()
		}
		lt.mu.Unlock()
		for _, s := range subs {
			s.stopped.Store(true)
			if s.end(ErrClosed) && s.fn == nil {
				n.local.remove(s)
			}
		}
	}
}
