package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/ring"
	"github.com/ringcast/ringcast/transport"
)

// Node is a member of a ringcast cluster: it holds local subscriptions,
// owns a share of the topics (with RoleTopics), and routes publishes to
// their owners. All methods are safe for concurrent use.
type Node struct {
	cfg  Config
	name string
	log  *slog.Logger

	ring  *ring.Ring
	tr    *transport.Transport
	local *localTable
	// regMu serialises, per shard of topics, a topic's registration
	// changes: first subscriber and registration, last subscriber and
	// unregistration, re-registration. Without it an unsubscribe could
	// overtake the subscribe that followed it and leave that subscription
	// deaf. It is the outermost lock.
	regMu [shardCount]sync.Mutex
	// staleTold remembers, per shard (guarded by regMu), when this node
	// last answered a stale delivery of a topic (see unsubscribeStale).
	staleTold [shardCount]map[string]time.Time
	owned     *ownerTable
	replicas  *replicaTable
	pending   *pendingTable
	dispatch  *dispatcher
	parked    parking
	stats     counters

	clock       atomic.Int64 // unix nanos, refreshed every reconcileInterval: see now
	joining     atomic.Int32 // Join calls under way: the view may not show the cluster yet
	leaving     atomic.Bool
	drained     sync.Map     // member name -> time it stopped owning topics
	lastRequest atomic.Int64 // unix nanos of the last request frame from a peer
	views       atomic.Pointer[viewCache]
	closeOnce   sync.Once
	closeErr    error
	done        chan struct{}
	loopDone    chan struct{}
}

// viewCache keeps, for one ring view, the derived views this node routes
// with: itself removed (who owned a topic before it joined, and the view it
// routes by while it leaves).
type viewCache struct {
	base    *ring.View
	without *ring.View
}

// New starts a node: it listens for peer links, starts gossip, and joins
// Config.Seeds if any are given. Call Shutdown (or Close) to stop it.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		name:     cfg.NodeName,
		log:      cfg.Logger.With("node", cfg.NodeName),
		local:    newLocalTable(),
		owned:    newOwnerTable(),
		replicas: newReplicaTable(),
		pending:  newPendingTable(),
		done:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	n.tr, err = transport.New(transport.Config{
		NodeName:        cfg.NodeName,
		ProtocolVersion: wire.ProtocolVersion,
		ClusterName:     cfg.ClusterName,
		ListenAddr:      cfg.PeerAddr,
		Secret:          cfg.Secret,
		MaxFrameSize:    cfg.MaxPayload + 64<<10 + 2*MaxTopicLen,
		Handler:         transport.HandlerFunc(n.handleFrame),
		Logger:          n.log,
	})
	if err != nil {
		return nil, fmt.Errorf("pubsub: peer link: %w", err)
	}
	rc := cfg.ringConfig(n.tr.Addr())
	rc.Logger = n.log
	n.ring, err = ring.New(rc)
	if err != nil {
		_ = n.tr.Close()
		return nil, fmt.Errorf("pubsub: membership: %w", err)
	}
	n.dispatch = newDispatcher(cfg.Workers)
	n.clock.Store(time.Now().UnixNano())
	go n.loop()
	if len(cfg.Seeds) > 0 {
		if err := n.Join(context.Background(), cfg.Seeds...); err != nil {
			_ = n.Close()
			return nil, err
		}
	}
	n.log.Info("node started", "gossip", n.GossipAddr(), "peer", n.PeerAddr(), "roles", cfg.Roles)
	return n, nil
}

// Name returns the node's name in the cluster.
func (n *Node) Name() string { return n.name }

// GossipAddr returns the gossip address other nodes pass as a seed.
func (n *Node) GossipAddr() string { return n.ring.GossipAddr() }

// PeerAddr returns the address of the node's peer-link listener.
func (n *Node) PeerAddr() string { return n.tr.Addr() }

// Join contacts the given gossip addresses and joins their cluster. It
// succeeds if at least one was reached.
func (n *Node) Join(ctx context.Context, seeds ...string) error {
	if n.isClosed() {
		return ErrClosed
	}
	n.joining.Add(1)
	defer n.joining.Add(-1)
	if _, err := n.ring.Join(ctx, seeds...); err != nil {
		return fmt.Errorf("pubsub: join %v: %w", seeds, err)
	}
	return nil
}

// Members returns the members this node currently sees, itself included,
// sorted by name.
func (n *Node) Members() []Member { return n.ring.Members() }

