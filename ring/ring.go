package ring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Errors returned by this package. Errors carrying details wrap one of these;
// match them with errors.Is.
var (
	// ErrNoOwners means no member of the view owns topics (has RoleTopics).
	ErrNoOwners = errors.New("ring: no member owns topics")
	// ErrClosed is returned by operations on a closed Ring.
	ErrClosed = errors.New("ring: closed")
	// ErrInvalidConfig is returned by New for a Config it cannot use.
	ErrInvalidConfig = errors.New("ring: invalid config")
	// ErrInvalidCount is returned by Owners for a count below 1.
	ErrInvalidCount = errors.New("ring: owner count must be at least 1")
	// ErrJoin is returned by Join when no seed could be contacted.
	ErrJoin = errors.New("ring: join failed")
	// ErrLeft is returned by Join after Leave: a node that left cannot
	// join again; start a new Ring instead.
	ErrLeft = errors.New("ring: node has left the cluster")
)

// defaultLeaveTimeout bounds Leave when its context has no deadline.
const defaultLeaveTimeout = 5 * time.Second

// leaveConfirmWait bounds each of Leave's two waits for memberlist to
// gossip its notices. They complete within a few gossip rounds while other
// members listen; when the others stop listening (they are shutting down
// too), nothing completes them and only the wait ends them.
const leaveConfirmWait = 2 * time.Second

