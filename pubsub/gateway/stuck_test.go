package gateway

import (
	"runtime"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

// A client that stops reading is cut once what it has not taken reaches
// OutboundQueueBytes, even at a publish rate the socket buffers could absorb
// for minutes, and long before the write timeout.
func TestStuckClientIsCutAtOutboundLimit(t *testing.T) {
	const limit = 32 << 10
	b := NewMemoryBroker()
	g := newGateway(t, b, &Options{OutboundQueueBytes: limit, WriteTimeout: time.Minute})
	stuck := dialURL(t, g.url, &cws.DialOptions{HTTPClient: smallBufferClient()})
	stuck.join("1", "t:stuck")
	// stuck reads nothing from here on.

	body := `{"p":"` + repeat("s", 2<<10) + `"}`
	tick := time.NewTicker(10 * time.Millisecond) // about 200 KB/s
	defer tick.Stop()
	start := time.Now()
	published := 0
	var queuedMax int64
	for g.h.Stats().SlowConsumers == 0 {
		queuedMax = max(queuedMax, g.h.Stats().QueuedBytes)
		if time.Since(start) > 10*time.Second {
			t.Fatalf("not cut after %v and %d bytes published", time.Since(start), published)
		}
		<-tick.C
		publishJSON(t, b, "t:stuck", "e", body)
		published += len(body)
	}
	cutAfter := time.Since(start)
	waitFor(t, 5*time.Second, "the stuck connection to be closed", func() bool { return g.h.Stats().Connections == 0 })
	closedAfter := time.Since(start)
	if s := g.h.Stats(); s.SlowConsumers != 1 || s.QueuedBytes != 0 {
		t.Fatalf("SlowConsumers = %d, QueuedBytes = %d; want 1, 0", s.SlowConsumers, s.QueuedBytes)
	}
	if queuedMax == 0 {
		t.Fatal("QueuedBytes never counted what waited for the stuck client")
	}
	// What the client took before it stopped is bounded by its receive
	// buffer; the rest is the limit, a batch, and (without a measurable
	// send queue) the small send buffer.
	bound := limit + 512<<10
	if runtime.GOOS == "linux" {
		bound = limit + 256<<10
	}
	if published > bound {
		t.Fatalf("cut after %d bytes, want at most %d", published, bound)
	}
	t.Logf("cut after %v and %d bytes published (at most %d queued), closed after %v", cutAfter, published, queuedMax, closedAfter)
}

// One message larger than OutboundQueueBytes still reaches a client that
// reads: what it has not acknowledged yet is that one message.
func TestLargeMessageToReadingClientIsNotCut(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, &Options{OutboundQueueBytes: 16 << 10})
	c := g.dial()
	c.join("1", "t:large")
	for i := range 3 {
		body := `{"i":` + string(rune('0'+i)) + `,"p":"` + repeat("L", 1<<20) + `"}`
		publishJSON(t, b, "t:large", "e", body)
		c.expect(`["1",null,"t:large","e",` + body + `]`)
	}
	if s := g.h.Stats(); s.SlowConsumers != 0 {
		t.Fatalf("SlowConsumers = %d, want 0", s.SlowConsumers)
	}
}
