package ring

import (
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. Memberlist calls them on its own
// goroutines, some while holding its node lock, so none of them blocks: each
// updates the member table under a short lock and wakes the rebuild
// goroutine without waiting.
type delegate struct {
	r *Ring
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

// NodeMeta returns the local metadata.
func (d *delegate) NodeMeta(limit int) []byte {
	meta := *d.r.meta.Load()
	if len(meta) > limit {
		// New checked the size against memberlist.MetaMaxSize, which is
		// the limit memberlist passes.
		return nil
	}
	return meta
}

// NotifyMsg ignores user messages: ringcast sends none over gossip.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts returns no user broadcasts.
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState returns no extra push/pull state.
func (d *delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState ignores extra push/pull state.
func (d *delegate) MergeRemoteState([]byte, bool) {}

// NotifyJoin records a member that joined (or came back).
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.r.observe(n) }

// NotifyUpdate records a member whose metadata changed.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.r.observe(n) }

// NotifyLeave records a member that left or failed. memberlist v0.7.0 leaves
// n.State at StateAlive (hashicorp/memberlist#293), so a departure counts as
// a leave when n.State says so or when the member announced it in its
// metadata first (see Ring.Leave).
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	r := d.r
	state := memberlist.StateDead
	r.mu.Lock()
	if e, ok := r.entries[n.Name]; (ok && e.leaving) || n.State == memberlist.StateLeft ||
		(n.Name == r.set.NodeName && r.leaving.Load()) {
		state = memberlist.StateLeft
	}
	delete(r.entries, n.Name)
	r.departed[n.Name] = state
	if state == memberlist.StateDead {
		r.noteFailed(n.Name, n.Address(), time.Now())
	} else {
		delete(r.lost, n.Name)
	}
	r.mu.Unlock()
	r.signal()
}

// observe decodes n's metadata and records the result.
func (r *Ring) observe(n *memberlist.Node) {
	md, err := memberFromNode(n, r.set.ProtocolVersion)
	if err != nil {
		md.member = Member{Name: n.Name, GossipAddr: n.Address()}
	}
	r.mu.Lock()
	r.entries[n.Name] = entry{member: md.member, leaving: md.leaving, err: err}
	delete(r.lost, n.Name)
	r.mu.Unlock()
	r.signal()
}

// signal wakes the rebuild goroutine without blocking; a pending wake-up
// already covers this change.
func (r *Ring) signal() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run is the rebuild goroutine. Close stops it.
func (r *Ring) run() {
	defer r.wg.Done()
	for {
		select {
		case <-r.done:
			return
		case <-r.kick:
			r.rebuild()
		}
	}
}

// Refresh brings the view up to date with every membership change gossip
// has reported so far, without waiting for the rebuild goroutine, and
// returns it. Use it before a decision that must not rest on a view a few
// microseconds old: right after joining, memberlist has reported the whole
// cluster before the view shows it.
func (r *Ring) Refresh() *View {
	r.rebuild()
	return r.View()
}

// rebuild builds and publishes a new View when the member set changed, and
// logs what changed. The rebuild goroutine runs it after each change;
// Refresh and Join run it directly.
func (r *Ring) rebuild() {
	r.rebuildMu.Lock()
	defer r.rebuildMu.Unlock()
	members, rejected, departed := r.snapshotMembers()
	r.logRejected(rejected)

	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	prev := r.view.Load()
	var version uint64
	var prevMembers []Member
	if prev != nil {
		if sameMembers(prev.members, members) {
			return
		}
		version, prevMembers = prev.version, prev.members
	}
	v := newSortedView(r.params, version+1, members)
	r.publish(v)
	r.logChanges(prevMembers, v, departed, rejected)
}

// logRejected logs each member whose metadata was rejected, once per reason.
func (r *Ring) logRejected(rejected map[string]error) {
	for name, err := range rejected {
		reason := err.Error()
		if r.rejected[name] == reason {
			continue
		}
		r.rejected[name] = reason
		r.log.Warn("member left out of the ring: bad metadata", "member", name, "err", err)
	}
	for name := range r.rejected {
		if _, ok := rejected[name]; !ok {
			delete(r.rejected, name)
		}
	}
}

// logChanges logs the difference between the previous member list and v.
func (r *Ring) logChanges(prev []Member, v *View, departed map[string]memberlist.NodeStateType, rejected map[string]error) {
	i, j := 0, 0
	for i < len(prev) || j < len(v.members) {
		switch {
		case j == len(v.members) || (i < len(prev) && prev[i].Name < v.members[j].Name):
			r.logDeparture(prev[i], departed, rejected)
			i++
		case i == len(prev) || v.members[j].Name < prev[i].Name:
			m := v.members[j]
			r.log.Info("member joined", memberAttrs(m)...)
			j++
		default:
			if !prev[i].equal(v.members[j]) {
				r.log.Info("member updated", memberAttrs(v.members[j])...)
			}
			i++
			j++
		}
	}
	if v.excluded > 0 {
		r.log.Warn("more topic owners than partitions; the last ones by name are left off the ring",
			"owners", v.OwnerCount()+v.excluded, "partitions", v.params.partitions)
	}
	r.log.Debug("view changed", "version", v.version, "members", len(v.members), "owners", v.OwnerCount())
}

// logDeparture logs why m is no longer in the view.
func (r *Ring) logDeparture(m Member, departed map[string]memberlist.NodeStateType, rejected map[string]error) {
	attrs := memberAttrs(m)
	state, ok := departed[m.Name]
	switch {
	case ok && state == memberlist.StateLeft:
		r.log.Info("member left", attrs...)
	case ok:
		r.log.Info("member failed", attrs...)
	case rejected[m.Name] != nil:
		r.log.Info("member removed: bad metadata", append(attrs, "err", rejected[m.Name])...)
	default:
		r.log.Info("member removed", attrs...)
	}
}

// memberAttrs returns log attributes describing m.
func memberAttrs(m Member) []any {
	return []any{
		slog.String("member", m.Name),
		slog.String("gossip_addr", m.GossipAddr),
		slog.String("peer_addr", m.PeerAddr),
		slog.Any("roles", m.Roles),
	}
}
