package ring

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
)

// hasher is the consistent.Hasher of every ring: xxhash64.
type hasher struct{}

func (hasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// ringMember is how an owner appears inside consistent: just its name.
type ringMember string

func (m ringMember) String() string { return string(m) }

// params are the ring parameters; every member of a cluster must use the same.
type params struct {
	partitions int
	vnodes     int
	load       float64
}

// View is an immutable snapshot of the membership and of the hash ring built
// from it. A View never changes after it is built; all its methods are safe
// for concurrent use and never block.
type View struct {
	version uint64
	params  params

	// members holds every valid alive member, sorted by name.
	members []Member
	// parts maps a partition to the index in members of its owner; nil
	// when no member owns topics.
	parts []int32
	// counts holds the number of partitions each member owns.
	counts []int32
	// succ lists the indices of the ring members in replica order (by the
	// hash of their names, as consistent's GetClosestN walks them).
	succ []int32
	// succPos maps a member index to its position in succ, -1 when the
	// member is not on the ring.
	succPos []int32
	// excluded counts topic owners left off the ring because there were
	// more of them than partitions.
	excluded int
}

// newView builds a View of members (any order; the slice is not retained).
func newView(p params, version uint64, members []Member) *View {
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	ms = slices.CompactFunc(ms, func(a, b Member) bool { return a.Name == b.Name })
	return newSortedView(p, version, slices.Clip(ms))
}

// newSortedView builds a View that takes ownership of ms, which must be
// sorted by name without duplicates.
func newSortedView(p params, version uint64, ms []Member) *View {
	v := &View{version: version, params: p, members: ms}

	// Owners are taken in name order, so the ring never depends on the
	// order members were discovered in, and the cap below drops the same
	// owners on every node.
	owners := make([]int32, 0, len(ms))
	for i, m := range ms {
		if m.HasRole(RoleTopics) {
			owners = append(owners, int32(i))
		}
	}
	if len(owners) > p.partitions {
		v.excluded = len(owners) - p.partitions
		owners = owners[:p.partitions]
	}
	if len(owners) == 0 {
		return v
	}

	cms := make([]consistent.Member, len(owners))
	index := make(map[string]int32, len(owners))
	for k, i := range owners {
		cms[k] = ringMember(ms[i].Name)
		index[ms[i].Name] = i
	}
	// consistent.New cannot panic here: the hasher is set, Load > 1 and
	// there are at least 2 virtual nodes per owner and no more owners than
	// partitions, so every partition finds an owner with spare load.
	c := consistent.New(cms, consistent.Config{
		Hasher:            hasher{},
		PartitionCount:    p.partitions,
		ReplicationFactor: p.vnodes,
		Load:              p.load,
	})

	v.parts = make([]int32, p.partitions)
	v.counts = make([]int32, len(ms))
	for pid := range p.partitions {
		i := index[c.GetPartitionOwner(pid).String()]
		v.parts[pid] = i
		v.counts[i]++
	}

	type keyed struct {
		key uint64
		idx int32
	}
	order := make([]keyed, len(owners))
	for k, i := range owners {
		order[k] = keyed{xxhash.Sum64String(ms[i].Name), i}
	}
	slices.SortFunc(order, func(a, b keyed) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(ms[a.idx].Name, ms[b.idx].Name)
	})
	v.succ = make([]int32, len(order))
	v.succPos = make([]int32, len(ms))
	for i := range v.succPos {
		v.succPos[i] = -1
	}
	for k, o := range order {
		v.succ[k] = o.idx
		v.succPos[o.idx] = int32(k)
	}
	return v
}

// Version returns the view's version. Views published by one Ring have
// strictly increasing versions, one step per observed membership change.
// Versions of different nodes are unrelated.
func (v *View) Version() uint64 { return v.version }

// Members returns the alive members (including the local node unless it has
// left), sorted by name. The slice is a fresh copy.
func (v *View) Members() []Member { return slices.Clone(v.members) }

// Member returns the member called name, if it is in the view.
func (v *View) Member(name string) (Member, bool) {
	i, ok := v.find(name)
	if !ok {
		return Member{}, false
	}
	return v.members[i], true
}

// Len returns the number of members in the view.
func (v *View) Len() int { return len(v.members) }

// OwnerCount returns the number of members on the ring: members with
// RoleTopics, at most the partition count.
func (v *View) OwnerCount() int { return len(v.succ) }

// partition returns the partition of topic; it matches consistent's
// FindPartitionID.
func (v *View) partition(topic string) int {
	return int(xxhash.Sum64String(topic) % uint64(v.params.partitions))
}

// Owner returns the member that owns topic, or ErrNoOwners if no member has
// RoleTopics. It does not allocate.
func (v *View) Owner(topic string) (Member, error) {
	if v.parts == nil {
		return Member{}, ErrNoOwners
	}
	return v.members[v.parts[v.partition(topic)]], nil
}

// Owners returns n distinct owners for topic: the owner first, then the next
// owners in ring order (replica candidates). n is clamped to OwnerCount. It
// returns ErrInvalidCount if n < 1 and ErrNoOwners if no member has
// RoleTopics.
func (v *View) Owners(topic string, n int) ([]Member, error) {
	return v.AppendOwners(nil, topic, n)
}

// AppendOwners is Owners appending to dst, for callers that look up many
// topics with one buffer.
func (v *View) AppendOwners(dst []Member, topic string, n int) ([]Member, error) {
	if n < 1 {
		return dst, fmt.Errorf("%w: %d", ErrInvalidCount, n)
	}
	if v.parts == nil {
		return dst, ErrNoOwners
	}
	n = min(n, len(v.succ))
	start := int(v.succPos[v.parts[v.partition(topic)]])
	dst = slices.Grow(dst, n)
	for k := range n {
		dst = append(dst, v.members[v.succ[(start+k)%len(v.succ)]])
	}
	return dst, nil
}

// Without returns a view with the same members except name, and the ring
// rebuilt from them. It answers "who owns this topic once name is gone" (for
// hand-off on leave) and "who owned it before name joined". The result has
// the same Version as v; v is unchanged. If name is not in v, v is returned.
func (v *View) Without(name string) *View {
	i, ok := v.find(name)
	if !ok {
		return v
	}
	ms := make([]Member, 0, len(v.members)-1)
	ms = append(ms, v.members[:i]...)
	ms = append(ms, v.members[i+1:]...)
	return newSortedView(v.params, v.version, ms)
}

// Share returns the fraction of partitions owned by name, between 0 and 1.
// The shares of all members add up to 1 when OwnerCount > 0.
func (v *View) Share(name string) float64 {
	i, ok := v.find(name)
	if !ok || v.parts == nil {
		return 0
	}
	return float64(v.counts[i]) / float64(len(v.parts))
}

// find returns the index of name in v.members.
func (v *View) find(name string) (int, bool) {
	return slices.BinarySearchFunc(v.members, name, func(m Member, name string) int {
		return strings.Compare(m.Name, name)
	})
}
