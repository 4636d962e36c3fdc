package ring

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/buraksezer/consistent"
)

var defaultParams = params{partitions: DefaultPartitionCount, vnodes: DefaultVirtualNodes, load: DefaultLoad}

// testMembers returns n members named m-0.. with the given roles.
func testMembers(n int, roles ...string) []Member {
	if len(roles) == 0 {
		roles = []string{RoleTopics}
	}
	out := make([]Member, n)
	for i := range out {
		out[i] = Member{
			Name:       fmt.Sprintf("m-%d", i),
			Roles:      roles,
			PeerAddr:   fmt.Sprintf("127.0.0.1:%d", 9000+i),
			GossipAddr: fmt.Sprintf("127.0.0.1:%d", 7000+i),
			Version:    testProtocolVersion,
		}
	}
	return out
}

func TestViewDeterministic(t *testing.T) {
	ms := testMembers(7)
	shuffled := slices.Clone(ms)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if slices.EqualFunc(ms, shuffled, Member.equal) {
		t.Fatal("shuffle did not change the order")
	}
	a := newView(defaultParams, 1, ms)
	b := newView(defaultParams, 1, shuffled)
	for _, topic := range topics(10000) {
		oa, err1 := a.Owner(topic)
		ob, err2 := b.Owner(topic)
		if err1 != nil || err2 != nil || oa.Name != ob.Name {
			t.Fatalf("topic %q: %v/%v vs %v/%v", topic, oa.Name, err1, ob.Name, err2)
		}
		ra, _ := a.Owners(topic, 3)
		rb, _ := b.Owners(topic, 3)
		if !slices.EqualFunc(ra, rb, Member.equal) {
			t.Fatalf("topic %q: replicas differ", topic)
		}
	}
}

// TestViewMatchesConsistent checks that the precomputed tables answer exactly
// what consistent itself answers for the same members.
func TestViewMatchesConsistent(t *testing.T) {
	ms := testMembers(6)
	v := newView(defaultParams, 1, ms)
	cms := make([]consistent.Member, len(ms))
	for i, m := range ms {
		cms[i] = ringMember(m.Name)
	}
	c := consistent.New(cms, consistent.Config{
		Hasher:            hasher{},
		PartitionCount:    DefaultPartitionCount,
		ReplicationFactor: DefaultVirtualNodes,
		Load:              DefaultLoad,
	})
	for _, topic := range topics(5000) {
		owner, err := v.Owner(topic)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.LocateKey([]byte(topic)).String(); owner.Name != want {
			t.Fatalf("topic %q: owner %s, consistent says %s", topic, owner.Name, want)
		}
		got, err := v.Owners(topic, 4)
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.GetClosestN([]byte(topic), 4)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i].Name != want[i].String() {
				t.Fatalf("topic %q: Owners %v, consistent %v", topic, got, want)
			}
		}
	}
}

func TestViewOwnersDistinctAndClamped(t *testing.T) {
	v := newView(defaultParams, 1, testMembers(5))
	for _, topic := range topics(2000) {
		owner, _ := v.Owner(topic)
		for n := 1; n <= 8; n++ {
			got, err := v.Owners(topic, n)
			if err != nil {
				t.Fatal(err)
			}
			if want := min(n, 5); len(got) != want {
				t.Fatalf("Owners(%q, %d) returned %d, want %d", topic, n, len(got), want)
			}
			if got[0].Name != owner.Name {
				t.Fatalf("Owners(%q, %d)[0] = %s, Owner = %s", topic, n, got[0].Name, owner.Name)
			}
			seen := map[string]bool{}
			for _, m := range got {
				if seen[m.Name] {
					t.Fatalf("Owners(%q, %d) repeats %s", topic, n, m.Name)
				}
				seen[m.Name] = true
			}
		}
	}
	for _, n := range []int{0, -1} {
		if _, err := v.Owners("t", n); !errors.Is(err, ErrInvalidCount) {
			t.Fatalf("Owners(n=%d) err = %v", n, err)
		}
	}
	// AppendOwners appends the same members after what dst holds.
	prefix := []Member{{Name: "keep"}}
	for _, topic := range topics(100) {
		want, _ := v.Owners(topic, 3)
		got, err := v.AppendOwners(prefix, topic, 3)
		if err != nil || len(got) != 4 || got[0].Name != "keep" {
			t.Fatalf("AppendOwners(%q) = %v, %v", topic, got, err)
		}
		for i := range want {
			if got[i+1].Name != want[i].Name {
				t.Fatalf("AppendOwners(%q)[%d] = %s, Owners says %s", topic, i+1, got[i+1].Name, want[i].Name)
			}
		}
	}
}

