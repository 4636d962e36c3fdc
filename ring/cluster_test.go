package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// checkSameOwners fails unless every ring computes the same owner and replica
// list for every topic.
func checkSameOwners(t *testing.T, rings []*Ring, ts []string) {
	t.Helper()
	views := make([]*View, len(rings))
	for i, r := range rings {
		views[i] = r.View()
	}
	for _, topic := range ts {
		want, err := views[0].Owners(topic, 2)
		if err != nil {
			t.Fatalf("%s: Owners(%q): %v", rings[0].LocalName(), topic, err)
		}
		for i, v := range views[1:] {
			got, err := v.Owners(topic, 2)
			if err != nil || !slices.EqualFunc(got, want, Member.equal) {
				t.Fatalf("%s: Owners(%q) = %v, %v; %s says %v",
					rings[i+1].LocalName(), topic, got, err, rings[0].LocalName(), want)
			}
		}
	}
}

func TestClusterConverges(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("%d members", n), func(t *testing.T) {
			rings := startCluster(t, n, nil, nil)
			checkSameOwners(t, rings, topics(3000))
			for _, r := range rings {
				v := r.View()
				if v.OwnerCount() != n {
					t.Fatalf("%s: OwnerCount %d", r.LocalName(), v.OwnerCount())
				}
				for i, other := range rings {
					m, ok := v.Member(other.LocalName())
					if !ok {
						t.Fatalf("%s does not see %s", r.LocalName(), other.LocalName())
					}
					if m.GossipAddr != other.GossipAddr() || m.PeerAddr != fmt.Sprintf("127.0.0.1:%d", 9000+i) ||
						m.Version != testProtocolVersion || !m.HasRole(RoleTopics) {
						t.Fatalf("%s sees %s as %+v", r.LocalName(), other.LocalName(), m)
					}
				}
				if n > 1 {
					owned := 0
					for _, topic := range topics(1000) {
						if o, _ := r.Owner(topic); o.Name == r.LocalName() {
							owned++
						}
					}
					if owned == 0 {
						t.Fatalf("%s owns none of 1000 topics", r.LocalName())
					}
				}
			}
		})
	}
}

func TestClusterRoles(t *testing.T) {
	roles := func(i int) []string {
		return [][]string{{RoleTopics}, {RoleGateway}, {RoleGateway, RoleTopics}}[i]
	}
	rings := startCluster(t, 3, roles, nil)
	checkSameOwners(t, rings, topics(2000))
	for _, r := range rings {
		v := r.View()
		if v.OwnerCount() != 2 || v.Len() != 3 {
			t.Fatalf("%s: OwnerCount %d Len %d", r.LocalName(), v.OwnerCount(), v.Len())
		}
		for _, topic := range topics(5000) {
			owners, err := v.Owners(topic, 3)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range owners {
				if o.Name == "node-1" {
					t.Fatalf("gateway-only node-1 owns %q", topic)
				}
			}
		}
		if s := v.Share("node-1"); s != 0 {
			t.Fatalf("gateway share %v", s)
		}
	}

	t.Run("gateways only", func(t *testing.T) {
		gws := startCluster(t, 2, func(int) []string { return []string{RoleGateway} }, nil)
		for _, r := range gws {
			if _, err := r.Owner("room:1"); !errors.Is(err, ErrNoOwners) {
				t.Fatalf("%s: Owner err = %v", r.LocalName(), err)
			}
			if _, err := r.Owners("room:1", 1); !errors.Is(err, ErrNoOwners) {
				t.Fatalf("%s: Owners err = %v", r.LocalName(), err)
			}
			if r.View().Len() != 2 {
				t.Fatalf("%s: Len %d", r.LocalName(), r.View().Len())
			}
		}
	})
}

