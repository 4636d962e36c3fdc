package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewConfig(t *testing.T) {
	h := HandlerFunc(func(string, FrameType, []byte) {})
	bad := []Config{
		{Handler: h},
		{NodeName: "a"},
		{NodeName: "a", Handler: h, QueueFrames: -1},
		{NodeName: "a", Handler: h, WriteTimeout: -time.Second},
		{NodeName: "a", Handler: h, MaxFrameSize: 1 << 20, QueueBytes: 1 << 19},
		{NodeName: "a", Handler: h, ReconnectMin: time.Second, ReconnectMax: time.Millisecond},
	}
	for i, cfg := range bad {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("config %d: err = %v, want ErrInvalidConfig", i, err)
		}
	}

	secret := []byte("s3cret")
	cfg := Config{NodeName: "a", Handler: h, Secret: secret, MaxFrameSize: 100 << 20}
	tr := start(t, cfg)
	secret[0] = 'X'
	if string(tr.cfg.Secret) != "s3cret" {
		t.Fatal("Transport shares the caller's Secret bytes")
	}
	if cfg.ClusterName != "" || cfg.QueueBytes != 0 {
		t.Fatal("New modified the caller's Config")
	}
	if tr.cfg.ClusterName != DefaultClusterName || tr.cfg.QueueBytes != 100<<20+4 || tr.cfg.IdleTimeout != DefaultIdleTimeout {
		t.Fatalf("defaults not applied: %+v", tr.cfg)
	}
	if !strings.HasPrefix(tr.Addr(), "127.0.0.1:") || strings.HasSuffix(tr.Addr(), ":0") {
		t.Fatalf("Addr() = %q", tr.Addr())
	}

	// A busy address is reported by New.
	cfg.NodeName, cfg.ListenAddr = "b", tr.Addr()
	if _, err := New(cfg); err == nil {
		t.Fatal("New on a busy address succeeded")
	}
}

// seqRecorder checks that frameSeq frames from each sender arrive in
// sequence order, starting at 1.
type seqRecorder struct {
	mu   sync.Mutex
	next map[string]uint64
	err  error
}

func (r *seqRecorder) HandleFrame(from string, typ FrameType, body []byte) {
	d, err := decodeTestMsg(typ, body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next == nil {
		r.next = map[string]uint64{}
	}
	switch {
	case r.err != nil:
	case err != nil:
		r.err = err
	case d.seq != r.next[from]+1:
		r.err = fmt.Errorf("from %s: seq %d after %d", from, d.seq, r.next[from])
	default:
		r.next[from] = d.seq
	}
}

func (r *seqRecorder) seen(from string) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next[from], r.err
}

