package pubsub

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/store/pgtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// pgtest.Main stops the Postgres server the durable-topic tests share.
	goleak.VerifyTestMain(pgtest.Main(m))
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// debugLogger is nil (silent) unless RINGCAST_TEST_LOG is set, which sends
// every test node's debug log to stderr.
var debugLogger = func() *slog.Logger {
	if os.Getenv("RINGCAST_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}()

func testConfig(name string) Config {
	return Config{
		NodeName: name,
		Gossip:   FastGossip(),
		Logger:   debugLogger,
	}
}

// cluster is an in-process cluster of real nodes on 127.0.0.1.
type cluster struct {
	t     testing.TB
	mu    sync.Mutex
	nodes []*Node
	next  int
}

// startCluster starts n nodes joined together and waits until every node
// sees all of them.
func startCluster(t testing.TB, n int, tweak func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t}
	t.Cleanup(c.closeAll)
	for range n {
		c.add(tweak)
	}
	c.waitConverged()
	return c
}

// add starts one more node, joined to the first.
func (c *cluster) add(tweak func(*Config)) *Node {
	c.t.Helper()
	c.mu.Lock()
	cfg := testConfig(fmt.Sprintf("node-%d", c.next))
	c.next++
	if len(c.nodes) > 0 {
		cfg.Seeds = []string{c.nodes[0].GossipAddr()}
	}
	c.mu.Unlock()
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		c.t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

// live returns the nodes not stopped.
func (c *cluster) live() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.nodes {
		if !n.isClosed() {
			out = append(out, n)
		}
	}
	return out
}

// waitConverged waits until every live node sees exactly the live nodes.
func (c *cluster) waitConverged() {
	c.t.Helper()
	live := c.live()
	waitFor(c.t, 10*time.Second, "membership to converge", func() bool {
		for _, n := range live {
			if n.view().Len() != len(live) {
				return false
			}
		}
		return true
	})
}

func (c *cluster) closeAll() {
	c.mu.Lock()
	nodes := c.nodes
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.Close()
		}()
	}
	wg.Wait()
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// topicOwnedBy returns a topic that n's view says name owns.
func topicOwnedBy(t testing.TB, n *Node, name, prefix string) string {
	t.Helper()
	for i := range 100000 {
		topic := fmt.Sprintf("%s-%d", prefix, i)
		if o, err := n.Owner(topic); err == nil && o.Name == name {
			return topic
		}
	}
	t.Fatalf("no topic owned by %s", name)
	return ""
}