func TestGracefulLeave(t *testing.T) {
	rec := &recorder{}
	rings := startCluster(t, 3, nil, func(i int, c *Config) {
		if i == 0 {
			c.Logger = slog.New(rec)
		}
	})
	leaver := rings[2]
	before := rings[0].View()
	var topic string
	for _, tp := range topics(1000) {
		if o, _ := before.Owner(tp); o.Name == leaver.LocalName() {
			topic = tp
			break
		}
	}
	if topic == "" {
		t.Fatal("node-2 owns none of 1000 topics")
	}
	want, _ := before.Without(leaver.LocalName()).Owner(topic)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := leaver.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	rest := rings[:2]
	waitConverged(t, rest, names(rest...))
	for _, r := range rest {
		o, err := r.Owner(topic)
		if err != nil || o.Name != want.Name {
			t.Fatalf("%s: owner of %q after leave = %v, %v; want %s", r.LocalName(), topic, o.Name, err, want.Name)
		}
	}
	checkSameOwners(t, rest, topics(2000))
	waitFor(t, 5*time.Second, "the leaver to drop itself", func() bool {
		_, ok := leaver.View().Member(leaver.LocalName())
		return !ok
	})
	waitFor(t, 5*time.Second, "the leave to be logged", func() bool {
		return rec.has(slog.LevelInfo, "member left", leaver.LocalName())
	})
	if rec.has(slog.LevelInfo, "member failed", leaver.LocalName()) {
		t.Fatal("graceful leave logged as a failure")
	}
	if !rec.has(slog.LevelInfo, "member joined", "node-1") {
		t.Fatal("join of node-1 not logged")
	}

	if err := leaver.Leave(ctx); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	if _, err := leaver.Join(ctx, rings[0].GossipAddr()); !errors.Is(err, ErrLeft) {
		t.Fatalf("Join after Leave = %v", err)
	}
	if err := leaver.Close(); err != nil {
		t.Fatalf("Close after Leave: %v", err)
	}
	if err := leaver.Leave(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Close = %v", err)
	}
	if _, err := leaver.Join(ctx, rings[0].GossipAddr()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Close = %v", err)
	}
}

func TestFailureDetected(t *testing.T) {
	rec := &recorder{}
	rings := startCluster(t, 5, nil, func(i int, c *Config) {
		if i == 0 {
			c.Logger = slog.New(rec)
		}
	})
	victim := rings[4]
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rest := rings[:4]
	// FastTimings promises detection well under 2 s; allow a margin for a
	// loaded machine running the race detector.
	waitFor(t, 4*time.Second, "the failure to be detected", func() bool {
		for _, r := range rest {
			if _, ok := r.View().Member(victim.LocalName()); ok {
				return false
			}
		}
		return true
	})
	t.Logf("failure detected by all 4 survivors in %v", time.Since(start))
	waitConverged(t, rest, names(rest...))
	checkSameOwners(t, rest, topics(2000))
	waitFor(t, 2*time.Second, "the failure to be logged", func() bool {
		return rec.has(slog.LevelInfo, "member failed", victim.LocalName())
	})
	if rec.has(slog.LevelInfo, "member left", victim.LocalName()) {
		t.Fatal("failure logged as a graceful leave")
	}
}

func TestJoinErrors(t *testing.T) {
	r := newTestRing(t, testConfig("joiner"))
	ctx := context.Background()

	if n, err := r.Join(ctx); n != 0 || err != nil {
		t.Fatalf("Join() = %d, %v", n, err)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if n, err := r.Join(canceled, "127.0.0.1:1"); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Join(canceled) = %d, %v", n, err)
	}

	// A listener that is not memberlist: the push/pull exchange fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer wg.Wait()
	defer ln.Close()
	n, err := r.Join(ctx, ln.Addr().String())
	if n != 0 || !errors.Is(err, ErrJoin) {
		t.Fatalf("Join(not memberlist) = %d, %v", n, err)
	}

	// One good seed among bad ones is enough.
	other := newTestRing(t, testConfig("seed"))
	n, err = r.Join(ctx, ln.Addr().String(), other.GossipAddr())
	if n != 1 || err != nil {
		t.Fatalf("Join(bad, good) = %d, %v", n, err)
	}
	waitConverged(t, []*Ring{r, other}, names(r, other))
}

func TestClusterNameIsolation(t *testing.T) {
	a := newTestRing(t, func() Config { c := testConfig("a"); c.ClusterName = "alpha"; return c }())
	b := newTestRing(t, func() Config { c := testConfig("b"); c.ClusterName = "beta"; return c }())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := b.Join(ctx, a.GossipAddr()); n != 0 || !errors.Is(err, ErrJoin) {
		t.Fatalf("Join across clusters = %d, %v", n, err)
	}
	if a.View().Len() != 1 || b.View().Len() != 1 {
		t.Fatalf("clusters mixed: %v / %v", memberNames(a.View()), memberNames(b.View()))
	}
}

