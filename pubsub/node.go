package pubsub

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/ringcast/ringcast/pubsub/internal/logsample"
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

	ring     *ring.Ring
	tr       *transport.Transport
	peers    *peers
	router   *router
	local    *localTable
	owned    *ownerTable
	replicas *replicaTable
	pending  *pendingTable
	timers   *timers
	dispatch *dispatcher
	stats    counters
	// retention bounds what the owner and replica tables keep.
	retention *retention
	// Queue groups (queue.go, queue_owner.go): this node's members, and
	// the groups of the topics it owns.
	queues     queueMembers
	queueOwner queueOwner

	// Presence (presence*.go): the sets this node owns, its own entries,
	// and its copies of the sets it watches.
	presenceRules  presenceRules
	presenceOwners *presenceOwners
	presenceOut    *presenceLocal
	presenceIn     *presenceWatchers

	// Durable topics (durable.go, commit.go): nil committer without a
	// Store. storeCtx ends store calls at Close; storeWork counts the
	// goroutines that make them; storeReads bounds the reads at once.
	durability  durabilityRules
	committer   *committer
	storeCtx    context.Context
	storeCancel context.CancelFunc
	storeWork   sync.WaitGroup
	storeReads  chan struct{}

	joining     joinGauge // joins under way: the view may not show the cluster yet
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

// sampleLogs wraps the handler of Config.Logger in the sampling handler
// that the node, its transport and its ring log through. Tests replace it.
var sampleLogs = func(h slog.Handler) slog.Handler {
	return logsample.New(h, logsample.Options{})
}

// New starts a node: it listens for peer links, starts gossip, and joins
// Config.Seeds if any are given. Seeds that cannot be reached do not make New
// fail: it tries them once and, if none answers, returns a node that keeps
// trying in the background (see Joined). Call Shutdown (or Close) to stop
// it.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	// Every line carries the node's name once: the node's and its
	// transport's through n.log, the ring's (and memberlist's) through the
	// name the ring adds to base itself.
	base := slog.New(sampleLogs(cfg.Logger.Handler()))
	n := &Node{
		cfg:       cfg,
		name:      cfg.NodeName,
		log:       base.With("node", cfg.NodeName),
		retention: newRetention(cfg),
		timers:    newTimers(),
		done:      make(chan struct{}),
		loopDone:  make(chan struct{}),
	}
	if n.durability, err = newDurabilityRules(cfg.Durability); err != nil {
		return nil, err
	}
	if n.presenceRules, err = newPresenceRules(cfg.Presence); err != nil {
		return nil, err
	}
	n.presenceOwners, n.presenceOut, n.presenceIn = newPresenceOwners(n), newPresenceLocal(n), newPresenceWatchers(n)
	n.storeCtx, n.storeCancel = context.WithCancel(context.Background())
	if cfg.Store != nil {
		n.committer = newCommitter(cfg.Store, cfg.StoreTimeout, &n.stats, n.settleCommit)
		n.storeReads = make(chan struct{}, maxStoreReads)
	}
	n.local = newLocalTable(&n.stats, n.log)
	n.owned = newOwnerTable(n.retention, n.durableFor)
	n.replicas = newReplicaTable(n.retention)
	n.pending = newPendingTable(n.timers)
	n.tr, err = transport.New(transport.Config{
		NodeName:        cfg.NodeName,
		ProtocolVersion: wire.ProtocolVersion,
		ClusterName:     cfg.ClusterName,
		ListenAddr:      cfg.PeerAddr,
		Secret:          cfg.Secret,
		TLS:             cfg.PeerTLS,
		MaxFrameSize:    linkFrameLimit(cfg),

		InsecureAllowRemotePeers: cfg.InsecureAllowRemotePeers,
		Handler:                  transport.HandlerFunc(n.handleFrame),
		Logger:                   n.log,
	})
	if err != nil {
		n.storeCancel()
		return nil, fmt.Errorf("pubsub: peer link: %w", err)
	}
	rc := cfg.ringConfig(n.tr.Addr())
	rc.Logger = base
	n.ring, err = ring.New(rc)
	if err != nil {
		_ = n.tr.Close()
		n.storeCancel()
		return nil, fmt.Errorf("pubsub: membership: %w", err)
	}
	n.joining.ring = n.ring
	n.peers = &peers{self: n.name, tr: n.tr, ring: n.ring, stats: &n.stats, wait: cfg.RequestTimeout}
	n.router = &router{self: n.name, peers: n.peers, pending: n.pending, timeout: cfg.RequestTimeout, stats: &n.stats}
	n.dispatch = newDispatcher(cfg.Workers)
	go n.timers.run(n.done)
	go n.loop()
	if n.committer != nil {
		go n.committer.run(n.storeCtx)
		n.storeWork.Add(1)
		go n.sweepStore()
	}
	if len(cfg.Seeds) > 0 {
		// A failure is logged by the ring, which goes on trying.
		n.joining.Add(1)
		_ = n.ring.JoinSeeds(context.Background())
		n.joining.Add(-1)
	}
	n.log.Info("node started", "gossip", n.GossipAddr(), "peer", n.PeerAddr(), "roles", cfg.Roles,
		"seeds", cfg.Seeds, "joined", n.Joined())
	return n, nil
}

// joinGauge counts the joins under way: Join calls and the ring's own
// attempts to join the seeds.
type joinGauge struct {
	calls atomic.Int32
	ring  *ring.Ring
}

// Add adds d to the number of Join calls under way.
func (g *joinGauge) Add(d int32) { g.calls.Add(d) }

// Load returns the number of joins under way.
func (g *joinGauge) Load() int32 {
	n := g.calls.Load()
	if g.ring != nil && g.ring.Joining() {
		n++
	}
	return n
}

// Name returns the node's name in the cluster.
func (n *Node) Name() string { return n.name }

// GossipAddr returns the gossip address other nodes pass as a seed.
func (n *Node) GossipAddr() string { return n.ring.GossipAddr() }

// PeerAddr returns the address of the node's peer-link listener.
func (n *Node) PeerAddr() string { return n.tr.Addr() }

// Join contacts the given gossip addresses and joins their cluster, once:
// it succeeds if at least one was reached. Use it to wait for a cluster;
// Config.Seeds are joined without waiting, and retried.
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

// Joined reports whether the node is part of a cluster with other members:
// a join succeeded, or another member joined it. A node started with Seeds
// that were not reachable reports false until it reaches one; it logs
// "joined the cluster" when it does.
func (n *Node) Joined() bool { return n.ring.Joined() }

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

func (n *Node) isClosed() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}
