package pubsub

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/pgtest"
	"github.com/ringcast/ringcast/pubsub/store/postgres"
	"github.com/ringcast/ringcast/pubsub/store/sqlite"
)

// memStore is a store.Store held in memory, shared by the nodes of a test
// as a database would be, with faults to inject: down makes every call
// fail as an unreachable database does.
type memStore struct {
	mu      sync.Mutex
	topics  map[string]*memTopic
	down    atomic.Bool
	closed  bool
	appends atomic.Int64
}

type memTopic struct {
	epoch, seq, token uint64
	owner             string
	msgs              []store.Message
}

func newMemStore() *memStore { return &memStore{topics: make(map[string]*memTopic)} }

var errMemDown = errors.New("connection refused (test store is down)")

func (s *memStore) check(ctx context.Context) error {
	if s.closed {
		return store.ErrClosed
	}
	if s.down.Load() {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, errMemDown)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return nil
}

func (s *memStore) Claim(ctx context.Context, topic, owner string, epoch uint64) (store.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return store.Lease{}, err
	}
	t := s.topics[topic]
	if t == nil {
		t = &memTopic{epoch: epoch}
		s.topics[topic] = t
	}
	t.token++
	t.owner = owner
	return store.Lease{Epoch: t.epoch, Seq: t.seq, Token: t.token}, nil
}

func (s *memStore) Append(ctx context.Context, batch []store.Append) ([]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	s.appends.Add(1)
	results := make([]error, len(batch))
	for i, a := range batch {
		t := s.topics[a.Topic]
		switch {
		case t == nil || t.token != a.Token:
			results[i] = fmt.Errorf("%w: token %d", store.ErrFenced, a.Token)
			continue
		case a.Messages[0].Seq != t.seq+1:
			results[i] = fmt.Errorf("%w: head %d, append from %d", store.ErrFenced, t.seq, a.Messages[0].Seq)
			continue
		}
		for _, m := range a.Messages {
			m.Data = slices.Clone(m.Data)
			t.msgs = append(t.msgs, m)
			t.seq = m.Seq
		}
	}
	return results, nil
}

func (s *memStore) Read(ctx context.Context, topic string, after uint64, limit, maxBytes int) ([]store.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	t := s.topics[topic]
	if t == nil {
		return nil, nil
	}
	var out []store.Message
	size := 0
	for _, m := range t.msgs {
		if m.Seq <= after {
			continue
		}
		if len(out) == limit || len(out) > 0 && size+len(m.Data) > maxBytes {
			break
		}
		out = append(out, m)
		size += len(m.Data)
	}
	return out, nil
}

func (s *memStore) Trim(ctx context.Context, topic string, through uint64, before int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	t := s.topics[topic]
	if t == nil {
		return 0, nil
	}
	kept := t.msgs[:0]
	for _, m := range t.msgs {
		if m.Seq > through && (before == 0 || m.Time >= before) {
			kept = append(kept, m)
		}
	}
	n := int64(len(t.msgs) - len(kept))
	t.msgs = kept
	return n, nil
}

func (s *memStore) Topics(ctx context.Context, after string, limit int) ([]store.TopicHead, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var out []store.TopicHead
	for name, t := range s.topics {
		if name > after {
			out = append(out, store.TopicHead{Name: name, Epoch: t.epoch, Seq: t.seq, Owner: t.owner})
		}
	}
	slices.SortFunc(out, func(a, b store.TopicHead) int { return strings.Compare(a.Name, b.Name) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// head returns what the store holds of topic: epoch, head, messages.
func (s *memStore) head(topic string) (epoch, seq uint64, msgs []store.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topic]
	if t == nil {
		return 0, 0, nil
	}
	return t.epoch, t.seq, slices.Clone(t.msgs)
}

// stored returns what st holds of topic: epoch, head, messages.
func stored(t testing.TB, st store.Store, topic string) (epoch, seq uint64, msgs []store.Message) {
	t.Helper()
	if m, ok := st.(*memStore); ok {
		return m.head(topic)
	}
	ctx := ctxT(t, 10*time.Second)
	heads, err := st.Topics(ctx, "", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range heads {
		if h.Name == topic {
			epoch, seq = h.Epoch, h.Seq
		}
	}
	after := uint64(0)
	for {
		page, err := st.Read(ctx, topic, after, 1000, 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return epoch, seq, msgs
		}
		msgs = append(msgs, page...)
		after = page[len(page)-1].Seq
	}
}

// eachStore runs test against the in-memory test store, a SQLite store in
// a temporary file, and a Postgres store in a database of its own on the
// server the package's tests share; every node of a test shares its store.
func eachStore(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Run("mem", func(t *testing.T) { test(t, newMemStore()) })
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ringcast.db"), sqlite.Options{Synchronous: "normal"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		test(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.Shared(t).NewDatabase(t)
		st, err := postgres.Open(context.Background(), url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		test(t, st)
	})
}

// withStore returns a tweak that gives a node st and, with rules, those
// Durability rules.
func withStore(st store.Store, rules ...Durability) func(*Config) {
	return func(c *Config) {
		c.Store = st
		c.Durability = rules
	}
}

// newStandalone starts one node that is its own cluster.
func newStandalone(t *testing.T, name string, tweak func(*Config)) *Node {
	t.Helper()
	cfg := testConfig(name)
	tweak(&cfg)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// TestDurableSurvivesRestart publishes to a durable topic, closes the
// node, starts another on the same store: the topic goes on in the same
// epoch, and a subscriber resuming from a position receives exactly the
// rest, read from the store.
func TestDurableSurvivesRestart(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := ctxT(t, 20*time.Second)
		a := newStandalone(t, "a", withStore(st))
		var last PublishResult
		for i := 1; i <= 20; i++ {
			res, err := a.Publish(ctx, "orders", fmt.Appendf(nil, "m%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if res.Seq != uint64(i) {
				t.Fatalf("publish %d got seq %d", i, res.Seq)
			}
			last = res
		}
		if _, head, msgs := stored(t, st, "orders"); head != 20 || len(msgs) != 20 {
			t.Fatalf("store holds head %d, %d messages; want 20", head, len(msgs))
		}
		_ = a.Close()

		b := newStandalone(t, "b", withStore(st, Durability{Pattern: "*"}))
		sub, err := b.Subscribe(ctx, "orders", Since(last.Epoch, 7))
		if err != nil {
			t.Fatal(err)
		}
		for want := uint64(8); want <= 20; want++ {
			m, err := sub.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Epoch != last.Epoch || m.Seq != want || string(m.Data) != fmt.Sprintf("m%d", want) {
				t.Fatalf("got %d/%d %q, want %d/%d m%d", m.Epoch, m.Seq, m.Data, last.Epoch, want, want)
			}
		}
		res, err := b.Publish(ctx, "orders", []byte("m21"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Epoch != last.Epoch || res.Seq != 21 {
			t.Fatalf("after restart: %d/%d, want %d/21", res.Epoch, res.Seq, last.Epoch)
		}
		m, err := sub.Next(ctx)
		if err != nil || m.Seq != 21 {
			t.Fatalf("live after recovery: %v %v", m, err)
		}
		// A position the store has trimmed is gone, and says where the topic is.
		if _, err := st.Trim(ctx, "orders", 10, 0); err != nil {
			t.Fatal(err)
		}
		_, err = b.Subscribe(ctx, "orders", Since(last.Epoch, 3))
		var gone *HistoryGoneError
		if !errors.As(err, &gone) || gone.Current.Seq != 21 {
			t.Fatalf("Since before the store's oldest: %v", err)
		}
	})
}

// TestDurableFailoverContinues kills the owner of a durable topic in a
// three-node cluster: the new owner takes the head from the store, so the
// sequence goes on with no failover jump and no new epoch, and a
// subscriber on another node misses nothing acknowledged.
func TestDurableFailoverContinues(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		c := startCluster(t, 3, withStore(st))
		ctx := ctxT(t, 30*time.Second)
		nodes := c.live()
		topic := topicOwnedBy(t, nodes[0], nodes[1].Name(), "durable")
		var rec recorder
		if _, err := nodes[2].SubscribeFunc(ctx, topic, rec.handle); err != nil {
			t.Fatal(err)
		}
		var first PublishResult
		for i := 1; i <= 50; i++ {
			res, err := nodes[0].Publish(ctx, topic, fmt.Appendf(nil, "%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				first = res
			}
		}
		_ = nodes[1].Close()
		var res PublishResult
		waitFor(t, 15*time.Second, "a publish after the failover", func() bool {
			r, err := nodes[0].Publish(ctx, topic, []byte("51"))
			res = r
			return err == nil
		})
		if res.Epoch != first.Epoch || res.Seq != 51 {
			t.Fatalf("after failover: %d/%d, want %d/51", res.Epoch, res.Seq, first.Epoch)
		}
		waitFor(t, 10*time.Second, "the subscriber to receive all 51", func() bool { return rec.len() >= 51 })
		msgs := rec.snapshot()
		checkOrdered(t, "subscriber", msgs)
		for i, m := range msgs[:51] {
			if m.Seq != uint64(i+1) || m.Epoch != first.Epoch {
				t.Fatalf("message %d is %d/%d", i, m.Epoch, m.Seq)
			}
		}
		if s := nodes[2].Stats(); s.Lost != 0 {
			t.Fatalf("subscriber node lost %d messages", s.Lost)
		}
	})
}

// TestDurableFencing runs two nodes that each believe they own one topic
// (two one-node clusters on one store, as two sides of a partition are):
// each claim in the store fences the other's appends, so every message
// acknowledged by either has its own sequence number and is in the store
// at that number, and the store's sequence has no gap.
func TestDurableFencing(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := ctxT(t, 30*time.Second)
		a := newStandalone(t, "a", withStore(st))
		b := newStandalone(t, "b", withStore(st))
		type acked struct {
			seq  uint64
			data string
		}
		var (
			mu  sync.Mutex
			all []acked
			wg  sync.WaitGroup
		)
		for _, n := range []*Node{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					data := fmt.Sprintf("%s-%d", n.Name(), i)
					res, err := n.Publish(ctx, "contested", []byte(data))
					if err != nil {
						if !errors.Is(err, ErrStoreUnavailable) {
							t.Errorf("publish: %v", err)
						}
						continue
					}
					mu.Lock()
					all = append(all, acked{res.Seq, data})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		// Then in turns, which contends on every publish whatever the
		// timing above: each claim fences the other node's, so each
		// node's next append is refused and it claims the topic back.
		for i := range 10 {
			for _, n := range []*Node{a, b} {
				data := fmt.Sprintf("%s-turn-%d", n.Name(), i)
				res, err := n.Publish(ctx, "contested", []byte(data))
				if err != nil {
					t.Fatalf("publish in turn: %v", err)
				}
				all = append(all, acked{res.Seq, data})
			}
		}
		_, head, msgs := stored(t, st, "contested")
		if len(msgs) != int(head) {
			t.Fatalf("store holds %d messages up to head %d", len(msgs), head)
		}
		for i, m := range msgs {
			if m.Seq != uint64(i+1) {
				t.Fatalf("store's sequence has a gap at %d: %d", i+1, m.Seq)
			}
		}
		if len(all) != len(msgs) {
			t.Fatalf("%d publishes acknowledged, %d stored", len(all), len(msgs))
		}
		for _, ack := range all {
			if got := string(msgs[ack.seq-1].Data); got != ack.data {
				t.Fatalf("seq %d acknowledged for %q, stored %q", ack.seq, ack.data, got)
			}
		}
		fenced := a.Stats().Store.Fenced + b.Stats().Store.Fenced
		if fenced < 19 {
			t.Fatalf("%d appends fenced; publishing in turns alone fences 19", fenced)
		}
		t.Logf("%d acknowledged, %d step-downs", len(all), fenced)
	})
}

// TestDurableStoreDown stops the store: publishes to durable topics fail
// with ErrStoreUnavailable and are not acknowledged, memory-only topics go
// on, and once the store is back (after the back-off) durable publishes
// succeed again with the sequence intact.
func TestDurableStoreDown(t *testing.T) {
	st := newMemStore()
	ctx := ctxT(t, 30*time.Second)
	n := newStandalone(t, "a", withStore(st, Durability{Pattern: "*"}, Durability{Pattern: "cursor:*", Memory: true}))
	if _, err := n.Publish(ctx, "orders", []byte("1")); err != nil {
		t.Fatal(err)
	}
	st.down.Store(true)
	for i := range 5 {
		_, err := n.Publish(ctx, "orders", []byte("lost"))
		if !errors.Is(err, ErrStoreUnavailable) || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("publish %d while the store is down: %v", i, err)
		}
		if _, err := n.Publish(ctx, "cursor:1", []byte("x")); err != nil {
			t.Fatalf("memory-only publish while the store is down: %v", err)
		}
	}
	// A topic first used while the store is down cannot be claimed.
	if _, err := n.Publish(ctx, "fresh", []byte("x")); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("publish to a new durable topic while the store is down: %v", err)
	}
	st.down.Store(false)
	var res PublishResult
	waitFor(t, 10*time.Second, "publishes to work again", func() bool {
		r, err := n.Publish(ctx, "orders", []byte("2"))
		res = r
		return err == nil
	})
	if res.Seq != 2 {
		t.Fatalf("first publish after the outage has seq %d, want 2", res.Seq)
	}
	if _, _, msgs := st.head("orders"); len(msgs) != 2 || string(msgs[1].Data) != "2" {
		t.Fatalf("store holds %v", msgs)
	}
	if _, err := n.Publish(ctx, "fresh", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if s := n.Stats().Store; s.Errors == 0 || s.Committed != 3 {
		t.Fatalf("store stats %+v", s)
	}
}

// TestDurableSinceReadsStore keeps 4 messages in memory and 60 in the
// store: a subscriber on another node resuming from an early position gets
// every message, paged from the store.
func TestDurableSinceReadsStore(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		c := startCluster(t, 2, func(c *Config) {
			withStore(st)(c)
			c.HistorySize = 4
		})
		ctx := ctxT(t, 20*time.Second)
		nodes := c.live()
		topic := topicOwnedBy(t, nodes[0], nodes[0].Name(), "since")
		payload := strings.Repeat("x", 200<<10) // a page holds about one MiB: several pages
		var res PublishResult
		for i := 1; i <= 60; i++ {
			var err error
			if res, err = nodes[0].Publish(ctx, topic, fmt.Appendf([]byte(payload), "%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		sub, err := nodes[1].Subscribe(ctx, topic, Since(res.Epoch, 2))
		if err != nil {
			t.Fatal(err)
		}
		for want := uint64(3); want <= 60; want++ {
			m, err := sub.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Seq != want || !strings.HasSuffix(string(m.Data), fmt.Sprint(want)) {
				t.Fatalf("got seq %d, want %d", m.Seq, want)
			}
		}
		if nodes[0].Stats().Store.Reads < 2 {
			t.Fatalf("store reads: %d", nodes[0].Stats().Store.Reads)
		}
	})
}

// TestDurableRetention bounds a namespace to 10 messages: the sweep trims
// the store, and memory-only topics never reach it.
func TestDurableRetention(t *testing.T) {
	old := storeSweepInterval
	storeSweepInterval = 20 * time.Millisecond
	t.Cleanup(func() { storeSweepInterval = old })
	st := newMemStore()
	ctx := ctxT(t, 20*time.Second)
	n := newStandalone(t, "a", withStore(st,
		Durability{Pattern: "logs:*", MaxCount: 10},
		Durability{Pattern: "cursor:*", Memory: true},
		Durability{Pattern: "orders"}))
	for i := range 30 {
		for _, topic := range []string{"logs:a", "orders", "cursor:1", "other"} {
			if _, err := n.Publish(ctx, topic, fmt.Appendf(nil, "%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 10*time.Second, "the sweep to trim logs:a", func() bool {
		_, _, msgs := st.head("logs:a")
		return len(msgs) == 10 && msgs[0].Seq == 21
	})
	if _, _, msgs := st.head("orders"); len(msgs) != 30 {
		t.Fatalf("orders (no bound) holds %d", len(msgs))
	}
	for _, topic := range []string{"cursor:1", "other"} {
		if e, _, _ := st.head(topic); e != 0 {
			t.Fatalf("memory-only topic %q reached the store", topic)
		}
	}
	if n.Stats().Store.Trimmed != 20 {
		t.Fatalf("trimmed %d, want 20", n.Stats().Store.Trimmed)
	}
}

// TestDurabilityRules checks pattern matching and refused rules.
func TestDurabilityRules(t *testing.T) {
	rs, err := newDurabilityRules([]Durability{
		{Pattern: "*"},
		{Pattern: "cursor:*", Memory: true},
		{Pattern: "cursor:keep", MaxCount: 5},
		{Pattern: "notifications:*", MaxAge: time.Hour},
		{Pattern: "notifications:user:*", MaxCount: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{
		"orders":               "*",
		"cursor:1":             "",
		"cursor:keep":          "cursor:keep",
		"notifications:x":      "notifications:*",
		"notifications:user:7": "notifications:user:*",
		"notifications:user":   "notifications:*",
	} {
		got := ""
		if r := rs.durable(topic); r != nil {
			got = r.Pattern
		}
		if got != want {
			t.Errorf("%q follows %q, want %q", topic, got, want)
		}
	}
	none, _ := newDurabilityRules([]Durability{{Pattern: "a:*"}})
	if none.durable("b") != nil {
		t.Error("a topic no rule matches is durable")
	}
	for _, bad := range [][]Durability{
		{{Pattern: ""}},
		{{Pattern: "a*b"}},
		{{Pattern: "**"}},
		{{Pattern: "bad\x00name"}},
		{{Pattern: "a", MaxAge: -1}},
		{{Pattern: "a", Memory: true, MaxCount: 1}},
		{{Pattern: "a"}, {Pattern: "a"}},
	} {
		if _, err := newDurabilityRules(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("rules %+v: %v", bad, err)
		}
	}
	if _, err := New(Config{Store: newMemStore(), Durability: []Durability{{Pattern: "x*y"}}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with a bad rule: %v", err)
	}
}

// TestDurableRebalance publishes to durable topics while a member joins
// and another leaves gracefully: topics change owner under load, and yet
// every acknowledged message is in the store once, at its number, each
// topic's stored sequence has no gap, and a subscriber receives exactly
// the stored sequence.
func TestDurableRebalance(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		c := startCluster(t, 2, withStore(st))
		ctx := ctxT(t, 60*time.Second)
		nodes := c.live()
		const topics = 16
		recs := make([]*recorder, topics)
		for i := range recs {
			recs[i] = &recorder{}
			if _, err := nodes[0].SubscribeFunc(ctx, fmt.Sprintf("re-%d", i), recs[i].handle); err != nil {
				t.Fatal(err)
			}
		}
		var (
			mu    sync.Mutex
			acked = make(map[string]map[uint64]string)
			stop  atomic.Bool
			wg    sync.WaitGroup
			sent  atomic.Int64
		)
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 3000 && !stop.Load(); i++ {
					topic := fmt.Sprintf("re-%d", i%topics)
					data := fmt.Sprintf("w%d-%d", w, i)
					res, err := nodes[0].Publish(ctx, topic, []byte(data))
					sent.Add(1)
					if err != nil {
						continue // refused while a topic changes hands: not acknowledged
					}
					mu.Lock()
					if acked[topic] == nil {
						acked[topic] = make(map[uint64]string)
					}
					if prev, dup := acked[topic][res.Seq]; dup {
						t.Errorf("%s seq %d acknowledged twice: %q and %q", topic, res.Seq, prev, data)
					}
					acked[topic][res.Seq] = data
					mu.Unlock()
				}
			}()
		}
		waitFor(t, 10*time.Second, "traffic", func() bool { return sent.Load() > 200 })
		c.add(withStore(st))
		c.waitConverged()
		waitFor(t, 10*time.Second, "more traffic", func() bool { return sent.Load() > 1200 })
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := nodes[1].Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		cancel()
		stop.Store(true)
		wg.Wait()
		total := 0
		for i := range topics {
			topic := fmt.Sprintf("re-%d", i)
			_, head, msgs := stored(t, st, topic)
			for j, m := range msgs {
				if m.Seq != uint64(j+1) {
					t.Fatalf("%s: stored sequence has a gap at %d", topic, j+1)
				}
				if want, ok := acked[topic][m.Seq]; ok && want != string(m.Data) {
					t.Fatalf("%s seq %d: acknowledged %q, stored %q", topic, m.Seq, want, m.Data)
				}
			}
			if len(acked[topic]) > len(msgs) {
				t.Fatalf("%s: %d acknowledged, %d stored", topic, len(acked[topic]), len(msgs))
			}
			total += len(msgs)
			waitFor(t, 15*time.Second, topic+" delivered in full", func() bool { return recs[i].len() >= int(head) })
			got := recs[i].snapshot()
			checkOrdered(t, topic, got)
			for j, m := range got[:head] {
				if m.Seq != uint64(j+1) || string(m.Data) != string(msgs[j].Data) {
					t.Fatalf("%s: delivery %d is seq %d %q, stored %q", topic, j, m.Seq, m.Data, msgs[j].Data)
				}
			}
		}
		t.Logf("%d publishes, %d stored and delivered", sent.Load(), total)
	})
}

// TestDurablePostgresOutage stops a real Postgres under a node: durable
// publishes fail with ErrStoreUnavailable while it is down, memory-only
// ones go on, and after it restarts the node reconnects and the topic goes
// on from the store's head, every stored message acknowledged at most
// once and every acknowledged one stored.
func TestDurablePostgresOutage(t *testing.T) {
	srv := pgtest.StartWith(t, pgtest.Options{NoFsync: true})
	st, err := postgres.Open(context.Background(), srv.URL(), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := ctxT(t, 60*time.Second)
	n := newStandalone(t, "a", func(c *Config) {
		withStore(st, Durability{Pattern: "*"}, Durability{Pattern: "cursor:*", Memory: true})(c)
		c.StoreTimeout = 2 * time.Second
	})
	acked := map[uint64]string{}
	publish := func(data string) error {
		res, err := n.Publish(ctx, "orders", []byte(data))
		if err == nil {
			if prev, dup := acked[res.Seq]; dup {
				t.Fatalf("seq %d acknowledged twice (%q, %q)", res.Seq, prev, data)
			}
			acked[res.Seq] = data
		}
		return err
	}
	for i := range 10 {
		if err := publish(fmt.Sprint("before-", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a publish to fail with ErrStoreUnavailable", func() bool {
		err := publish("during")
		return errors.Is(err, ErrStoreUnavailable)
	})
	if _, err := n.Publish(ctx, "cursor:1", []byte("x")); err != nil {
		t.Fatalf("memory-only publish while Postgres is down: %v", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "publishes to work again", func() bool { return publish("after") == nil })
	for i := range 10 {
		if err := publish(fmt.Sprint("after-", i)); err != nil {
			t.Fatal(err)
		}
	}
	_, head, msgs := stored(t, st, "orders")
	if len(msgs) != int(head) {
		t.Fatalf("store holds %d messages up to head %d", len(msgs), head)
	}
	for seq, data := range acked {
		if seq > head || string(msgs[seq-1].Data) != data {
			t.Fatalf("acknowledged seq %d (%q) not stored as such", seq, data)
		}
	}
	if s := n.Stats().Store; s.Errors == 0 {
		t.Fatalf("no store error counted: %+v", s)
	}
}