func TestEncryptedCluster(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	rings := startCluster(t, 2, nil, func(_ int, c *Config) { c.SecretKey = key })
	cfg := testConfig("intruder")
	cfg.SecretKey = []byte("fedcba9876543210")
	intruder := newTestRing(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := intruder.Join(ctx, rings[0].GossipAddr()); n != 0 || err == nil {
		t.Fatalf("Join with a wrong key = %d, %v", n, err)
	}
	for _, r := range rings {
		if _, ok := r.View().Member("intruder"); ok {
			t.Fatalf("%s admitted a member with the wrong key", r.LocalName())
		}
	}
}

// rawDelegate advertises fixed metadata from a bare memberlist node.
type rawDelegate struct{ meta []byte }

func (d rawDelegate) NodeMeta(int) []byte             { return d.meta }
func (d rawDelegate) NotifyMsg([]byte)                {}
func (d rawDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d rawDelegate) LocalState(bool) []byte          { return nil }
func (d rawDelegate) MergeRemoteState([]byte, bool)   {}

// startRawNode starts a memberlist node with the given metadata that joins seed.
func startRawNode(t *testing.T, name string, meta []byte, seed string) *memberlist.Memberlist {
	t.Helper()
	mc := memberlist.DefaultLocalConfig()
	mc.Name = name
	mc.BindAddr = "127.0.0.1"
	mc.BindPort = 0
	mc.AdvertisePort = 0
	mc.Label = DefaultClusterName
	mc.Delegate = rawDelegate{meta: meta}
	mc.Logger = log.New(io.Discard, "", 0)
	mc.ProbeInterval = 100 * time.Millisecond
	mc.ProbeTimeout = 50 * time.Millisecond
	mc.GossipInterval = 20 * time.Millisecond
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join([]string{seed}); err != nil {
		t.Fatal(err)
	}
	return ml
}

func TestBadMetadataLeftOut(t *testing.T) {
	rec := &recorder{}
	cfg := testConfig("good")
	cfg.Logger = slog.New(rec)
	r := newTestRing(t, cfg)

	future, err := encodeMeta(Member{Roles: []string{RoleTopics}, Version: testProtocolVersion + 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	startRawNode(t, "future", future, r.GossipAddr())
	startRawNode(t, "garbage", []byte("not msgpack"), r.GossipAddr())
	waitFor(t, 5*time.Second, "both rejections to be logged", func() bool {
		return rec.has(slog.LevelWarn, "member left out of the ring: bad metadata", "future") &&
			rec.has(slog.LevelWarn, "member left out of the ring: bad metadata", "garbage")
	})
	if got := r.ml.NumMembers(); got != 3 {
		t.Fatalf("memberlist sees %d members, want 3", got)
	}
	v := r.View()
	if v.Len() != 1 || v.OwnerCount() != 1 {
		t.Fatalf("view includes rejected members: %v", memberNames(v))
	}
	for _, topic := range topics(500) {
		if o, _ := v.Owner(topic); o.Name != "good" {
			t.Fatalf("%q owned by %s", topic, o.Name)
		}
	}
	if n := rec.count("member left out of the ring: bad metadata"); n != 2 {
		t.Fatalf("rejections logged %d times, want once per member", n)
	}
}

func TestMemberlistLogsRouted(t *testing.T) {
	rec := &recorder{}
	a := newTestRing(t, testConfig("a"))
	cfg := testConfig("b")
	cfg.Logger = slog.New(rec)
	b := newTestRing(t, cfg)
	if _, err := b.Join(context.Background(), a.GossipAddr()); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		for _, m := range memberlistRecords(rec, level) {
			if strings.HasPrefix(m.line, "[") {
				t.Fatalf("level tag left in line %q", m.line)
			}
			if level == slog.LevelDebug && m.kind == "Initiating push/pull sync with" && strings.HasPrefix(m.line, "Initiating push/pull sync with") {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("memberlist's debug line about the join was not routed to slog")
	}
}

func TestCloseLifecycle(t *testing.T) {
	r, err := New(testConfig("solo"))
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := r.Watch()
	defer cancel()
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatalf("Close again: %v", err)
	}
	if o, err := r.Owner("t"); err != nil || o.Name != "solo" {
		t.Fatalf("Owner after Close = %v, %v", o, err)
	}
	if err := r.Leave(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Close = %v", err)
	}
	select {
	case v := <-ch:
		t.Fatalf("watcher received %v after Close", v)
	default:
	}
}

func TestLeaveAlone(t *testing.T) {
	r := newTestRing(t, testConfig("alone"))
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := r.Leave(expired); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Leave(expired) = %v", err)
	}
	if err := r.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the node to drop itself", func() bool { return r.View().Len() == 0 })
	if _, err := r.Owner("t"); !errors.Is(err, ErrNoOwners) {
		t.Fatalf("Owner after Leave = %v", err)
	}
	if r.LocalMember().Name != "alone" {
		t.Fatal("LocalMember changed after Leave")
	}
}

func TestLeaveRacesClose(t *testing.T) {
	for i := range 5 {
		rings := startCluster(t, 2, nil, func(_ int, c *Config) { c.NodeName = fmt.Sprintf("%s-%d", c.NodeName, i) })
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := rings[1].Leave(ctx); err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("Leave: %v", err)
			}
		}()
		if err := rings[1].Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}

func TestSetRoles(t *testing.T) {
	rec := &recorder{}
	rings := startCluster(t, 3, nil, func(i int, c *Config) {
		if i == 0 {
			c.Logger = slog.New(rec)
		}
	})
	drainer := rings[2]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if err := drainer.SetRoles(ctx, []string{"storage"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("SetRoles(unknown) = %v", err)
	}
	if err := drainer.SetRoles(ctx, []string{RoleGateway, RoleGateway}); err != nil {
		t.Fatalf("SetRoles: %v", err)
	}
	if got := drainer.LocalMember().Roles; !slices.Equal(got, []string{RoleGateway}) {
		t.Fatalf("LocalMember roles = %v", got)
	}
	waitFor(t, 5*time.Second, "every view to take node-2 off the ring", func() bool {
		for _, r := range rings {
			m, ok := r.View().Member("node-2")
			if !ok || !slices.Equal(m.Roles, []string{RoleGateway}) || r.View().OwnerCount() != 2 {
				return false
			}
		}
		return true
	})
	checkSameOwners(t, rings, topics(2000))
	for _, topic := range topics(2000) {
		if o, _ := drainer.Owner(topic); o.Name == "node-2" {
			t.Fatalf("drained node still owns %q", topic)
		}
	}
	if !rec.has(slog.LevelInfo, "member updated", "node-2") {
		t.Fatal("role change not logged")
	}

	// Each role change gets its own 5 s to be confirmed.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := drainer.SetRoles(ctx, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "node-2 without roles", func() bool {
		m, ok := rings[0].View().Member("node-2")
		return ok && len(m.Roles) == 0
	})
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := drainer.SetRoles(ctx, []string{RoleTopics}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "node-2 back on the ring", func() bool {
		for _, r := range rings {
			if r.View().OwnerCount() != 3 {
				return false
			}
		}
		return true
	})
	checkSameOwners(t, rings, topics(2000))

	if err := drainer.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := drainer.SetRoles(ctx, []string{RoleGateway}); !errors.Is(err, ErrLeft) {
		t.Fatalf("SetRoles after Leave = %v", err)
	}
	if err := drainer.Close(); err != nil {
		t.Fatal(err)
	}
	if err := drainer.SetRoles(ctx, []string{RoleGateway}); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetRoles after Close = %v", err)
	}
}

// TestLeaveTogether: when every member leaves at once, nobody waits for a
// confirmation that no staying member can give.
func TestLeaveTogether(t *testing.T) {
	rings := startCluster(t, 2, nil, nil)
	var wg sync.WaitGroup
	errs := make([]error, len(rings))
	start := time.Now()
	for i, r := range rings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			errs[i] = r.Leave(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Leave of member %d: %v", i, err)
		}
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("leaving together took %v", d)
	}
}

// TestJoinRepairsMissedGossip: with gossip, probes and periodic push/pull
// all an hour apart, a member that joined before another only learns of it
// through the state exchange it makes a second after joining.
func TestJoinRepairsMissedGossip(t *testing.T) {
	silent := func(name string) Config {
		cfg := testConfig(name)
		cfg.GossipInterval = time.Hour
		cfg.ProbeInterval = time.Hour
		cfg.PushPullInterval = time.Hour
		return cfg
	}
	seed := newTestRing(t, silent("seed"))
	early := newTestRing(t, silent("early"))
	late := newTestRing(t, silent("late"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := early.Join(ctx, seed.GossipAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := late.Join(ctx, seed.GossipAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the early member to learn of the late one", func() bool {
		_, ok := early.View().Member("late")
		return ok
	})
}