func TestFramesArriveInOrder(t *testing.T) {
	const n = 20000
	var ra, rb seqRecorder
	a := start(t, testConfig("a", &ra, nil))
	b := start(t, testConfig("b", &rb, nil))

	// Both directions at once: two links, each FIFO.
	var wg sync.WaitGroup
	send := func(from *Transport, to Peer) {
		defer wg.Done()
		for i := uint64(1); i <= n; i++ {
			for {
				err := from.Send(to, seqFrame(i, 64))
				if err == nil {
					break
				}
				if !errors.Is(err, ErrQueueFull) {
					t.Errorf("Send: %v", err)
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	wg.Add(2)
	go send(a, peerOf(b))
	go send(b, peerOf(a))
	wg.Wait()
	waitFor(t, 20*time.Second, func() bool {
		na, _ := ra.seen("b")
		nb, _ := rb.seen("a")
		return na == n && nb == n
	})
	if _, err := ra.seen("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.seen("a"); err != nil {
		t.Fatal(err)
	}
	// Queue-full retries were counted as drops; nothing else was lost.
	sa := a.Stats().Peers["b"]
	if sa.Sent[frameSeq] != n || sa.Dials != 1 || !sa.Connected {
		t.Fatalf("a's stats for b: %+v", sa)
	}
}

func TestStatsCountPerType(t *testing.T) {
	var rb recorder
	a := start(t, testConfig("a", HandlerFunc(func(string, FrameType, []byte) {}), nil))
	b := start(t, testConfig("b", &rb, nil))
	msgs := []Message{
		&testMsg{typ: frameSeq, data: []byte("x")}, &testMsg{typ: frameSeq}, &testMsg{typ: frameSeq, seq: 1},
		&testMsg{typ: frameB}, &testMsg{typ: frameB, seq: 1},
		&testMsg{typ: frameC},
	}
	var bytes uint64
	for _, m := range msgs {
		f := AppendMessage(nil, m)
		bytes += uint64(len(f))
		if err := a.Send(peerOf(b), f); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == int64(len(msgs)) })
	want := map[FrameType]uint64{frameSeq: 3, frameB: 2, frameC: 1}

	waitFor(t, 5*time.Second, func() bool { return a.Stats().Peers["b"].Sent[frameSeq] == 3 })
	sa := a.Stats().Peers["b"]
	delete(sa.Sent, FramePing)
	if fmt.Sprint(sa.Sent) != fmt.Sprint(want) || sa.Dials != 1 || !sa.Connected || sa.Dropped != 0 {
		t.Fatalf("sender stats: %+v", sa)
	}
	if sa.BytesSent < bytes || sa.BytesSent > bytes+uint64(len(pingFrame))*sa.Sent[FramePing] {
		t.Fatalf("BytesSent = %d, frames were %d bytes", sa.BytesSent, bytes)
	}
	sb := b.Stats().Peers["a"]
	delete(sb.Received, FramePing)
	if fmt.Sprint(sb.Received) != fmt.Sprint(want) || sb.Connected || sb.Dials != 0 {
		t.Fatalf("receiver stats: %+v", sb)
	}
	for i, f := range rb.snapshot() {
		if f.from != "a" || f.typ != msgs[i].FrameType() {
			t.Fatalf("frame %d: from %s type %v", i, f.from, f.typ)
		}
	}
}

func TestRawClientOversizedLengthIsRefused(t *testing.T) {
	logs := &logCapture{}
	var rb recorder
	cfg := testConfig("b", &rb, logs)
	cfg.MaxFrameSize = 1 << 20
	b := start(t, cfg)
	a := start(t, testConfig("a", HandlerFunc(func(string, FrameType, []byte) {}), nil))

	// Before the handshake: a 4 GiB length prefix.
	c := rawDial(t, b.Addr())
	if _, err := c.Write([]byte{0xff, 0xff, 0xff, 0xff, byte(FrameHello)}); err != nil {
		t.Fatal(err)
	}
	c.waitClosed(t)
	waitFor(t, 5*time.Second, func() bool { return logs.count(slog.LevelWarn, ErrFrameTooLarge) == 1 })

	// After a valid handshake: one byte over MaxFrameSize.
	c = rawDial(t, b.Addr())
	c.handshake(t, DefaultClusterName, "mallory", "b", nil)
	if _, err := c.Write([]byte{0x00, 0x10, 0x00, 0x01, byte(FirstUserFrame)}); err != nil {
		t.Fatal(err)
	}
	c.waitClosed(t)
	waitFor(t, 5*time.Second, func() bool { return logs.count(slog.LevelError, ErrFrameTooLarge) == 1 })
	if text := logs.lastErrText(ErrFrameTooLarge); !strings.Contains(text, "transport: frame too large: 1048577 > 1048576") {
		t.Fatalf("logged %q", text)
	}

	// b keeps serving others.
	if err := a.Send(peerOf(b), seqFrame(1, 10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 1 })
	if rb.snapshot()[0].from != "a" {
		t.Fatal("frame from the wrong peer")
	}
}

func TestLinkInternalFrameAfterHandshakeIsRefused(t *testing.T) {
	logs := &logCapture{}
	b := start(t, testConfig("b", HandlerFunc(func(string, FrameType, []byte) {}), logs))
	c := rawDial(t, b.Addr())
	c.handshake(t, DefaultClusterName, "mallory", "b", nil)
	c.send(t, &hello{Cluster: DefaultClusterName, Node: "x"})
	c.waitClosed(t)
	waitFor(t, 5*time.Second, func() bool { return logs.count(slog.LevelError, ErrMalformed) == 1 })
}

func TestListenerAnswersPings(t *testing.T) {
	b := start(t, testConfig("b", HandlerFunc(func(string, FrameType, []byte) {}), nil))
	c := rawDial(t, b.Addr())
	c.handshake(t, DefaultClusterName, "c", "b", nil)
	for i := 0; i < 3; i++ {
		if _, err := c.Write(pingFrame); err != nil {
			t.Fatal(err)
		}
		typ, body, err := c.read()
		if err != nil || typ != FramePing || len(body) != 0 {
			t.Fatalf("ping %d: %v %v", i, typ, err)
		}
	}
	// The listener counts an answer once its write returned, which may be
	// after c read it.
	waitFor(t, 5*time.Second, func() bool { return b.Stats().Peers["c"].Sent[FramePing] == 3 })
	if s := b.Stats().Peers["c"]; s.Received[FramePing] != 3 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestQueueFull(t *testing.T) {
	// An address nothing listens on: the link keeps retrying and the queue
	// fills up.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := Peer{Name: "dead", Addr: ln.Addr().String()}
	ln.Close()

	cfg := testConfig("a", HandlerFunc(func(string, FrameType, []byte) {}), nil)
	cfg.QueueFrames = 4
	a := start(t, cfg)
	for i := 0; i < 4; i++ {
		if err := a.Send(dead, seqFrame(uint64(i), 10)); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := a.Send(dead, seqFrame(5, 10)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fifth frame: err = %v, want ErrQueueFull", err)
	}
	if s := a.Stats().Peers["dead"]; s.Dropped != 1 || s.Connected {
		t.Fatalf("stats: %+v", s)
	}

	// The byte bound applies too.
	cfg = testConfig("b", HandlerFunc(func(string, FrameType, []byte) {}), nil)
	cfg.MaxFrameSize, cfg.QueueBytes = 200, 300
	b := start(t, cfg)
	if err := b.Send(dead, seqFrame(1, 150)); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(dead, seqFrame(2, 150)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("second frame: err = %v, want ErrQueueFull", err)
	}
	if err := b.Send(dead, seqFrame(3, 10)); err != nil {
		t.Fatalf("small frame after a refused one: %v", err)
	}
	if err := b.SendMsg(dead, &testMsg{typ: frameSeq, data: make([]byte, 150)}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("SendMsg past the byte bound: err = %v, want ErrQueueFull", err)
	}

	// ClosePeer drops the queue and counts it.
	a.ClosePeer("dead")
	waitFor(t, 5*time.Second, func() bool { _, ok := a.Stats().Peers["dead"]; return !ok })
}

func TestSendErrors(t *testing.T) {
	a := start(t, testConfig("a", HandlerFunc(func(string, FrameType, []byte) {}), nil))
	to := Peer{Name: "b", Addr: "127.0.0.1:1"}
	cases := []struct {
		to    Peer
		frame []byte
		want  error
	}{
		{to, make([]byte, DefaultMaxFrameSize+5), ErrMalformed},
		{to, seqFrame(1, DefaultMaxFrameSize), ErrFrameTooLarge},
		{to, (&testMsg{typ: frameSeq}).AppendBody(nil), ErrMalformed},
		{to, pingFrame, ErrMalformed},
		{Peer{Addr: "127.0.0.1:1"}, seqFrame(1, 1), ErrInvalidPeer},
		{Peer{Name: "b"}, seqFrame(1, 1), ErrInvalidPeer},
		{Peer{Name: "a", Addr: a.Addr()}, seqFrame(1, 1), ErrInvalidPeer},
	}
	for i, tc := range cases {
		if err := a.Send(tc.to, tc.frame); !errors.Is(err, tc.want) {
			t.Errorf("case %d: err = %v, want %v", i, err, tc.want)
		}
	}
	if len(*a.links.Load()) != 0 {
		t.Fatal("a refused Send created a link")
	}
	if err := a.SendMsg(to, &testMsg{typ: frameSeq}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := a.Send(to, seqFrame(1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: err = %v", err)
	}
	if err := a.SendMsg(to, &testMsg{typ: frameSeq}); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendMsg after Close: err = %v", err)
	}
}

// Send copies the frame, so the caller may reuse it; SendMsg encodes into
// the queue and takes a refused frame back out whole.
func TestSendCopiesAndSendMsgEncodesInPlace(t *testing.T) {
	var rb recorder
	cfg := testConfig("a", HandlerFunc(func(string, FrameType, []byte) {}), nil)
	cfg.MaxFrameSize = 1 << 10
	a := start(t, cfg)
	b := start(t, testConfig("b", &rb, nil))
	pb := peerOf(b)

	frame := AppendMessage(nil, &testMsg{typ: frameSeq, seq: 1, data: []byte("first")})
	if err := a.Send(pb, frame); err != nil {
		t.Fatal(err)
	}
	clear(frame) // reused by the caller before the writer ran
	if err := a.SendMsg(pb, &testMsg{typ: frameSeq, seq: 2, data: make([]byte, 2<<10)}); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized SendMsg: err = %v, want ErrFrameTooLarge", err)
	}
	if err := a.SendMsg(pb, &helloAck{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("link-internal SendMsg: err = %v, want ErrMalformed", err)
	}
	if err := a.SendMsg(pb, &testMsg{typ: frameSeq, seq: 3, data: []byte("third")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() >= 2 })
	rb.mu.Lock()
	got := slices.Clone(rb.frames)
	rb.mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("received %d frames, want 2", len(got))
	}
	for i, want := range []struct {
		seq  uint64
		data string
	}{{1, "first"}, {3, "third"}} {
		d, err := decodeTestMsg(got[i].typ, got[i].body)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if d.seq != want.seq || string(d.data) != want.data {
			t.Fatalf("frame %d: seq %d data %q, want %d %q", i, d.seq, d.data, want.seq, want.data)
		}
	}
	// The writer counts a batch just after writing it.
	waitFor(t, 5*time.Second, func() bool { return a.Stats().Peers["b"].Sent[frameSeq] == 2 })
	if s := a.Stats().Peers["b"]; s.Dropped != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestPeerRestartReconnects(t *testing.T) {
	var r1 recorder
	a := start(t, testConfig("a", HandlerFunc(func(string, FrameType, []byte) {}), nil))
	b1, err := New(testConfig("b", &r1, nil))
	if err != nil {
		t.Fatal(err)
	}
	addr := b1.Addr()
	pb := Peer{Name: "b", Addr: addr}
	if err := a.Send(pb, seqFrame(1, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return r1.n.Load() == 1 })

	b1.Close()
	waitFor(t, 5*time.Second, func() bool { return !a.Stats().Peers["b"].Connected })

	// b comes back on the same address.
	var r2 recorder
	cfg := testConfig("b", &r2, nil)
	cfg.ListenAddr = addr
	var b2 *Transport
	waitFor(t, 5*time.Second, func() bool {
		b2, err = New(cfg)
		return err == nil
	})
	defer b2.Close()
	// Keep sending until frames reach the new b: the link reconnects by
	// itself; frames sent while it was down are either queued or lost with
	// the broken connection, never reordered.
	seq := uint64(2)
	waitFor(t, 10*time.Second, func() bool {
		if err := a.Send(pb, seqFrame(seq, 8)); err != nil && !errors.Is(err, ErrQueueFull) {
			t.Fatal(err)
		}
		seq++
		return r2.n.Load() > 0
	})
	var last uint64
	for _, f := range r2.snapshot() {
		d, err := decodeTestMsg(f.typ, f.body)
		if err != nil || d.seq <= last {
			t.Fatalf("out of order after reconnect: %d after %d (%v)", d.seq, last, err)
		}
		last = d.seq
	}
	if s := a.Stats().Peers["b"]; s.Dials != 2 || !s.Connected {
		t.Fatalf("stats after reconnect: %+v", s)
	}
}

func TestPeerMovesToNewAddress(t *testing.T) {
	var r1, r2 recorder
	a := start(t, testConfig("a", HandlerFunc(func(string, FrameType, []byte) {}), nil))
	b1 := start(t, testConfig("b", &r1, nil))
	if err := a.Send(peerOf(b1), seqFrame(1, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return r1.n.Load() == 1 })

	// A second "b" elsewhere (b1 stays up): Send with the new address
	// moves the link without losing frames.
	b2 := start(t, testConfig("b", &r2, nil))
	for i := uint64(2); i <= 100; i++ {
		if err := a.Send(peerOf(b2), seqFrame(i, 8)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, func() bool { return r1.n.Load()+r2.n.Load() == 100 })
	if r2.n.Load() == 0 {
		t.Fatal("nothing reached the new address")
	}
	if s := a.Stats().Peers["b"]; s.Dials != 2 || s.Dropped != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestClosePeer(t *testing.T) {
	var rb recorder
	a := start(t, testConfig("a", HandlerFunc(func(string, FrameType, []byte) {}), nil))
	b := start(t, testConfig("b", &rb, nil))
	if err := a.Send(peerOf(b), seqFrame(1, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 1 })
	a.ClosePeer("b")
	a.ClosePeer("b")
	a.ClosePeer("nobody")
	waitFor(t, 5*time.Second, func() bool { _, ok := a.Stats().Peers["b"]; return !ok })
	// b notices the inbound connection closing and forgets a.
	waitFor(t, 5*time.Second, func() bool { _, ok := b.Stats().Peers["a"]; return !ok })

	// A later Send makes a new link.
	if err := a.Send(peerOf(b), seqFrame(2, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 2 })
	if s := a.Stats().Peers["b"]; s.Dials != 1 {
		t.Fatalf("fresh link stats: %+v", s)
	}
}

func TestCloseIsIdempotentAndStopsEverything(t *testing.T) {
	var rb recorder
	a, err := New(testConfig("a", HandlerFunc(func(string, FrameType, []byte) {}), nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(testConfig("b", &rb, nil))
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 100; i++ {
		_ = a.Send(peerOf(b), seqFrame(i, 8))
		_ = b.Send(peerOf(a), seqFrame(i, 8))
	}
	// A connection stuck in the handshake must not hold Close up.
	c := rawDial(t, b.Addr())
	waitFor(t, 5*time.Second, func() bool { return rb.n.Load() == 100 })

	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	c.waitClosed(t)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
		t.Fatal("b still accepts connections")
	}
	// goleak in TestMain checks that no goroutine survived.
}

// TestWriterBatchesFrames queues frames while the link is still in its
// handshake (a fake peer holds its answer back), so that the writer finds
// all of them queued when it starts: it must write them in a few large
// writes, not one per frame, whatever the machine's load.
func TestWriterBatchesFrames(t *testing.T) {
	const n = 10000
	release := make(chan struct{})
	var got atomic.Int64
	f := newFakeListener(t, func(c *rawConn) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
			return
		}
		if !acceptAs(c, "b", testVersion) {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			typ, _, err := c.read()
			if err != nil {
				return
			}
			if typ == frameSeq {
				got.Add(1)
			}
		}
	})
	cfg := testConfig("a", HandlerFunc(func(string, FrameType, []byte) {}), nil)
	cfg.QueueFrames = 2 * n
	cfg.HandshakeTimeout = 10 * time.Second
	a := start(t, cfg)
	pb := Peer{Name: "b", Addr: f.addr()}
	frame := seqFrame(1, 100)
	for range n {
		if err := a.Send(pb, frame); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	waitFor(t, 10*time.Second, func() bool { return got.Load() == n })
	writes := linkTo(a, "b").writes.Load()
	t.Logf("%d frames of %d bytes in %d writes", n, len(frame), writes)
	// One write carries at most maxWriteChunk bytes; a ping may add one.
	least := uint64((n*len(frame) + maxWriteChunk - 1) / maxWriteChunk)
	if writes < least || writes > least+1 {
		t.Fatalf("%d writes for %d queued frames, want %d (chunks of %d bytes)", writes, n, least, maxWriteChunk)
	}
}

func TestConcurrentSendersManyPeers(t *testing.T) {
	const (
		peers   = 3
		senders = 4
		each    = 500
	)
	type key struct {
		from   string
		sender uint64
	}
	var mu sync.Mutex
	next := map[key]uint64{}
	var bad error
	handler := func(self string) Handler {
		return HandlerFunc(func(from string, typ FrameType, body []byte) {
			d, err := decodeTestMsg(typ, body)
			if err != nil {
				panic(err)
			}
			k := key{from + ">" + self, d.sender}
			mu.Lock()
			if d.seq != next[k]+1 && bad == nil {
				bad = fmt.Errorf("%v: seq %d after %d", k, d.seq, next[k])
			}
			next[k] = d.seq
			mu.Unlock()
		})
	}
	var trs []*Transport
	for i := 0; i < peers; i++ {
		name := fmt.Sprintf("n%d", i)
		trs = append(trs, start(t, testConfig(name, handler(name), nil)))
	}
	var wg sync.WaitGroup
	for _, from := range trs {
		for s := uint64(0); s < senders; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := uint64(1); seq <= each; seq++ {
					// One frame shared by every receiver.
					f := AppendMessage(nil, &testMsg{typ: frameSeq, seq: seq, sender: s, data: []byte("x")})
					for _, to := range trs {
						if to == from {
							continue
						}
						if err := from.Send(peerOf(to), f); err != nil {
							t.Error(err)
						}
					}
					if seq%50 == 0 {
						_ = from.Stats()
					}
				}
			}()
		}
	}
	wg.Wait()
	want := peers * (peers - 1) * senders
	waitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		done := 0
		for _, v := range next {
			if v == each {
				done++
			}
		}
		return done == want || bad != nil
	})
	mu.Lock()
	defer mu.Unlock()
	if bad != nil {
		t.Fatal(bad)
	}
}

func TestMaxInbound(t *testing.T) {
	logs := &logCapture{}
	cfg := testConfig("b", HandlerFunc(func(string, FrameType, []byte) {}), logs)
	cfg.MaxInbound = 1
	b := start(t, cfg)
	c1 := rawDial(t, b.Addr())
	waitFor(t, 5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.inbound) == 1
	})
	c2 := rawDial(t, b.Addr())
	c2.waitClosed(t)
	// The first connection is still served.
	c1.handshake(t, DefaultClusterName, "c", "b", nil)
}
