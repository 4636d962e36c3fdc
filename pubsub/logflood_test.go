package pubsub

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/ringcast/ringcast/pubsub/internal/logsample"
	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/transport"
)

// frozenClock is a clock that stands still until it is moved.
type frozenClock struct{ nanos atomic.Int64 }

func newFrozenClock() *frozenClock {
	c := &frozenClock{}
	c.nanos.Store(time.Unix(1000, 0).UnixNano())
	return c
}

func (c *frozenClock) Now() time.Time          { return time.Unix(0, c.nanos.Load()) }
func (c *frozenClock) advance(d time.Duration) { c.nanos.Add(int64(d)) }

// records is a slog.Handler that keeps a copy of every record. Below the
// sampler it keeps what is logged; above it, what is offered.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }

func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

func (h *records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *records) WithGroup(string) slog.Handler      { return h }

// matching returns the records at level whose message begins with msg and
// whose kind is kind.
func (h *records) matching(level slog.Level, msg, kind string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.recs {
		if r.Level == level && strings.HasPrefix(r.Message, msg) && attr(r, logsample.KindKey).String() == kind {
			out = append(out, r)
		}
	}
	return out
}

// attr returns the value of r's attribute key (the zero Value if none).
func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// startSampledNode starts a node whose logs pass a sampler on clock and
// are kept in logged. seen counts what the node offers the sampler.
func startSampledNode(t *testing.T, clock *frozenClock) (n *Node, logged, seen *records) {
	t.Helper()
	logged, seen = &records{}, &records{}
	orig := sampleLogs
	sampleLogs = func(h slog.Handler) slog.Handler {
		return &teeHandler{seen: seen, next: logsample.New(h, logsample.Options{Now: clock.Now})}
	}
	defer func() { sampleLogs = orig }()
	cfg := testConfig("flooded")
	cfg.Logger = slog.New(logged)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n, logged, seen
}

// teeHandler offers every record to seen, then to next.
type teeHandler struct {
	seen *records
	next slog.Handler
}

func (h *teeHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	_ = h.seen.Handle(ctx, r)
	return h.next.Handle(ctx, r)
}

func (h *teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &teeHandler{seen: h.seen, next: h.next.WithAttrs(attrs)}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{seen: h.seen, next: h.next.WithGroup(name)}
}

// checkCount fails unless the last of recs says that want records were
// dropped before it.
func checkCount(t *testing.T, recs []slog.Record, want int) {
	t.Helper()
	last := recs[len(recs)-1]
	if got := attr(last, logsample.SuppressedKey).Int64(); got != int64(want) {
		t.Fatalf("last line %q suppressed=%d, want %d", last.Message, got, want)
	}
}

// A flood of garbage connections to the peer port logs a bounded number of
// lines, and the line that follows the flood says how many were dropped.
func TestRefusedConnectionFloodIsSampled(t *testing.T) {
	const flood = 1000
	clock := newFrozenClock()
	n, logged, _ := startSampledNode(t, clock)
	const msg = "transport: refused inbound connection"
	kind := transport.ErrHandshake.Error() + "/" // no peer name claimed

	garbage := func() {
		c, err := net.Dial("tcp", n.PeerAddr())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: ringcast\r\n\r\n"))
		// The node logs the refusal before it closes the connection:
		// read to the end, so that every refusal is logged (or counted)
		// before the flood is over, and at most a few are open at once.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c)
	}
	var wg sync.WaitGroup
	work := make(chan struct{})
	// No more clients at once than the node lets one address keep in the
	// handshake: the excess would be refused for that instead.
	for range transport.DefaultMaxPendingPerAddr {
		wg.Go(func() {
			for range work {
				garbage()
			}
		})
	}
	for range flood {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		return
	}
	if got := len(logged.matching(slog.LevelWarn, msg, kind)); got != logsample.DefaultBurst {
		t.Fatalf("%d lines for %d refused connections, want %d", got, flood, logsample.DefaultBurst)
	}

	clock.advance(logsample.DefaultInterval)
	garbage()
	recs := logged.matching(slog.LevelWarn, msg, kind)
	if len(recs) != logsample.DefaultBurst+1 {
		t.Fatalf("%d lines after the interval, want %d", len(recs), logsample.DefaultBurst+1)
	}
	checkCount(t, recs, flood-logsample.DefaultBurst)
}

