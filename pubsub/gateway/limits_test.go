package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

func TestOversizeMessageClosesConnection(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{MaxMessageSize: 1024})
	c := g.dial()
	c.join("1", "t:size")
	// At the limit is fine.
	const head, tail = `["1","2","t:size","publish",["e",{"p":"`, `"}]]`
	body := head + repeat("x", 1024-len(head)-len(tail)) + tail
	if len(body) != 1024 {
		t.Fatalf("test message is %d bytes", len(body))
	}
	c.send(body)
	c.expect(okReply("1", "2", "t:size"))
	c.read() // the broadcast
	c.send(`["1","3","t:size","publish",["e",{"p":"` + repeat("x", 2048) + `"}]]`)
	c.expectClose(cws.StatusMessageTooBig, "")
	waitFor(t, testTimeout, "the connection to be gone", func() bool { return g.h.Stats().Connections == 0 })
}

func TestTooManyTopics(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{MaxTopicsPerConn: 2})
	c := g.dial()
	c.join("1", "t:a")
	c.join("2", "t:b")
	c.send(`["3","3","t:c","phx_join",{}]`)
	c.expect(errReply("3", "3", "t:c", "too many topics"))
	// Rejoining a joined topic does not count as one more.
	c.send(`["4","4","t:a","phx_join",{}]`)
	c.expect(`["1","1","t:a","phx_close",{}]`)
	c.expect(okReply("4", "4", "t:a"))
	c.send(`["2","5","t:b","phx_leave",{}]`)
	c.expect(okReply("2", "5", "t:b"))
	c.expect(`["2","2","t:b","phx_close",{}]`)
	c.join("6", "t:c")
}

// smallBufferClient dials with a small socket receive buffer, so that a
// client that does not read fills up quickly.
func smallBufferClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return c, err
		},
	}}
}

func TestSlowConsumerIsDisconnected(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, &Options{OutboundQueueBytes: 64 << 10, WriteTimeout: 500 * time.Millisecond})
	slow := dialURL(t, g.url, &cws.DialOptions{HTTPClient: smallBufferClient()})
	slow.join("1", "t:slow")
	fast := g.dial()
	fast.join("2", "t:slow")

	body := `{"p":"` + repeat("z", 16<<10) + `"}`
	published := 0
	for g.h.Stats().SlowConsumers == 0 {
		if published == 5000 {
			t.Fatalf("no slow consumer after %d messages", published)
		}
		published++
		seq := publishJSON(t, b, "t:slow", "e", body)
		// The fast client reads every message, in order, while the slow one reads nothing.
		fast.expect(`["2",null,"t:slow","e",` + body + `]`)
		if seq != uint64(published) {
			t.Fatalf("seq %d, want %d", seq, published)
		}
	}
	// The fast client keeps receiving; the slow one is gone.
	for i := range 10 {
		publishJSON(t, b, "t:slow", "after", `{"i":`+strconv.Itoa(i)+`}`)
		fast.expect(`["2",null,"t:slow","after",{"i":` + strconv.Itoa(i) + `}]`)
	}
	waitFor(t, testTimeout, "the slow connection to be closed", func() bool { return g.h.Stats().Connections == 1 })
	if s := g.h.Stats(); s.SlowConsumers != 1 {
		t.Fatalf("SlowConsumers = %d, want 1", s.SlowConsumers)
	}
}

func TestSlowConsumerGetsCloseReason(t *testing.T) {
	// A client that reads, but only after its queue overflowed, finds the
	// close reason after the messages that were queued.
	b := NewMemoryBroker()
	g := newGateway(t, b, &Options{OutboundQueueBytes: 4 << 10})
	c := g.dial()
	c.join("1", "t:reason")
	// Pretend a publish of this client is in flight: broadcasts to it are
	// then held back, and count against its queue.
	g.h.mu.Lock()
	conns := g.h.snapshotLocked()
	g.h.mu.Unlock()
	if len(conns) != 1 {
		t.Fatalf("%d connections", len(conns))
	}
	sc := conns[0]
	sc.mu.Lock()
	sc.joins["t:reason"].publishing = true
	sc.mu.Unlock()
	for range 20 {
		publishJSON(t, b, "t:reason", "e", `{"p":"`+repeat("q", 512)+`"}`)
	}
	c.expectClose(cws.StatusTryAgainLater, "slow consumer")
}

func TestIdleTimeout(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{IdleTimeout: 300 * time.Millisecond})
	idle, busy := g.dial(), g.dial()
	start := time.Now()

	// busy sends a heartbeat every 50 ms and stays connected well past the timeout.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; time.Since(start) < 800*time.Millisecond; i++ {
		<-tick.C
		ref := strconv.Itoa(i)
		busy.send(`[null,"` + ref + `","phoenix","heartbeat",{}]`)
		busy.expect(okReply("", ref, "phoenix"))
	}
	idle.expectClose(cws.StatusPolicyViolation, "idle timeout")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("idle connection closed after %v, before the timeout", d)
	}
	busy.join("1", "t:idle")
	waitFor(t, testTimeout, "the idle connection to be gone", func() bool { return g.h.Stats().Connections == 1 })
}

func TestShutdownClosesConnections(t *testing.T) {
	b := newCountingBroker()
	g := newGateway(t, b, nil)
	a, c := g.dial(), g.dial()
	a.join("1", "t:down")
	c.join("1", "t:down")

	done := make(chan error, 1)
	go func() { done <- g.h.Shutdown(context.Background()) }()
	a.expectClose(cws.StatusGoingAway, "server shutting down")
	c.expectClose(cws.StatusGoingAway, "server shutting down")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Shutdown did not return")
	}
	if s := g.h.Stats(); s.Connections != 0 || s.Topics != 0 {
		t.Fatalf("after Shutdown: %+v", s)
	}
	if _, unsubs := b.counts("t:down"); unsubs != 1 {
		t.Fatalf("unsubscribes = %d, want 1", unsubs)
	}
	// New connections are refused; Shutdown and Close may be called again.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, resp, err := cws.Dial(ctx, g.url, &cws.DialOptions{HTTPClient: httpClient()})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Shutdown: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	if err := g.h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.h.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownCutsUnresponsiveConnections(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	c := g.dial() // never reads, so never answers the close message
	c.join("1", "t:cut")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := g.h.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if s := g.h.Stats(); s.Connections != 0 || s.Topics != 0 {
		t.Fatalf("after Shutdown: %+v", s)
	}
}
