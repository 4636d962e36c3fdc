package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

func withPresence(rules ...PresenceRule) func(*Config) {
	if len(rules) == 0 {
		rules = []PresenceRule{{Pattern: "rooms:*"}}
	}
	return func(c *Config) { c.Presence = rules }
}

// presenceString renders a set as "key:node,key:node" sorted, for
// comparisons.
func presenceString(p Presence) string {
	var out []string
	for k, metas := range p {
		for _, m := range metas {
			out = append(out, k+"@"+m.Node+"="+string(m.Data))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// waitPresence polls n's view of topic's set until it renders as want.
func waitPresence(t *testing.T, n *Node, topic, want string, timeout time.Duration) {
	t.Helper()
	var got string
	waitFor(t, timeout, fmt.Sprintf("presence of %s on %s to be %q (last %q)", topic, n.Name(), want, func() string { return got }()), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p, err := n.Presence(ctx, topic)
		if err != nil {
			got = "error: " + err.Error()
			return false
		}
		got = presenceString(p)
		return got == want
	})
}

// watchLog follows a watch on a goroutine and records what it sees:
// the set it holds after every diff, and every leave.
type watchLog struct {
	mu     sync.Mutex
	state  map[string]Meta // ref -> meta
	keys   map[string]string
	leaves []string // "key@node"
	syncs  int
	done   chan struct{}
}

func follow(t *testing.T, w *PresenceWatch) *watchLog {
	l := &watchLog{state: map[string]Meta{}, keys: map[string]string{}, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			d, err := w.Next(context.Background())
			if err != nil {
				return
			}
			l.mu.Lock()
			if d.Sync {
				l.syncs++
				clear(l.state)
				clear(l.keys)
			}
			for k, metas := range d.Leaves {
				for _, m := range metas {
					delete(l.state, m.Ref)
					l.leaves = append(l.leaves, k+"@"+m.Node)
				}
			}
			for k, metas := range d.Joins {
				for _, m := range metas {
					l.state[m.Ref] = m
					l.keys[m.Ref] = k
				}
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		w.Stop()
		<-l.done
	})
	return l
}

func (l *watchLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for ref, m := range l.state {
		out = append(out, l.keys[ref]+"@"+m.Node+"="+string(m.Data))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func (l *watchLog) leftKeys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.leaves)
}

func TestPresenceAcrossNodes(t *testing.T) {
	c := startCluster(t, 3, withPresence())
	ctx := ctxT(t, 20*time.Second)
	topic := "rooms:lobby"
	watcher, err := c.nodes[0].WatchPresence(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	first, err := watcher.Next(ctx)
	if err != nil || !first.Sync || len(first.Joins) != 0 {
		t.Fatalf("first diff = %+v, %v; want an empty Sync", first, err)
	}
	log := follow(t, watcher)

	var tracked []*Tracked
	for i, n := range c.nodes {
		tr, err := n.Track(ctx, topic, "user"+fmt.Sprint(i), []byte(`{"i":`+fmt.Sprint(i)+`}`))
		if err != nil {
			t.Fatalf("Track on %s: %v", n.Name(), err)
		}
		tracked = append(tracked, tr)
	}
	// A second entry of one key, from another node.
	extra, err := c.nodes[2].Track(ctx, topic, "user0", []byte(`{"phone":true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `user0@node-0={"i":0},user0@node-2={"phone":true},user1@node-1={"i":1},user2@node-2={"i":2}`
	for _, n := range c.nodes {
		waitPresence(t, n, topic, want, 5*time.Second)
	}
	waitFor(t, 5*time.Second, "the watch to see every join", func() bool { return log.String() == want })

	refs := map[string]bool{}
	p, _ := c.nodes[1].Presence(ctx, topic)
	for _, metas := range p {
		for _, m := range metas {
			if refs[m.Ref] || m.Ref == "" {
				t.Fatalf("ref %q not unique in %v", m.Ref, p)
			}
			refs[m.Ref] = true
		}
	}
	if len(p["user0"]) != 2 {
		t.Fatalf("user0 has %d metas, want 2: %v", len(p["user0"]), p)
	}

	tracked[1].Untrack()
	extra.Untrack()
	extra.Untrack() // idempotent
	want = `user0@node-0={"i":0},user2@node-2={"i":2}`
	for _, n := range c.nodes {
		waitPresence(t, n, topic, want, 5*time.Second)
	}
	waitFor(t, 5*time.Second, "the watch to see the leaves", func() bool { return log.String() == want })
	left := log.leftKeys()
	sort.Strings(left)
	if !slices.Equal(left, []string{"user0@node-2", "user1@node-1"}) {
		t.Fatalf("leaves seen %v", left)
	}
}

func TestPresenceOff(t *testing.T) {
	c := startCluster(t, 1, withPresence())
	n := c.nodes[0]
	ctx := ctxT(t, 5*time.Second)
	if _, err := n.Track(ctx, "other", "k", nil); !errors.Is(err, ErrPresenceOff) {
		t.Fatalf("Track on a topic without presence: %v", err)
	}
	if _, err := n.Presence(ctx, "other"); !errors.Is(err, ErrPresenceOff) {
		t.Fatalf("Presence on a topic without presence: %v", err)
	}
	if _, err := n.WatchPresence(ctx, "other"); !errors.Is(err, ErrPresenceOff) {
		t.Fatalf("WatchPresence on a topic without presence: %v", err)
	}
	for _, key := range []string{"", strings.Repeat("k", MaxPresenceKeyLen+1), "a\x00b"} {
		if _, err := n.Track(ctx, "rooms:a", key, nil); !errors.Is(err, ErrInvalidPresence) {
			t.Fatalf("Track with key %q: %v", key, err)
		}
	}
	if _, err := n.Track(ctx, "rooms:a", "k", make([]byte, MaxPresenceData+1)); !errors.Is(err, ErrInvalidPresence) {
		t.Fatalf("Track with too much data: %v", err)
	}
	for _, rules := range [][]PresenceRule{{{Pattern: ""}}, {{Pattern: "a*b*"}}, {{Pattern: "x"}, {Pattern: "x"}}, {{Pattern: "x", MaxEntries: -1}}} {
		if _, err := New(Config{Presence: rules}); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("New with presence rules %+v: %v", rules, err)
		}
	}
}

func TestPresenceBounds(t *testing.T) {
	c := startCluster(t, 2, withPresence(PresenceRule{Pattern: "rooms:*", MaxEntries: 4, MaxMetasPerKey: 2}, PresenceRule{Pattern: "rooms:big"}))
	ctx := ctxT(t, 20*time.Second)
	// Bounds hold whichever node tracks: the owner checks them.
	for _, n := range c.nodes {
		topic := topicOwnedBy(t, n, c.nodes[0].Name(), "rooms:bounded-"+n.Name())
		if _, err := n.Track(ctx, topic, "alice", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.nodes[1].Track(ctx, topic, "alice", nil); err != nil {
			t.Fatal(err)
		}
		_, err := n.Track(ctx, topic, "alice", nil)
		if !errors.Is(err, ErrPresenceLimit) || !strings.Contains(err.Error(), `key "alice"`) {
			t.Fatalf("third meta of alice: %v", err)
		}
		if _, err := n.Track(ctx, topic, "bob", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Track(ctx, topic, "carol", nil); err != nil {
			t.Fatal(err)
		}
		_, err = c.nodes[1].Track(ctx, topic, "dave", nil)
		if !errors.Is(err, ErrPresenceLimit) || !strings.Contains(err.Error(), "4 presence entries") {
			t.Fatalf("fifth entry of the topic: %v", err)
		}
		p, err := n.Presence(ctx, topic)
		if err != nil || p.Len() != 4 {
			t.Fatalf("Presence = %v, %v; want 4 entries", p, err)
		}
	}
	// The more specific rule has the default bounds.
	for i := range 5 {
		if _, err := c.nodes[1].Track(ctx, "rooms:big", "alice", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPresenceMemberFails(t *testing.T) {
	c := startCluster(t, 3, withPresence())
	ctx := ctxT(t, 30*time.Second)
	// One topic owned by the node that fails, one by a survivor.
	topics := []string{
		topicOwnedBy(t, c.nodes[0], "node-2", "rooms:owned-by-victim"),
		topicOwnedBy(t, c.nodes[0], "node-1", "rooms:owned-by-survivor"),
	}
	logs := map[string]*watchLog{}
	for _, topic := range topics {
		for i, n := range c.nodes {
			if _, err := n.Track(ctx, topic, fmt.Sprintf("u%d", i), nil); err != nil {
				t.Fatal(err)
			}
		}
		w, err := c.nodes[0].WatchPresence(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		logs[topic] = follow(t, w)
		waitFor(t, 5*time.Second, "the watch to hold all", func() bool {
			return logs[topic].String() == "u0@node-0=,u1@node-1=,u2@node-2="
		})
	}
	start := time.Now()
	if err := c.nodes[2].Close(); err != nil { // no hand-off: the cluster sees a failure
		t.Fatal(err)
	}
	for _, topic := range topics {
		waitPresence(t, c.nodes[0], topic, "u0@node-0=,u1@node-1=", 10*time.Second)
		waitPresence(t, c.nodes[1], topic, "u0@node-0=,u1@node-1=", 10*time.Second)
		waitFor(t, 10*time.Second, "the watch to see the failed node's entries leave", func() bool {
			return logs[topic].String() == "u0@node-0=,u1@node-1="
		})
		if left := logs[topic].leftKeys(); !slices.Equal(left, []string{"u2@node-2"}) {
			t.Fatalf("%s: leaves %v, want only the failed node's", topic, left)
		}
	}
	t.Logf("entries of the failed node removed %v after it stopped", time.Since(start).Round(time.Millisecond))
}

func TestPresenceSurvivesOwnerChange(t *testing.T) {
	c := startCluster(t, 3, withPresence())
	ctx := ctxT(t, 40*time.Second)
	var topics []string
	for i := range 24 {
		topic := fmt.Sprintf("rooms:r%d", i)
		topics = append(topics, topic)
		for j, n := range c.nodes {
			if _, err := n.Track(ctx, topic, fmt.Sprintf("u%d", j), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	logs := map[string]*watchLog{}
	for _, topic := range topics {
		w, err := c.nodes[0].WatchPresence(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		logs[topic] = follow(t, w)
	}
	all := "u0@node-0=,u1@node-1=,u2@node-2="
	for _, topic := range topics {
		waitFor(t, 5*time.Second, "watches to hold all", func() bool { return logs[topic].String() == all })
	}

	// A node joins and takes some topics over, then another leaves
	// gracefully and hands its topics over: the sets follow.
	n3 := c.add(withPresence())
	c.waitConverged()
	moved := 0
	for _, topic := range topics {
		if o, _ := c.nodes[0].Owner(topic); o.Name == n3.Name() {
			moved++
		}
		waitPresence(t, n3, topic, all, 10*time.Second)
	}
	if moved == 0 {
		t.Fatal("the new node owns none of the topics; pick more")
	}
	if err := c.nodes[1].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitConverged()
	want := "u0@node-0=,u2@node-2="
	for _, topic := range topics {
		waitPresence(t, n3, topic, want, 10*time.Second)
		waitPresence(t, c.nodes[2], topic, want, 10*time.Second)
		waitFor(t, 10*time.Second, "watch after the moves", func() bool { return logs[topic].String() == want })
		// No entry of a node that stayed left on the way.
		for _, l := range logs[topic].leftKeys() {
			if l != "u1@node-1" {
				t.Fatalf("%s: %s left during the owner changes: %v", topic, l, logs[topic].leftKeys())
			}
		}
	}
	t.Logf("%d of %d topics moved to the new node", moved, len(topics))
}

func TestPresenceWithSubscription(t *testing.T) {
	c := startCluster(t, 2, withPresence())
	ctx := ctxT(t, 20*time.Second)
	topic := "rooms:sub"
	sub, err := c.nodes[1].Subscribe(ctx, topic, WithPresence("alice", []byte("web")))
	if err != nil {
		t.Fatal(err)
	}
	waitPresence(t, c.nodes[0], topic, "alice@node-1=web", 5*time.Second)
	if _, err := c.nodes[1].Subscribe(ctx, topic, WithPresence("", nil)); !errors.Is(err, ErrInvalidPresence) {
		t.Fatalf("Subscribe with an empty presence key: %v", err)
	}
	if _, err := c.nodes[1].Subscribe(ctx, "plain", WithPresence("alice", nil)); !errors.Is(err, ErrPresenceOff) {
		t.Fatalf("Subscribe with presence on a topic without it: %v", err)
	}
	_ = sub.Unsubscribe()
	waitPresence(t, c.nodes[0], topic, "", 5*time.Second)
}

func TestPresenceWatchOverflow(t *testing.T) {
	c := startCluster(t, 1, func(cfg *Config) {
		cfg.Presence = []PresenceRule{{Pattern: "rooms:*"}}
		cfg.SubscriptionBuffer = 4
	})
	n := c.nodes[0]
	ctx := ctxT(t, 10*time.Second)
	w, err := n.WatchPresence(ctx, "rooms:busy")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if d, err := w.Next(ctx); err != nil || !d.Sync {
		t.Fatalf("first diff %+v, %v", d, err)
	}
	for i := range 10 {
		if _, err := n.Track(ctx, "rooms:busy", fmt.Sprintf("u%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	// The watch did not keep up: its diffs gave way to the whole set.
	d, err := w.Next(ctx)
	if err != nil || !d.Sync || d.Joins.Len() != 10 {
		t.Fatalf("diff after an overflow = %+v, %v; want a Sync of 10", d, err)
	}
	w.Stop()
	if _, err := w.Next(ctx); !errors.Is(err, ErrWatchStopped) {
		t.Fatalf("Next after Stop: %v", err)
	}
	_ = n.Close()
	if _, err := n.Track(ctx, "rooms:busy", "u", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Track after Close: %v", err)
	}
}

// TestPresenceLargeSets moves sets too large for one frame: a watch's
// sync and a node's Reset to a new owner go in several parts, and the
// watchers see them whole.
func TestPresenceLargeSets(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) {
		cfg.Presence = []PresenceRule{{Pattern: "rooms:*"}}
		cfg.MaxPayload = 1 // frames of about 64 KiB: a chunk holds 8 entries of 4 KiB
	})
	ctx := ctxT(t, 30*time.Second)
	topic := topicOwnedBy(t, c.nodes[0], "node-2", "rooms:large")
	data := []byte(strings.Repeat("x", MaxPresenceData))
	const count = 40
	for i := range count {
		if _, err := c.nodes[0].Track(ctx, topic, fmt.Sprintf("u%02d", i), data); err != nil {
			t.Fatal(err)
		}
	}
	if got := presenceChunk(c.nodes[0].cfg); count*MaxPresenceData < 4*got {
		t.Fatalf("a chunk of %d bytes: the set fits in few frames", got)
	}
	w, err := c.nodes[1].WatchPresence(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	log := follow(t, w)
	waitFor(t, 5*time.Second, "the watch to hold the set", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.state) == count && log.syncs == 1
	})
	syncs := c.nodes[1].Stats().Links.Peers["node-2"].Received[Frame(wire.FramePresenceSync)]
	if syncs < 4 {
		t.Fatalf("the sync came in %d frames", syncs)
	}
	_ = c.nodes[2].Close()
	waitFor(t, 10*time.Second, "the new owner to hold the set", func() bool {
		for _, n := range c.nodes[:2] {
			if o, err := n.Owner(topic); err == nil && o.Name == n.Name() {
				s := n.presenceOwners.set(topic, n.presenceRules.match(topic))
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.count == count
			}
		}
		return false
	})
	waitFor(t, 5*time.Second, "the watch to follow the new owner", func() bool {
		cp := c.nodes[1].presenceIn.get(topic)
		cp.mu.Lock()
		defer cp.mu.Unlock()
		return cp.owner != "node-2" && cp.synced && cp.reqID == 0
	})
	if left := log.leftKeys(); len(left) != 0 {
		t.Fatalf("entries left while the set moved: %v", left)
	}
	log.mu.Lock()
	n := len(log.state)
	log.mu.Unlock()
	if n != count {
		t.Fatalf("the watch holds %d entries, want %d", n, count)
	}
}

// TestPresenceLostDiff drops a diff on its way to a watcher, as a link
// that breaks may: the next one shows the gap, and the watcher syncs again
// rather than miss the change for good.
func TestPresenceLostDiff(t *testing.T) {
	c := startCluster(t, 2, withPresence())
	ctx := ctxT(t, 20*time.Second)
	owner, watcher := c.nodes[0], c.nodes[1]
	topic := topicOwnedBy(t, owner, owner.Name(), "rooms:lossy")
	if _, err := owner.Track(ctx, topic, "first", nil); err != nil {
		t.Fatal(err)
	}
	w, err := watcher.WatchPresence(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	log := follow(t, w)
	waitFor(t, 5*time.Second, "the watch to sync", func() bool { return log.String() == "first@node-0=" })

	s := owner.presenceOwners.set(topic, owner.presenceRules.match(topic))
	s.mu.Lock()
	delete(s.watchers, watcher.Name()) // the diff of "lost" goes nowhere
	s.mu.Unlock()
	if _, err := owner.Track(ctx, topic, "lost", nil); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.watchers[watcher.Name()] = struct{}{}
	s.mu.Unlock()
	if _, err := owner.Track(ctx, topic, "next", nil); err != nil {
		t.Fatal(err)
	}
	want := "first@node-0=,lost@node-0=,next@node-0="
	waitFor(t, 5*time.Second, "the watch to get the lost change", func() bool { return log.String() == want })
	waitPresence(t, watcher, topic, want, 5*time.Second)
	if left := log.leftKeys(); len(left) != 0 {
		t.Fatalf("leaves %v", left)
	}
}
