package broker_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/ringcast/ringcast/pubsub"
)

const testTimeout = 10 * time.Second

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

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startNode starts a node on 127.0.0.1 joined to seed (if not empty) and
// closes it when the test ends.
func startNode(t testing.TB, name, seed string, roles ...string) *pubsub.Node {
	t.Helper()
	cfg := pubsub.Config{NodeName: name, Roles: roles, Gossip: pubsub.FastGossip(), Workers: 2}
	if seed != "" {
		cfg.Seeds = []string{seed}
	}
	n, err := pubsub.New(cfg)
	if err != nil {
		t.Fatalf("pubsub.New(%s): %v", name, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// waitMembers waits until every node sees len(nodes) members.
func waitMembers(t testing.TB, nodes ...*pubsub.Node) {
	t.Helper()
	waitFor(t, testTimeout, "membership to converge", func() bool {
		for _, n := range nodes {
			if len(n.Members()) != len(nodes) {
				return false
			}
		}
		return true
	})
}

// recorder collects what a Broker hands to the gateway's callbacks.
type recorder struct {
	mu     sync.Mutex
	msgs   []string // "topic epoch seq data"
	closed []error
}

func (r *recorder) deliver(m wsMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf("%s %d %d %s", m.Topic, m.Epoch, m.Seq, m.Data))
}

func (r *recorder) close(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = append(r.closed, err)
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

func (r *recorder) closes() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.closed...)
}

// wsClient is a WebSocket test client speaking Phoenix V2 text frames.
type wsClient struct {
	t  testing.TB
	ws *cws.Conn
}

func dial(t testing.TB, url string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ws, resp, err := cws.Dial(ctx, url, &cws.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &wsClient{t: t, ws: ws}
}

func (c *wsClient) send(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, cws.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("send %s: %v", msg, err)
	}
}

// expect reads one message and requires it to be exactly want.
func (c *wsClient) expect(want string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	typ, data, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read (want %s): %v", want, err)
	}
	if typ != cws.MessageText || string(data) != want {
		c.t.Fatalf("got  %v %s\nwant %s", typ, data, want)
	}
}