// Ring is this node's membership in a ringcast cluster and its view of the
// hash ring. Create it with New and stop it with Close. All methods are safe
// for concurrent use. View, Members, Owner and Owners never block.
type Ring struct {
	set        *settings
	log        *slog.Logger
	ml         *memberlist.Memberlist
	protect    *protectedTransport // protected mode's gossip filter, or nil
	gossipAddr string
	params     params

	// localMu guards local and orders metadata changes (SetRoles, Leave).
	localMu sync.Mutex
	local   Member
	// meta is the encoded local metadata handed to memberlist. SetRoles
	// replaces it; Leave replaces it with a copy marked as leaving.
	meta    atomic.Pointer[[]byte]
	leaving atomic.Bool

	// mu guards the member table filled by memberlist's callbacks.
	mu       sync.Mutex
	entries  map[string]entry
	departed map[string]memberlist.NodeStateType
	// lost holds the members that failed, for healing to retry.
	lost map[string]*lostMember

	// joined is set once a join contacted another member.
	joined atomic.Bool
	// seedsStarted is set by the first JoinSeeds; joiningSeeds while it
	// has not joined yet.
	seedsStarted atomic.Bool
	joiningSeeds atomic.Bool

	// kick wakes the rebuild goroutine; capacity 1, sent without blocking.
	kick chan struct{}
	// rebuildMu serialises rebuilds (and guards rejected).
	rebuildMu sync.Mutex
	view      atomic.Pointer[View]
	// rejected is guarded by rebuildMu: members whose metadata
	// was rejected, with the logged reason.
	rejected map[string]string

	watchMu  sync.Mutex
	watchers map[uint64]chan *View
	watchSeq uint64

	// life orders Leave before Close: memberlist must not be asked to leave
	// once it is shut down.
	life      sync.RWMutex
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
	// ctx is canceled by Close; it bounds seed lookups.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// entry is a member as reported by memberlist: decoded, or the reason its
// metadata was rejected.
type entry struct {
	member Member
	// leaving is set once the member announced a graceful departure.
	leaving bool
	err     error
}

// New validates cfg, starts memberlist on cfg.BindAddr (alone, until Join
// or JoinSeeds) and builds the first View, which contains the local node.
// It also starts healing (see Timings.ReconnectInterval): from then on the
// Ring tries again to reach the members it loses to failure.
func New(cfg Config) (*Ring, error) {
	s, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	local := Member{
		Name:     s.NodeName,
		Roles:    s.Roles,
		PeerAddr: s.PeerAddr,
		Version:  s.ProtocolVersion,
	}
	meta, err := encodeMeta(local, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	r := &Ring{
		set:      s,
		log:      s.Logger.With("component", "ring", "node", s.NodeName),
		local:    local,
		params:   s.params(),
		entries:  make(map[string]entry),
		departed: make(map[string]memberlist.NodeStateType),
		lost:     make(map[string]*lostMember),
		kick:     make(chan struct{}, 1),
		rejected: make(map[string]string),
		watchers: make(map[uint64]chan *View),
		done:     make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.meta.Store(&meta)
	mlLog := s.Logger.With("component", "memberlist", "node", s.NodeName)
	mc := s.memberlistConfig(&delegate{r: r}, mlLog)
	if s.protected() {
		if r.protect, err = newProtectedTransport(mc, s.allowedNets(), r.log, mc.Logger); err != nil {
			r.cancel()
			return nil, fmt.Errorf("ring: start memberlist on %s: %w", s.BindAddr, err)
		}
		mc.Transport = r.protect
		if !s.advertisesAllowed() {
			r.log.Warn("ring: protected mode: gossip is bound to a non-loopback address, but only loopback members are accepted",
				"bind", s.BindAddr, "fix", protectedModeFix)
		}
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		if r.protect != nil {
			_ = r.protect.Shutdown()
		}
		r.cancel()
		return nil, fmt.Errorf("ring: start memberlist on %s: %w", s.BindAddr, err)
	}
	r.ml = ml
	r.gossipAddr = ml.LocalNode().Address()
	r.local.GossipAddr = r.gossipAddr
	r.rebuild()
	r.wg.Add(1)
	go r.run()
	if s.ReconnectInterval > 0 {
		r.wg.Add(1)
		go r.heal()
	}
	return r, nil
}

// Join contacts the given seed members ("host:port" gossip addresses) and
// merges their membership into this node's. It returns the number of seeds
// contacted. One reachable seed is enough: Join fails (wrapping ErrJoin)
// only if none answers. Seeds are tried in order, each bounded by the TCP
// timeout; ctx is checked before each one. Join with no seeds does nothing.
// Join may be called again at any time. Join tries once; JoinSeeds keeps
// trying, and healing rejoins lost members and seeds by itself. It returns
// ErrClosed after Close and ErrLeft after Leave.
func (r *Ring) Join(ctx context.Context, seeds ...string) (int, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	if r.leaving.Load() {
		return 0, ErrLeft
	}
	var (
		contacted int
		errs      []error
	)
	for _, seed := range seeds {
		if err := ctx.Err(); err != nil {
			return contacted, err
		}
		if r.closed.Load() {
			return contacted, ErrClosed
		}
		n, err := r.ml.Join([]string{seed})
		contacted += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	if contacted == 0 && len(errs) > 0 {
		return 0, fmt.Errorf("%w: %w", ErrJoin, errors.Join(errs...))
	}
	r.joined.Store(true)
	// The push/pull exchange reported the whole cluster: show it in the
	// view before Join returns.
	r.rebuild()
	r.life.RLock()
	if !r.closed.Load() {
		r.wg.Add(1)
		go r.resync()
	}
	r.life.RUnlock()
	return contacted, nil
}

// resyncAfter is how long after joining a node exchanges its whole state
// once more with a random member.
const resyncAfter = time.Second

// resync repairs a join that gossip missed. Two nodes that join the same
// seed at the same moment each get the seed's state from before the other
// arrived, and the gossip announcing the other can be lost; otherwise only
// the periodic push/pull (30 s with the LAN timings) would make them see
// each other. One more push/pull a second after joining closes that window.
func (r *Ring) resync() {
	defer r.wg.Done()
	t := time.NewTimer(resyncAfter)
	defer t.Stop()
	select {
	case <-r.done:
		return
	case <-t.C:
	}
	// The ring's own member table, not memberlist's nodes: memberlist
	// updates those in place under its own lock.
	var addrs []string
	r.mu.Lock()
	for _, e := range r.entries {
		if e.member.Name != r.set.NodeName {
			addrs = append(addrs, e.member.GossipAddr)
		}
	}
	r.mu.Unlock()
	if len(addrs) == 0 || r.leaving.Load() {
		return
	}
	addr := addrs[rand.IntN(len(addrs))]
	if _, err := r.ml.Join([]string{addr}); err != nil {
		r.log.Debug("state exchange after joining failed", "member", addr, "err", err)
	}
}

// Leave announces this node's graceful departure and waits until the
// announcement has been sent to other members, at most until ctx's deadline
// (default 5 s) and at most 2 s for each of its two notices. When the wait
// ends unconfirmed because no other member stays to hear it (the whole
// cluster is stopping at once), Leave succeeds. Other members then drop this node and log a leave rather
// than a failure; this node's own view no longer contains it. Call Close
// afterwards: a Ring that has left cannot join again. Leave on a closed Ring
// returns ErrClosed; a second Leave does nothing. Cancelling ctx without a
// deadline does not shorten the wait.
//
// Leave first gossips metadata marked as leaving, then memberlist's leave
// message. The mark is how other members tell a leave from a failure:
// memberlist v0.7.0 does not report the departed node's state to its event
// delegate (hashicorp/memberlist#293). A member that misses the mark still
// drops this node, but logs a failure.
func (r *Ring) Leave(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	timeout := defaultLeaveTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
		if timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	start := time.Now()
	r.life.RLock()
	defer r.life.RUnlock()
	if r.closed.Load() {
		return ErrClosed
	}
	r.localMu.Lock()
	announce := r.leaving.CompareAndSwap(false, true)
	if announce {
		meta, err := encodeMeta(r.local, true)
		if err != nil {
			announce = false
		} else {
			r.meta.Store(&meta)
		}
	}
	r.localMu.Unlock()
	if announce {
		if err := r.ml.UpdateNode(min(timeout/2, leaveConfirmWait)); err != nil {
			r.log.Debug("leave notice not confirmed", "err", err)
		}
	}
	if !r.othersStaying() {
		// Nobody stays to hear it (the others are leaving too, or gone):
		// say it once without waiting for a confirmation that cannot come.
		_ = r.ml.Leave(time.Millisecond)
		return nil
	}
	// memberlist waits forever on a zero timeout: keep it positive.
	wait := min(max(timeout-time.Since(start), time.Millisecond), leaveConfirmWait)
	if err := r.ml.Leave(wait); err != nil {
		if !r.othersStaying() {
			// The members that were to hear it left or failed meanwhile
			// (a whole cluster stopping at once): nobody is left to tell.
			r.log.Debug("leave not confirmed; no member stays to hear it", "err", err)
			return nil
		}
		return fmt.Errorf("ring: leave not confirmed within %v (%v): %w", time.Since(start).Round(time.Millisecond), err, context.DeadlineExceeded)
	}
	return nil
}

// othersStaying reports whether some other member is alive and not leaving.
func (r *Ring) othersStaying() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, e := range r.entries {
		if name != r.set.NodeName && !e.leaving && e.err == nil {
			return true
		}
	}
	return false
}

// Close stops memberlist and the Ring's goroutines without announcing a
// departure (other members will detect a failure unless Leave was called
// first). It waits for an in-progress Leave to return, and for join and
// reconnect attempts under way, each bounded by the TCP timeout. Close is idempotent
// and safe after Leave. After Close, View and the lookups keep answering from
// the last view; Join, Leave and SetRoles return ErrClosed.
func (r *Ring) Close() error {
	r.closeOnce.Do(func() {
		r.life.Lock()
		r.closed.Store(true)
		r.life.Unlock()
		r.closeErr = r.ml.Shutdown()
		r.cancel()
		close(r.done)
		r.wg.Wait()
	})
	return r.closeErr
}

// SetRoles changes the roles this node advertises (only RoleTopics and
// RoleGateway; an empty list leaves none) and gossips the change, waiting
// until it has been sent to other members, at most until ctx's deadline
// (default 5 s). This node's view changes first; every other node's view
// follows once the update reaches it. Dropping RoleTopics before Leave drains
// the node: every view moves its topics to other owners while it is still
// reachable. SetRoles returns an ErrInvalidConfig error for unknown roles,
// ErrClosed after Close and ErrLeft after Leave.
func (r *Ring) SetRoles(ctx context.Context, roles []string) error {
	rs, err := checkRoles(roles)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	timeout := defaultLeaveTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
		if timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	r.life.RLock()
	defer r.life.RUnlock()
	if r.closed.Load() {
		return ErrClosed
	}
	r.localMu.Lock()
	if r.leaving.Load() {
		r.localMu.Unlock()
		return ErrLeft
	}
	local := r.local
	local.Roles = rs
	meta, err := encodeMeta(local, false)
	if err != nil {
		r.localMu.Unlock()
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	r.local = local
	r.meta.Store(&meta)
	r.localMu.Unlock()
	// UpdateNode reads the newest metadata through NodeMeta, so concurrent
	// calls always end with the last roles set.
	if err := r.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("ring: role update not confirmed within %v (%v): %w", timeout, err, context.DeadlineExceeded)
	}
	return nil
}

// LocalName returns this node's name.
func (r *Ring) LocalName() string { return r.set.NodeName }

// LocalMember returns this node as it advertises itself (with the roles last
// set by SetRoles).
func (r *Ring) LocalMember() Member {
	r.localMu.Lock()
	m := r.local
	r.localMu.Unlock()
	m.Roles = slices.Clone(m.Roles)
	return m
}

// GossipAddr returns the gossip address this node advertises ("host:port"),
// with the actual port when the configured one was 0. Pass it to Join on
// other nodes.
func (r *Ring) GossipAddr() string { return r.gossipAddr }

// View returns the current membership snapshot. It never returns nil.
func (r *Ring) View() *View { return r.view.Load() }

// Members returns the current alive members sorted by name; see View.Members.
func (r *Ring) Members() []Member { return r.View().Members() }

// Owner returns the current owner of topic; see View.Owner.
func (r *Ring) Owner(topic string) (Member, error) { return r.View().Owner(topic) }

// Owners returns n distinct current owners of topic; see View.Owners.
func (r *Ring) Owners(topic string, n int) ([]Member, error) { return r.View().Owners(topic, n) }

// Watch returns a channel that receives the newest View after every
// membership change, and a cancel function that stops delivery.
//
// The channel has capacity 1 and coalesces: an unread older view is replaced
// by the newer one, so a slow reader never delays membership updates and
// always ends up with the latest view. Views arrive in increasing Version
// order. The channel is never closed, not even by Close: select on your own
// done channel too. To miss no change, call Watch before reading View, and
// ignore a received view whose Version is not newer than one already
// handled. cancel may be called more than once. Any number of watchers may
// exist.
func (r *Ring) Watch() (<-chan *View, func()) {
	ch := make(chan *View, 1)
	r.watchMu.Lock()
	r.watchSeq++
	id := r.watchSeq
	r.watchers[id] = ch
	r.watchMu.Unlock()
	cancel := func() {
		r.watchMu.Lock()
		delete(r.watchers, id)
		r.watchMu.Unlock()
	}
	return ch, cancel
}

// publish stores v as the current view and offers it to every watcher.
// Only the rebuild path calls it, so there is one sender per channel.
func (r *Ring) publish(v *View) {
	r.view.Store(v)
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	for _, ch := range r.watchers {
		select {
		case ch <- v:
			continue
		default:
		}
		// Replace the unread older view.
		select {
		case <-ch:
		default:
		}
		select {
		case ch <- v:
		default:
		}
	}
}

// snapshotMembers returns the decoded members, the rejected ones and the
// departures recorded since the previous call.
func (r *Ring) snapshotMembers() ([]Member, map[string]error, map[string]memberlist.NodeStateType) {
	r.mu.Lock()
	defer r.mu.Unlock()
	members := make([]Member, 0, len(r.entries))
	var rejected map[string]error
	for _, e := range r.entries {
		if e.err != nil {
			if rejected == nil {
				rejected = make(map[string]error)
			}
			rejected[e.member.Name] = e.err
			continue
		}
		members = append(members, e.member)
	}
	var departed map[string]memberlist.NodeStateType
	if len(r.departed) > 0 {
		departed = r.departed
		r.departed = make(map[string]memberlist.NodeStateType)
	}
	return members, rejected, departed
}

// sameMembers reports whether two name-sorted member lists are identical.
func sameMembers(a, b []Member) bool {
	return slices.EqualFunc(a, b, Member.equal)
}