// Garbage sent to the gossip port is logged a few lines at a time, not a
// line per packet, and the line that follows says how many were dropped.
func TestGossipGarbageFloodIsSampled(t *testing.T) {
	const flood = 1000
	clock := newFrozenClock()
	n, logged, seen := startSampledNode(t, clock)
	conn, err := net.Dial("udp", n.GossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func(p []byte) {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	// A packet without the cluster's label: memberlist logs one kind of
	// error line per packet.
	kind := `discarding packet with unacceptable label ""`
	lines := func() int { return len(seen.matching(slog.LevelError, "memberlist", kind)) }
	// Keep at most 50 packets in flight, so that the socket's buffer does
	// not drop them; send more if some are lost anyway.
	deadline := time.Now().Add(20 * time.Second)
	for sent, logged := 0, 0; logged < flood; logged = lines() {
		if time.Now().After(deadline) {
			t.Fatalf("memberlist logged %d of %d garbage packets", logged, flood)
		}
		for ; sent < logged+50; sent++ {
			send([]byte{'j', 'u', 'n', 'k', byte(sent)})
		}
		time.Sleep(time.Millisecond)
	}
	// memberlist reads packets in order on one goroutine: once a packet
	// of another kind is logged, the flood's are all logged or counted.
	marker, err := memberlist.AddLabelHeaderToPacket([]byte("junk"), "marker")
	if err != nil {
		t.Fatal(err)
	}
	markerKind := `discarding packet with unacceptable label "marker"`
	waitFor(t, 10*time.Second, "a line after the flood", func() bool {
		send(marker)
		time.Sleep(5 * time.Millisecond)
		return len(seen.matching(slog.LevelError, "memberlist", markerKind)) > 0
	})
	total := lines()
	if got := len(logged.matching(slog.LevelError, "memberlist", kind)); got != logsample.DefaultBurst {
		t.Fatalf("%d lines logged for %d garbage packets, want %d", got, total, logsample.DefaultBurst)
	}

	clock.advance(logsample.DefaultInterval)
	send([]byte("junk"))
	var recs []slog.Record
	waitFor(t, 10*time.Second, "the line after the interval", func() bool {
		recs = logged.matching(slog.LevelError, "memberlist", kind)
		return len(recs) > logsample.DefaultBurst
	})
	if len(recs) != logsample.DefaultBurst+1 {
		t.Fatalf("%d lines after the interval, want %d", len(recs), logsample.DefaultBurst+1)
	}
	checkCount(t, recs, total-logsample.DefaultBurst)
}

// A peer that sends a flood of malformed frames logs a few lines, and the
// line that follows the flood says how many were dropped.
func TestMalformedFrameFloodIsSampled(t *testing.T) {
	const flood = 1000
	clock := newFrozenClock()
	n, logged, _ := startSampledNode(t, clock)
	tr, err := transport.New(transport.Config{NodeName: "garbler", ProtocolVersion: wire.ProtocolVersion,
		Handler: transport.HandlerFunc(func(string, transport.FrameType, []byte) {})})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	to := transport.Peer{Name: n.Name(), Addr: n.PeerAddr()}
	frame := transport.AppendFrame(nil, wire.FramePublish, []byte{0x93, 0xc1}) // not a Publish body
	send := func(count int) {
		want := n.Stats().BadFrames + uint64(count)
		deadline := time.Now().Add(20 * time.Second)
		for sent := 0; sent < count; {
			if time.Now().After(deadline) {
				t.Fatalf("sent %d of %d frames", sent, count)
			}
			if tr.Send(to, frame) != nil {
				time.Sleep(time.Millisecond) // the link's queue is full
				continue
			}
			sent++
		}
		waitFor(t, 20*time.Second, "the node to read every frame", func() bool { return n.Stats().BadFrames == want })
	}
	const msg, kind = "malformed frame from peer", "malformed/Publish"
	send(flood)
	if got := len(logged.matching(slog.LevelWarn, msg, kind)); got != logsample.DefaultBurst {
		t.Fatalf("%d lines for %d malformed frames, want %d", got, flood, logsample.DefaultBurst)
	}
	clock.advance(logsample.DefaultInterval)
	send(1)
	recs := logged.matching(slog.LevelWarn, msg, kind)
	if len(recs) != logsample.DefaultBurst+1 {
		t.Fatalf("%d lines after the interval, want %d", len(recs), logsample.DefaultBurst+1)
	}
	checkCount(t, recs, flood-logsample.DefaultBurst)
}