// Owner returns the member that owns topic in this node's view.
func (n *Node) Owner(topic string) (Member, error) {
	if err := ValidateTopic(topic); err != nil {
		return Member{}, err
	}
	m, err := n.view().Owner(topic)
	if err != nil {
		return Member{}, fmt.Errorf("%w: %w", ErrNoOwner, err)
	}
	return m, nil
}

// Replicas returns the members that keep a copy of topic's sequence and
// history besides its owner, in this node's view: the ReplicationFactor-1
// members that follow the owner on the ring (fewer in a smaller cluster).
func (n *Node) Replicas(topic string) ([]Member, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	owners, err := n.view().Owners(topic, n.cfg.ReplicationFactor)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoOwner, err)
	}
	return owners[1:], nil
}

// PublishResult is the owner's acknowledgement of a publish.
type PublishResult struct {
	// Epoch and Seq place the message in the topic's order (both zero with
	// AckNone).
	Epoch uint64
	Seq   uint64
}

// Publish sends data to every subscriber of topic, through the topic's
// owner (no network hop when this node is the owner). With the default
// AckOwner it returns once the owner has sequenced the message. Publish
// does not keep data: it may be reused once Publish returns.
func (n *Node) Publish(ctx context.Context, topic string, data []byte, opts ...PublishOption) (PublishResult, error) {
	return n.publish(ctx, topic, nil, data, opts)
}

// publish is Publish. cached, when not nil, is a Topic handle's memory of
// the topic's owner state, read instead of the owner table and refreshed
// from it; the handle validated the topic.
func (n *Node) publish(ctx context.Context, topic string, cached *atomic.Pointer[ownedTopic], data []byte, opts []PublishOption) (PublishResult, error) {
	var o publishOptions
	if len(opts) > 0 {
		o = applyPublishOptions(opts)
	}
	if len(data) > n.cfg.MaxPayload {
		return PublishResult{}, fmt.Errorf("%w: %d bytes, at most %d", ErrPayloadTooLarge, len(data), n.cfg.MaxPayload)
	}
	if n.isClosed() {
		return PublishResult{}, ErrClosed
	}
	// A topic in the owner table is valid: nothing enters it unchecked.
	var ot *ownedTopic
	if cached != nil {
		if old := cached.Load(); old != nil && !old.gone.Load() {
			ot = old
		} else if ot = n.owned.get(topic); ot != old {
			cached.Store(ot)
		}
	} else {
		ot = n.owned.get(topic)
	}
	owner := n.name
	if ot == nil {
		if cached == nil {
			if err := ValidateTopic(topic); err != nil {
				return PublishResult{}, err
			}
		}
		var err error
		if owner, err = n.ringOwner(topic); err != nil {
			return PublishResult{}, err
		}
	}
	n.stats.published.Add(1)
	req := pubReq{topic: topic, data: data, origin: n.name, ack: o.ack}
	if owner == n.name {
		req.data = append([]byte(nil), data...)
		res, ok := n.publishOwned(ot, &req)
		if ok {
			return PublishResult{Epoch: res.epoch, Seq: res.seq}, res.err
		}
	} else {
		// data is encoded into the frame before sendPublish returns.
		if err := n.sendPublish(&req, owner); err != nil {
			return PublishResult{}, err
		}
	}
	if o.ack == AckNone || req.done == nil {
		return PublishResult{}, nil
	}
	select {
	case res := <-req.done:
		return PublishResult{Epoch: res.epoch, Seq: res.seq}, res.err
	case <-ctx.Done():
		if req.reqID != 0 {
			n.pending.cancel(req.reqID)
		}
		return PublishResult{}, ctx.Err()
	case <-n.done:
		return PublishResult{}, ErrClosed
	}
}

// Subscribe subscribes to topic and returns once the topic's owner has
// accepted the subscription: every message published after Subscribe
// returns is delivered, in order, once. Read messages with Next.
func (n *Node) Subscribe(ctx context.Context, topic string, opts ...SubscribeOption) (*Subscription, error) {
	return n.subscribe(ctx, topic, nil, opts)
}