func TestViewRoles(t *testing.T) {
	ms := append(testMembers(3), Member{Name: "gw-a", Roles: []string{RoleGateway}, Version: testProtocolVersion},
		Member{Name: "both", Roles: []string{RoleGateway, RoleTopics}, Version: testProtocolVersion})
	v := newView(defaultParams, 1, ms)
	if v.Len() != 5 || v.OwnerCount() != 4 {
		t.Fatalf("Len %d OwnerCount %d", v.Len(), v.OwnerCount())
	}
	ownedByBoth := false
	for _, topic := range topics(5000) {
		all, err := v.Owners(topic, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 4 {
			t.Fatalf("Owners clamped to %d, want 4", len(all))
		}
		for _, m := range all {
			if m.Name == "gw-a" {
				t.Fatalf("gateway-only member owns %q", topic)
			}
		}
		ownedByBoth = ownedByBoth || all[0].Name == "both"
	}
	if !ownedByBoth {
		t.Fatal("member with both roles owns no topic")
	}
	if v.Share("gw-a") != 0 {
		t.Fatalf("gateway share %v", v.Share("gw-a"))
	}

	gw := newView(defaultParams, 1, testMembers(3, RoleGateway))
	if gw.Len() != 3 || gw.OwnerCount() != 0 {
		t.Fatalf("gateway view Len %d OwnerCount %d", gw.Len(), gw.OwnerCount())
	}
	if _, err := gw.Owner("t"); !errors.Is(err, ErrNoOwners) {
		t.Fatalf("Owner err = %v", err)
	}
	if _, err := gw.Owners("t", 2); !errors.Is(err, ErrNoOwners) {
		t.Fatalf("Owners err = %v", err)
	}
	if s := gw.Share("m-0"); s != 0 {
		t.Fatalf("Share = %v", s)
	}
	empty := newView(defaultParams, 1, nil)
	if _, err := empty.Owner("t"); !errors.Is(err, ErrNoOwners) || empty.Len() != 0 {
		t.Fatalf("empty view: %v", err)
	}
}

func TestViewShareAndSpread(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 16} {
		v := newView(defaultParams, 1, testMembers(n))
		sum := 0.0
		avg := 1 / float64(n)
		maxShare := math.Ceil(float64(DefaultPartitionCount/n)*DefaultLoad) / DefaultPartitionCount
		for _, m := range v.Members() {
			s := v.Share(m.Name)
			sum += s
			if s > maxShare+1e-9 {
				t.Errorf("%d owners: %s share %.4f above the bounded load %.4f", n, m.Name, s, maxShare)
			}
			if s < avg/2 {
				t.Errorf("%d owners: %s share %.4f below half the average %.4f", n, m.Name, s, avg)
			}
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("%d owners: shares sum to %v", n, sum)
		}
		if v.Share("nobody") != 0 {
			t.Error("unknown member has a share")
		}
	}

	// Topics, not just partitions, spread evenly over 5 owners.
	v := newView(defaultParams, 1, testMembers(5))
	counts := map[string]int{}
	const total = 50000
	for _, topic := range topics(total) {
		o, _ := v.Owner(topic)
		counts[o.Name]++
	}
	for name, c := range counts {
		if f := float64(c) / total; f < 0.12 || f > 0.28 {
			t.Errorf("%s owns %.3f of topics", name, f)
		}
	}
	if len(counts) != 5 {
		t.Errorf("only %d owners got topics", len(counts))
	}
}

