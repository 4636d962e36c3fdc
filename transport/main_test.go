package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testVersion is the protocol version of the transports the tests start.
const testVersion uint8 = 7

// User frame types the tests send. The transport gives them no meaning:
// frameSeq frames carry a testMsg, the others any body.
const (
	frameSeq FrameType = FirstUserFrame
	frameB   FrameType = FirstUserFrame + 1
	frameC   FrameType = FirstUserFrame + 2
)

// testMsg is the user message of the tests: a sequence number, a sender
// number and some bytes.
type testMsg struct {
	typ    FrameType
	seq    uint64
	sender uint64
	data   []byte
}

func (m *testMsg) FrameType() FrameType { return m.typ }

func (m *testMsg) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, m.seq)
	b = binary.BigEndian.AppendUint64(b, m.sender)
	return append(b, m.data...)
}

// testMsgSize is the size of a testMsg frame without data.
const testMsgSize = frameHeaderSize + 16

// decodeTestMsg decodes a frameSeq body; data aliases body.
func decodeTestMsg(typ FrameType, body []byte) (testMsg, error) {
	if typ != frameSeq || len(body) < 16 {
		return testMsg{}, fmt.Errorf("not a test message: %v of %d bytes", typ, len(body))
	}
	return testMsg{typ: typ, seq: binary.BigEndian.Uint64(body), sender: binary.BigEndian.Uint64(body[8:]), data: body[16:]}, nil
}

// seqFrame returns a frameSeq frame with sequence number seq and size
// bytes of data.
func seqFrame(seq uint64, size int) []byte {
	return AppendMessage(nil, &testMsg{typ: frameSeq, seq: seq, data: make([]byte, size)})
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logRecord is one captured log record.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

// logCapture is a slog.Handler that records everything, for assertions.
type logCapture struct {
	mu   sync.Mutex
	recs []logRecord
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value
		return true
	})
	c.mu.Lock()
	c.recs = append(c.recs, rec)
	c.mu.Unlock()
	return nil
}

func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCapture) WithGroup(string) slog.Handler      { return c }

// count returns how many records at level carry an "err" attribute
// matching target.
func (c *logCapture) count(level slog.Level, target error) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.recs {
		if r.level != level {
			continue
		}
		if v, ok := r.attrs["err"]; ok {
			if err, ok := v.Any().(error); ok && errors.Is(err, target) {
				n++
			}
		}
	}
	return n
}

// firstErr returns the first logged error matching target, or nil.
func (c *logCapture) firstErr(target error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.recs {
		if v, ok := r.attrs["err"]; ok {
			if err, ok := v.Any().(error); ok && errors.Is(err, target) {
				return err
			}
		}
	}
	return nil
}

// lastErrText returns the text of the last logged error matching target.
func (c *logCapture) lastErrText(target error) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	text := ""
	for _, r := range c.recs {
		if v, ok := r.attrs["err"]; ok {
			if err, ok := v.Any().(error); ok && errors.Is(err, target) {
				text = err.Error()
			}
		}
	}
	return text
}

// received is one frame seen by a recorder.
type received struct {
	from string
	typ  FrameType
	body []byte
}

// recorder is a Handler that keeps every frame.
type recorder struct {
	mu     sync.Mutex
	frames []received
	n      atomic.Int64
}

func (r *recorder) HandleFrame(from string, typ FrameType, body []byte) {
	r.mu.Lock()
	r.frames = append(r.frames, received{from, typ, body})
	r.mu.Unlock()
	r.n.Add(1)
}

func (r *recorder) snapshot() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.frames...)
}

// testConfig returns a config with short timeouts for tests.
func testConfig(name string, h Handler, logs *logCapture) Config {
	cfg := Config{
		NodeName:         name,
		ProtocolVersion:  testVersion,
		Handler:          h,
		HandshakeTimeout: time.Second,
		DialTimeout:      time.Second,
		WriteTimeout:     2 * time.Second,
		ReconnectMin:     5 * time.Millisecond,
		ReconnectMax:     50 * time.Millisecond,
	}
	if logs != nil {
		cfg.Logger = slog.New(logs)
	}
	return cfg
}

// start creates a Transport that is closed when the test ends.
func start(t testing.TB, cfg Config) *Transport {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// peerOf returns the Peer that reaches tr.
func peerOf(tr *Transport) Peer { return Peer{Name: tr.cfg.NodeName, Addr: tr.Addr()} }

// linkTo returns tr's outbound link to name, or nil.
func linkTo(tr *Transport, name string) *link { return (*tr.links.Load())[name] }

// rawConn is a test client speaking the wire protocol by hand.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func rawDial(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) send(t testing.TB, m Message) {
	t.Helper()
	if _, err := c.Write(AppendMessage(nil, m)); err != nil {
		t.Fatalf("write %v: %v", m.FrameType(), err)
	}
}

func (c *rawConn) read() (FrameType, []byte, error) { return readFrame(c.br, 1<<20, nil) }

// readAck reads a HelloAck.
func (c *rawConn) readAck(t testing.TB) helloAck {
	t.Helper()
	typ, body, err := c.read()
	if err != nil {
		t.Fatalf("reading HelloAck: %v", err)
	}
	if typ != FrameHelloAck {
		t.Fatalf("got %v, want HelloAck", typ)
	}
	var ack helloAck
	if err := ack.DecodeBody(body); err != nil {
		t.Fatal(err)
	}
	return ack
}

// waitClosed waits until the peer closes c, reading and discarding
// anything it sends before.
func (c *rawConn) waitClosed(t testing.TB) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.read(); err != nil {
			if isTimeout(err) {
				t.Fatal("connection still open")
			}
			return
		}
	}
}

// handshake completes the dialer's side of the handshake as node name.
func (c *rawConn) handshake(t testing.TB, cluster, name, peer string, secret []byte) {
	t.Helper()
	nonce := newNonce()
	c.send(t, &hello{Cluster: cluster, Node: name, Version: testVersion, Nonce: nonce})
	ack := c.readAck(t)
	if ack.Err != "" {
		t.Fatalf("refused: %s", ack.Err)
	}
	var p proof
	if secret != nil {
		p.Proof = computeProof(secret, roleDialer, cluster, name, peer, nonce, ack.Nonce)
	}
	c.send(t, &p)
}

// fakeListener accepts connections and runs serve on each, for tests of
// the dialer against a misbehaving listener.
type fakeListener struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	n     atomic.Int64 // accepted connections
}

func newFakeListener(t testing.TB, serve func(c *rawConn)) *fakeListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeListener{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.n.Add(1)
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				serve(&rawConn{Conn: c, br: bufio.NewReader(c)})
			}()
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *fakeListener) addr() string { return f.ln.Addr().String() }

func (f *fakeListener) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// acceptAs runs the listener's side of the handshake as node name,
// answering version v, and reports whether the dialer sent its Proof.
func acceptAs(c *rawConn, name string, v uint8) bool {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	typ, body, err := c.read()
	if err != nil || typ != FrameHello {
		return false
	}
	var h hello
	if h.DecodeBody(body) != nil {
		return false
	}
	if _, err := c.Write(AppendMessage(nil, &helloAck{Node: name, Version: v, Nonce: newNonce()})); err != nil {
		return false
	}
	typ, _, err = c.read()
	return err == nil && typ == FrameProof
}