// SubscribeFunc is Subscribe for callers that do not want a goroutine per
// subscription: fn is called for each message, in order, on one of the
// node's dispatcher workers (Config.Workers). Calls for one subscription
// never overlap; calls for different subscriptions run concurrently. fn
// must return quickly and must not block on other subscriptions (hand slow
// work to a goroutine of your own): a blocked fn holds a worker, and its
// buffer overflowing ends the subscription like any slow consumer. Use
// OnClose to learn that the node ended the subscription. Neither fn nor the
// OnClose function may call Close or Shutdown directly (see Close).
func (n *Node) SubscribeFunc(ctx context.Context, topic string, fn func(Message), opts ...SubscribeOption) (*Subscription, error) {
	if fn == nil {
		return nil, errors.New("pubsub: SubscribeFunc with a nil function")
	}
	return n.subscribe(ctx, topic, fn, opts)
}

func (n *Node) subscribe(ctx context.Context, topic string, fn func(Message), opts []SubscribeOption) (*Subscription, error) {
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	if n.isClosed() {
		return nil, ErrClosed
	}
	s := newSubscription(n, topic, fn, o)
	reg := &n.regMu[shardOf(topic)]
	reg.Lock()
	lt, first := n.local.add(s)
	if first {
		n.register(lt, true)
	}
	reg.Unlock()
	select {
	case <-lt.ready:
	case <-ctx.Done():
		s.end(ctx.Err())
		n.detach(s)
		return nil, ctx.Err()
	case <-n.done:
		return nil, ErrClosed
	}
	lt.mu.Lock()
	err := lt.regErr
	lt.mu.Unlock()
	if err == nil && o.since != nil {
		err = n.recover(ctx, s, lt, *o.since)
	} else if err == nil {
		lt.mu.Lock()
		start := Position{Epoch: lt.epoch, Seq: lt.last}
		lt.mu.Unlock()
		s.mu.Lock()
		s.start = start
		s.mu.Unlock()
	}
	if err != nil {
		s.end(err)
		n.detach(s)
		return nil, err
	}
	return s, nil
}

// register sends the topic's registration to its owner (0→1, or again
// after the owner changed). first marks the registration Subscribe waits
// for.
func (n *Node) register(lt *localTopic, first bool) {
	owner, err := n.ownerName(lt.name)
	lt.mu.Lock()
	req := &subReq{topic: lt.name, origin: n.name, since: lt.last, hasSince: lt.based}
	lt.confirmed, lt.regAt = false, time.Now()
	if err == nil {
		lt.owner = owner
	}
	lt.mu.Unlock()
	req.done = func(owner string, epoch, seq uint64, err error) {
		n.onRegistered(lt, first, owner, epoch, seq, err)
	}
	n.log.Debug("registering topic with its owner", "topic", lt.name, "owner", owner, "first", first, "since", req.since, "resume", req.hasSince, "err", err)
	switch {
	case err != nil:
		req.done("", 0, 0, err)
	case owner == n.name:
		n.ownerSubscribe(req)
	default:
		if err := n.sendSubscribe(req, owner); err != nil {
			req.done("", 0, 0, err)
		}
	}
}

// onRegistered applies an owner's answer to a registration. When the owner
// is this node it runs under the owner's topic lock, so no message
// sequenced after the registration can be delivered before it.
func (n *Node) onRegistered(lt *localTopic, first bool, owner string, epoch, seq uint64, err error) {
	lt.mu.Lock()
	if err == nil {
		lt.confirmed = true
		if owner != "" {
			lt.owner = owner
		}
		switch {
		case !lt.based || epoch != lt.epoch:
			lt.based, lt.epoch, lt.last, lt.pending = true, epoch, seq, nil
		case seq > lt.last:
			// A resumed registration: the owner holds nothing between what
			// this node delivered and seq.
			n.stats.gaps.Add(1)
			n.log.Info("sequence numbers skipped on resume", "topic", lt.name, "from", lt.last+1, "to", seq)
			lt.last = seq
			for s := range lt.pending {
				if s <= seq {
					delete(lt.pending, s)
				}
			}
			lt.drainPending(n, false)
		}
	} else if !first {
		n.log.Warn("re-registering subscriptions failed; will retry", "topic", lt.name, "err", err)
	}
	if first {
		lt.regErr = err
		close(lt.ready)
	}
	lt.mu.Unlock()
	if first && err != nil {
		n.local.forget(lt)
	}
}

// detach removes s from its topic and tells the owner when it was the last
// local subscriber (N→0).
func (n *Node) detach(s *Subscription) {
	reg := &n.regMu[shardOf(s.topic)]
	reg.Lock()
	defer reg.Unlock()
	owner, last := n.local.remove(s)
	if !last {
		return
	}
	n.unregister(s.topic, owner)
	// The owner recorded may be stale (it failed, or the topic moved before
	// this node re-registered): tell the current one too, or it would keep
	// sending to a node without subscribers.
	if cur, err := n.ownerName(s.topic); err == nil && cur != owner {
		n.unregister(s.topic, cur)
	}
}

