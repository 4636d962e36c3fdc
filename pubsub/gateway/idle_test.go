package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

// maskedTextFrame is a client text frame carrying payload (shorter than 126
// bytes).
func maskedTextFrame(payload string) []byte {
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	b := []byte{0x81, 0x80 | byte(len(payload)), key[0], key[1], key[2], key[3]}
	for i := range len(payload) {
		b = append(b, payload[i]^key[i%4])
	}
	return b
}

// readServerFrame reads one unmasked server frame shorter than 126 bytes.
func readServerFrame(t *testing.T, br *bufio.Reader) (byte, string) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	if h[1]&0x80 != 0 || h[1]&0x7f >= 126 {
		t.Fatalf("unexpected frame header %x", h)
	}
	p := make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return h[0], string(p)
}

// Frames that arrive in the same segment as the upgrade request are read
// by net/http before the upgrade; the connection must still see them, in
// order, even when they exceed the connection's read buffer.
func TestFramesBehindUpgradeRequest(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	nc, err := net.Dial("tcp", g.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(testTimeout))

	const n = 30
	req := "GET " + socketPath + "?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: phoenix\r\n\r\n"
	out := []byte(req)
	for i := range n {
		out = append(out, maskedTextFrame(`[null,"`+strconv.Itoa(i)+`","phoenix","heartbeat",{}]`)...)
	}
	if len(out)-len(req) <= readBufferSize {
		t.Fatalf("the frames (%d bytes) must exceed the read buffer", len(out)-len(req))
	}
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	for i := range n {
		op, got := readServerFrame(t, br)
		want := `[null,"` + strconv.Itoa(i) + `","phoenix","phx_reply",{"status":"ok","response":{}}]`
		if op != 0x81 || got != want {
			t.Fatalf("frame %d: opcode %#x %s, want %s", i, op, got, want)
		}
	}
}

// ServeHTTP returns once the connection is upgraded; the connection lives on
// and, once idle, has no writer goroutine.
func TestIdleConnectionAfterServeHTTPReturns(t *testing.T) {
	h := NewHandler(NewMemoryBroker(), nil)
	var returned atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc(socketPath, func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		returned.Add(1)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = h.Close() })
	c := dialURL(t, "ws://"+srv.Listener.Addr().String()+socketPath+"?vsn=2.0.0", nil)
	waitFor(t, testTimeout, "ServeHTTP to return", func() bool { return returned.Load() == 1 })

	c.join("1", "room:idle")
	c.send(`[null,"2","phoenix","heartbeat",{}]`)
	c.expect(okReply("", "2", "phoenix"))
	waitFor(t, testTimeout, "the writer to exit", func() bool {
		h.mu.Lock()
		n := len(h.conns)
		h.mu.Unlock()
		return n == 1 && idleConns(h, nil)
	})

	// The writer starts again for the next message.
	publishJSON(t, h.broker, "room:idle", "msg", `{"n":1}`)
	c.expect(`["1",null,"room:idle","msg",{"n":1}]`)
	if st := h.Stats(); st.Connections != 1 {
		t.Fatalf("Connections = %d, want 1", st.Connections)
	}

	shut := make(chan error, 1)
	go func() { shut <- h.Shutdown(context.Background()) }()
	c.expectClose(cws.StatusGoingAway, reasonShutdown)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if st := h.Stats(); st.Connections != 0 {
		t.Fatalf("Connections after Shutdown = %d, want 0", st.Connections)
	}
}

// Pongs and close messages are written outside batches, through the small
// write buffer; each must still reach the client whole.
func TestPingWhileBroadcasting(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	c := g.dial()
	c.join("1", "room:ping")

	const broadcasts = 200
	body := `{"p":"` + strings.Repeat("x", 300) + `"}`
	want := `["1",null,"room:ping","msg",` + body + `]`
	// The client's reader checks the broadcasts, then goes on reading, as
	// pongs reach Ping through it, until the test closes the connection.
	readErr := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			_, data, err := c.ws.Read(context.Background())
			switch {
			case i >= broadcasts:
			case err != nil:
				readErr <- err
			case string(data) != want:
				readErr <- &badMessage{i: i, got: string(data)}
			case i == broadcasts-1:
				readErr <- nil
			}
			if err != nil {
				return
			}
		}
	}()
	pingErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		for range 20 {
			if err := c.ws.Ping(ctx); err != nil {
				pingErr <- err
				return
			}
		}
		pingErr <- nil
	}()
	for range broadcasts {
		publishJSON(t, g.h.broker, "room:ping", "msg", body)
	}
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	if err := <-pingErr; err != nil {
		t.Fatalf("ping: %v", err)
	}
}

type badMessage struct {
	i   int
	got string
}

func (e *badMessage) Error() string { return "message " + strconv.Itoa(e.i) + ": " + e.got }

// idleConns reports whether every connection of h has an idle writer, and
// calls check with each one's mutex held.
func idleConns(h *Handler, check func(*conn)) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for cn := range h.conns {
		cn.mu.Lock()
		writing := cn.writing
		if !writing && check != nil {
			check(cn)
		}
		cn.mu.Unlock()
		if writing {
			return false
		}
	}
	return true
}

// A burst grows the writer's buffers; once the writer is idle they shrink
// back, and the next broadcast is written as before.
func TestIdleWriterReleasesBuffers(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	c := g.dial()
	c.join("1", "room:burst")

	body := `{"p":"` + strings.Repeat("y", 3000) + `"}`
	const burst = 50
	for range burst {
		publishJSON(t, b, "room:burst", "msg", body)
	}
	for range burst {
		c.expect(`["1",null,"room:burst","msg",` + body + `]`)
	}
	var spare, scratch, cork int
	waitFor(t, testTimeout, "the writer to go idle", func() bool {
		return idleConns(g.h, func(cn *conn) {
			spare, scratch = cap(cn.spare), cap(cn.scratch)
			cn.raw.mu.Lock()
			cork = cap(cn.raw.buf)
			cn.raw.mu.Unlock()
		})
	})
	if spare > idleSpareItems || scratch > idleScratchBytes || cork > maxIdleCork {
		t.Fatalf("idle connection keeps spare %d items, scratch %d bytes, cork %d bytes", spare, scratch, cork)
	}
	publishJSON(t, b, "room:burst", "msg", `{"n":2}`)
	c.expect(`["1",null,"room:burst","msg",{"n":2}]`)
}
