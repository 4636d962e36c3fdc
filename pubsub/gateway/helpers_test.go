package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

const (
	testTimeout = 5 * time.Second
	socketPath  = "/socket/websocket"
)

// waitFor polls cond until it holds or timeout passes.
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

// gateway is a Handler served by an httptest server on 127.0.0.1.
type gateway struct {
	t   testing.TB
	h   *Handler
	srv *httptest.Server
	url string // ws://.../socket/websocket?vsn=2.0.0
}

func newGateway(t testing.TB, b Broker, opts *Options) *gateway {
	t.Helper()
	h := NewHandler(b, opts)
	mux := http.NewServeMux()
	mux.Handle(socketPath, h)
	srv := httptest.NewServer(mux)
	// Cleanups run last-in first-out: the Handler closes its connections
	// before the server waits for its handlers.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = h.Close() })
	return &gateway{
		t:   t,
		h:   h,
		srv: srv,
		url: "ws://" + srv.Listener.Addr().String() + socketPath + "?vsn=2.0.0",
	}
}

// httpClient never keeps connections alive, so tests leave no goroutine behind.
func httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// client is a test WebSocket client.
type client struct {
	t  testing.TB
	ws *cws.Conn
}

func (g *gateway) dial() *client {
	g.t.Helper()
	return dialURL(g.t, g.url, nil)
}

func dialURL(t testing.TB, url string, opts *cws.DialOptions) *client {
	t.Helper()
	if opts == nil {
		opts = &cws.DialOptions{}
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = httpClient()
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ws, resp, err := cws.Dial(ctx, url, opts)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &client{t: t, ws: ws}
}

func (c *client) send(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, cws.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("send %s: %v", msg, err)
	}
}

func (c *client) sendBinary(msg []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, cws.MessageBinary, msg); err != nil {
		c.t.Fatalf("send binary: %v", err)
	}
}

func (c *client) read() (cws.MessageType, []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	typ, data, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return typ, data
}

// expect reads one text message and requires it to be exactly want.
func (c *client) expect(want string) {
	c.t.Helper()
	typ, data := c.read()
	if typ != cws.MessageText {
		c.t.Fatalf("got a %v message %q, want text %s", typ, data, want)
	}
	if string(data) != want {
		c.t.Fatalf("got  %s\nwant %s", data, want)
	}
}

// expectBinary reads one binary message and requires it to be exactly want.
func (c *client) expectBinary(want []byte) {
	c.t.Helper()
	typ, data := c.read()
	if typ != cws.MessageBinary {
		c.t.Fatalf("got a %v message %q, want binary %q", typ, data, want)
	}
	if string(data) != string(want) {
		c.t.Fatalf("got  %q\nwant %q", data, want)
	}
}

// expectClose reads until the connection ends and requires a close message
// with code and, if reason is not empty, that reason.
func (c *client) expectClose(code cws.StatusCode, reason string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for {
		_, _, err := c.ws.Read(ctx)
		if err == nil {
			continue
		}
		var ce cws.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("connection ended with %v, want close %v", err, code)
		}
		if ce.Code != code || reason != "" && ce.Reason != reason {
			c.t.Fatalf("closed with %v %q, want %v %q", ce.Code, ce.Reason, code, reason)
		}
		return
	}
}

// join joins topic with join_ref and ref jr and checks the ok reply.
func (c *client) join(jr, topic string) {
	c.t.Helper()
	c.send(`["` + jr + `","` + jr + `","` + topic + `","phx_join",{}]`)
	c.expect(`["` + jr + `","` + jr + `","` + topic + `","phx_reply",{"status":"ok","response":{}}]`)
}

// barrier sends a message handled in order with joins, leaves and publishes
// and waits for its reply: everything those queued before has been read.
func (c *client) barrier(ref string) {
	c.t.Helper()
	c.send(`[null,"` + ref + `","barrier","phx_leave",{}]`)
	c.expect(`[null,"` + ref + `","barrier","phx_reply",{"status":"ok","response":{}}]`)
}