func TestViewWithout(t *testing.T) {
	ms := append(testMembers(4), Member{Name: "gw", Roles: []string{RoleGateway}, Version: testProtocolVersion})
	v := newView(defaultParams, 9, ms)
	w := v.Without("m-2")
	if w.Version() != 9 || w.Len() != 4 || w.OwnerCount() != 3 {
		t.Fatalf("Without: version %d len %d owners %d", w.Version(), w.Len(), w.OwnerCount())
	}
	if _, ok := w.Member("m-2"); ok {
		t.Fatal("removed member still present")
	}
	if _, ok := v.Member("m-2"); !ok || v.Len() != 5 {
		t.Fatal("Without changed the original view")
	}
	moved := 0
	for _, topic := range topics(5000) {
		before, _ := v.Owner(topic)
		after, _ := w.Owner(topic)
		if after.Name == "m-2" {
			t.Fatalf("%q still owned by the removed member", topic)
		}
		if before.Name == "m-2" {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("m-2 owned nothing before")
	}
	// A view built directly from the remaining members agrees.
	direct := newView(defaultParams, 9, slices.DeleteFunc(slices.Clone(ms), func(m Member) bool { return m.Name == "m-2" }))
	for _, topic := range topics(2000) {
		a, _ := w.Owner(topic)
		b, _ := direct.Owner(topic)
		if a.Name != b.Name {
			t.Fatalf("%q: Without %s, direct %s", topic, a.Name, b.Name)
		}
	}
	if v.Without("absent") != v {
		t.Fatal("Without(absent) built a new view")
	}
	if gw := v.Without("gw"); gw.OwnerCount() != 4 || gw.Len() != 4 {
		t.Fatalf("Without(gateway): len %d owners %d", gw.Len(), gw.OwnerCount())
	}
	last := newView(defaultParams, 1, testMembers(1)).Without("m-0")
	if _, err := last.Owner("t"); !errors.Is(err, ErrNoOwners) {
		t.Fatalf("Without(last owner).Owner err = %v", err)
	}
}

func TestViewImmutable(t *testing.T) {
	ms := testMembers(3)
	v := newView(defaultParams, 1, ms)
	ms[0].Name = "changed"
	got := v.Members()
	got[1].Name = "changed too"
	got = append(got[:0], Member{Name: "x"})
	_ = got
	if names := memberNames(v); !slices.Equal(names, []string{"m-0", "m-1", "m-2"}) {
		t.Fatalf("view members changed: %v", names)
	}
	m, ok := v.Member("m-1")
	if !ok || m.Name != "m-1" {
		t.Fatalf("Member(m-1) = %+v, %v", m, ok)
	}
	if _, ok := v.Member("m-9"); ok {
		t.Fatal("Member found an absent name")
	}
	if m.HasRole(RoleGateway) || !m.HasRole(RoleTopics) || m.String() != "m-1" {
		t.Fatalf("member helpers: %+v", m)
	}
}

func TestViewMoreOwnersThanPartitions(t *testing.T) {
	p := params{partitions: 3, vnodes: 2, load: 1.01}
	ms := testMembers(5)
	v := newView(p, 1, ms)
	if v.OwnerCount() != 3 || v.excluded != 2 {
		t.Fatalf("OwnerCount %d excluded %d", v.OwnerCount(), v.excluded)
	}
	for _, topic := range topics(500) {
		o, err := v.Owner(topic)
		if err != nil {
			t.Fatal(err)
		}
		if o.Name == "m-3" || o.Name == "m-4" {
			t.Fatalf("member beyond the partition count owns %q", topic)
		}
	}
	// Small, tight rings build without panicking.
	for n := 1; n <= 12; n++ {
		for parts := 1; parts <= 12; parts++ {
			v := newView(params{partitions: parts, vnodes: 2, load: 1.0001}, 1, testMembers(n))
			if v.OwnerCount() != min(n, parts) {
				t.Fatalf("n=%d parts=%d: OwnerCount %d", n, parts, v.OwnerCount())
			}
		}
	}
}

func BenchmarkViewOwner(b *testing.B) {
	v := newView(defaultParams, 1, testMembers(5))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Owner("room:lobby"); err != nil {
			b.Fatal(err)
		}
	}
}