// unregister tells owner that this node has no subscriber for topic left.
func (n *Node) unregister(topic, owner string) {
	if owner == n.name {
		n.ownerUnsubscribe(topic, n.name, 0)
		return
	}
	if err := n.sendMsg(owner, &wire.Unsubscribe{Topic: topic, Origin: n.name}); err != nil && !n.isClosed() {
		n.log.Debug("unsubscribe not sent", "topic", topic, "owner", owner, "err", err)
	}
}

// view returns the ring view this node routes by: the gossip view, minus
// this node once it is leaving.
func (n *Node) view() *ring.View {
	vc := n.cache()
	if n.leaving.Load() {
		return vc.without
	}
	return vc.base
}

func (n *Node) cache() *viewCache {
	v := n.ring.View()
	if vc := n.views.Load(); vc != nil && vc.base == v {
		return vc
	}
	vc := &viewCache{base: v, without: v.Without(n.name)}
	n.views.Store(vc)
	return vc
}

// ownerName returns where to send a request for topic: this node when it
// holds the topic's owner state (ready, being claimed, or a tombstone that
// forwards it), the owner in this node's view otherwise. State held here
// wins over the view because the view may lag: right after a hand-off the
// new owner must serve the topic even if gossip has not told it yet that
// the old owner is draining.
func (n *Node) ownerName(topic string) (string, error) {
	if n.owned.get(topic) != nil {
		return n.name, nil
	}
	return n.ringOwner(topic)
}

// isRingOwner reports whether name owns topic in this node's view.
func (n *Node) isRingOwner(name, topic string) bool {
	owner, err := n.ringOwner(topic)
	return err == nil && owner == name
}

// ringOwner returns the owner of topic in this node's view of the ring,
// for callers that already know the owner table has no entry for it.
func (n *Node) ringOwner(topic string) (string, error) {
	m, err := n.view().Owner(topic)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoOwner, err)
	}
	return m.Name, nil
}

// previousOwner returns who would own topic without this node.
func (n *Node) previousOwner(topic string) (string, error) {
	m, err := n.cache().without.Owner(topic)
	if err != nil {
		return "", err
	}
	return m.Name, nil
}

// sendTo queues a complete frame for a member. A node that gossip has not
// announced here yet (it just joined and asked something) gets its frames
// once it is, in order; see parking.
func (n *Node) sendTo(name string, frame []byte) error {
	peer, m, direct, err := n.route(name)
	switch {
	case err != nil:
		return err
	case !direct:
		return n.parked.sendOrPark(n, name, m, peer.Addr != "", frame)
	}
	return n.send(name, peer.Addr, frame)
}

// sendMsg sends one message to a member, encoded straight into the link's
// queue when nothing is parked.
func (n *Node) sendMsg(name string, msg wire.Message) error {
	peer, _, direct, err := n.route(name)
	switch {
	case err != nil:
		return err
	case !direct:
		return n.sendTo(name, wire.EncodeFrame(msg))
	}
	if err := n.tr.SendMsg(peer, msg); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// route says how to reach a member: direct when the view lists it and no
// frame is parked (which would have to go first); otherwise through
// parking, with peer.Addr empty if the view does not list it yet.
func (n *Node) route(name string) (peer transport.Peer, m ring.Member, direct bool, err error) {
	if name == n.name {
		return peer, m, false, fmt.Errorf("%w: frame addressed to this node", ErrUnavailable)
	}
	m, ok := n.ring.View().Member(name)
	if ok {
		peer = transport.Peer{Name: name, Addr: m.PeerAddr}
	}
	return peer, m, ok && n.parked.count.Load() == 0, nil
}

func (n *Node) send(name, addr string, frame []byte) error {
	if err := n.tr.Send(transport.Peer{Name: name, Addr: addr}, frame); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// framePool holds buffers for frames encoded once and copied into several
// links' queues (Send copies), so fan-out allocates no frame.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledFrame keeps buffers grown by a large message out of the pool.
const maxPooledFrame = 64 << 10

func getFrameBuf() *[]byte { return framePool.Get().(*[]byte) }

func putFrameBuf(b *[]byte, frame []byte) {
	if cap(frame) <= maxPooledFrame {
		*b = frame[:0]
		framePool.Put(b)
	}
}

func (n *Node) isClosed() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}