func okReply(jr, ref, topic string) string {
	return `[` + jsonOpt(jr) + `,` + jsonOpt(ref) + `,"` + topic + `","phx_reply",{"status":"ok","response":{}}]`
}

func errReply(jr, ref, topic, reason string) string {
	return `[` + jsonOpt(jr) + `,` + jsonOpt(ref) + `,` + string(appendJSONString(nil, topic)) +
		`,"phx_reply",{"status":"error","response":{"reason":` + string(appendJSONString(nil, reason)) + `}}]`
}

// jsonOpt renders "" as null and anything else as a JSON string.
func jsonOpt(s string) string {
	if s == "" {
		return "null"
	}
	return string(appendJSONString(nil, s))
}

// countingBroker wraps a MemoryBroker, counts calls and can hold or fail Subscribe.
type countingBroker struct {
	*MemoryBroker

	mu           sync.Mutex
	subscribes   map[string]int
	unsubscribes map[string]int
	gate         chan struct{} // if set, Subscribe waits for it to close (or ctx)
	publishGate  chan struct{} // if set, Publish waits for it to close (or ctx)
	subscribeErr error
	publishErr   error
}

func newCountingBroker() *countingBroker {
	return &countingBroker{
		MemoryBroker: NewMemoryBroker(),
		subscribes:   make(map[string]int),
		unsubscribes: make(map[string]int),
	}
}

func (b *countingBroker) Subscribe(ctx context.Context, topic string, deliver func(Message), closed func(error)) (func() error, error) {
	b.mu.Lock()
	b.subscribes[topic]++
	gate, err := b.gate, b.subscribeErr
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	unsub, err := b.MemoryBroker.Subscribe(ctx, topic, deliver, closed)
	if err != nil {
		return nil, err
	}
	return func() error {
		b.mu.Lock()
		b.unsubscribes[topic]++
		b.mu.Unlock()
		return unsub()
	}, nil
}

func (b *countingBroker) Publish(ctx context.Context, topic string, data []byte) (uint64, error) {
	b.mu.Lock()
	gate, err := b.publishGate, b.publishErr
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if err != nil {
		return 0, err
	}
	return b.MemoryBroker.Publish(ctx, topic, data)
}

func (b *countingBroker) counts(topic string) (subs, unsubs int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subscribes[topic], b.unsubscribes[topic]
}

// publishJSON publishes a JSON payload straight to the broker, as the HTTP
// publish API would.
func publishJSON(t testing.TB, b Broker, topic, event, payload string) uint64 {
	t.Helper()
	seq, err := b.Publish(context.Background(), topic, EncodeEnvelope(event, []byte(payload), false))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return seq
}

// binaryPush encodes a client push of the V2 binary serializer.
func binaryPush(jr, ref, topic, event string, payload []byte) []byte {
	b := []byte{kindPush, byte(len(jr)), byte(len(ref)), byte(len(topic)), byte(len(event))}
	b = append(b, jr...)
	b = append(b, ref...)
	b = append(b, topic...)
	b = append(b, event...)
	return append(b, payload...)
}

// binaryReply encodes a server reply of the V2 binary serializer.
func binaryReply(jr, ref, topic, status string, payload []byte) []byte {
	b := []byte{kindReply, byte(len(jr)), byte(len(ref)), byte(len(topic)), byte(len(status))}
	b = append(b, jr...)
	b = append(b, ref...)
	b = append(b, topic...)
	b = append(b, status...)
	return append(b, payload...)
}

// binaryServerPush encodes a server push of the V2 binary serializer.
func binaryServerPush(jr, topic, event string, payload []byte) []byte {
	b := []byte{kindPush, byte(len(jr)), byte(len(topic)), byte(len(event))}
	b = append(b, jr...)
	b = append(b, topic...)
	b = append(b, event...)
	return append(b, payload...)
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }
