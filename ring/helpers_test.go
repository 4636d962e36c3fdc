package ring

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it returns true or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testProtocolVersion is the protocol version test members advertise.
const testProtocolVersion uint8 = 2

// testConfig returns a loopback config with fast failure detection.
func testConfig(name string, roles ...string) Config {
	return Config{
		NodeName:        name,
		BindAddr:        "127.0.0.1:0",
		Roles:           roles,
		PeerAddr:        "127.0.0.1:9000",
		ProtocolVersion: testProtocolVersion,
	}.FastTimings()
}

// newTestRing starts a Ring and closes it when the test ends.
func newTestRing(t testing.TB, cfg Config) *Ring {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close(%s): %v", cfg.NodeName, err)
		}
	})
	return r
}

// startCluster starts n rings named node-0..node-n-1 with the roles chosen
// by roles (nil: default), joins them to node-0 and waits until every node
// sees all n members.
func startCluster(t testing.TB, n int, roles func(i int) []string, mutate func(i int, c *Config)) []*Ring {
	t.Helper()
	rings := make([]*Ring, n)
	for i := range n {
		var rs []string
		if roles != nil {
			rs = roles(i)
		}
		cfg := testConfig(fmt.Sprintf("node-%d", i), rs...)
		cfg.PeerAddr = fmt.Sprintf("127.0.0.1:%d", 9000+i)
		if mutate != nil {
			mutate(i, &cfg)
		}
		rings[i] = newTestRing(t, cfg)
		if i > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			k, err := rings[i].Join(ctx, rings[0].GossipAddr())
			cancel()
			if err != nil || k != 1 {
				t.Fatalf("node-%d Join = %d, %v", i, k, err)
			}
		}
	}
	waitConverged(t, rings, names(rings...))
	return rings
}

// names returns the node names of rings, sorted.
func names(rings ...*Ring) []string {
	out := make([]string, 0, len(rings))
	for _, r := range rings {
		out = append(out, r.LocalName())
	}
	slices.Sort(out)
	return out
}

// memberNames returns the names in v.
func memberNames(v *View) []string {
	var out []string
	for _, m := range v.Members() {
		out = append(out, m.Name)
	}
	return out
}

// waitConverged waits until every ring's view lists exactly want.
func waitConverged(t testing.TB, rings []*Ring, want []string) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("members %v on every node", want), func() bool {
		for _, r := range rings {
			if !slices.Equal(memberNames(r.View()), want) {
				return false
			}
		}
		return true
	})
}

// topics returns n distinct topic names.
func topics(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("room:%d", i)
	}
	return out
}

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}

func (h *recorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recorder) WithGroup(string) slog.Handler      { return h }

// has reports whether a record with level and msg mentions member.
func (h *recorder) has(level slog.Level, msg, member string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Level != level || r.Message != msg {
			continue
		}
		found := member == ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "member" && a.Value.String() == member {
				found = true
				return false
			}
			return true
		})
		if found {
			return true
		}
	}
	return false
}

// count returns the number of records with msg.
func (h *recorder) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Message == msg {
			n++
		}
	}
	return n
}
