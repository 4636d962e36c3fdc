package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/gateway"
)

// serveGateway serves a gateway Handler on 127.0.0.1 until the test ends.
func serveGateway(t *testing.T, b gateway.Broker) string {
	t.Helper()
	h := gateway.NewHandler(b, nil)
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = h.Close() })
	return "ws://" + srv.Listener.Addr().String() + "/socket/websocket?vsn=2.0.0"
}

func testConfig(urls ...string) Config {
	return Config{
		URLs:        urls,
		Conns:       30,
		Topics:      3,
		Rate:        300,
		Duration:    time.Second,
		PayloadSize: 128,
		Drain:       5 * time.Second,
		Timeout:     5 * time.Second,
		TopicPrefix: "bench:",
	}
}

func TestRunAgainstGateways(t *testing.T) {
	broker := gateway.NewMemoryBroker()
	defer broker.Close()
	// Two gateways on one broker, as two ringcast-ws nodes of one cluster:
	// every topic has members on both.
	cfg := testConfig(serveGateway(t, broker), serveGateway(t, broker))
	var progress bytes.Buffer
	sum, err := Run(context.Background(), cfg, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Clean() {
		t.Fatalf("run not clean:\n%s", sum)
	}
	if sum.Connected != 30 || sum.Published < 200 || sum.Published > 330 {
		t.Fatalf("connected %d, published %d (want 30, about 300):\n%s", sum.Connected, sum.Published, sum)
	}
	// 10 members per topic, the publisher among them.
	if sum.Acknowledged != sum.Published || sum.Expected != 10*sum.Published || sum.Received != sum.Expected {
		t.Fatalf("acknowledged %d, expected %d, received %d for %d publishes:\n%s",
			sum.Acknowledged, sum.Expected, sum.Received, sum.Published, sum)
	}
	if sum.P50 <= 0 || sum.P99 < sum.P50 || sum.Max < sum.P99 || sum.Elapsed < 900*time.Millisecond {
		t.Fatalf("implausible timings:\n%s", sum)
	}
	if !strings.Contains(progress.String(), "\r") || !strings.Contains(progress.String(), "received") {
		t.Fatalf("no progress line: %q", progress.String())
	}
	for _, want := range []string{"30 of 30 joined", "lost         0", "duplicated   0", "p99"} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
}

// faultyBroker drops every 10th message of a topic and delivers every
// 7th (that it does not drop) twice.
type faultyBroker struct{ *gateway.MemoryBroker }

func (b faultyBroker) Subscribe(ctx context.Context, topic string, deliver func(gateway.Message), closed func(error)) (func() error, error) {
	return b.MemoryBroker.Subscribe(ctx, topic, func(m gateway.Message) {
		switch {
		case m.Seq%10 == 0:
		case m.Seq%7 == 0:
			deliver(m)
			deliver(m)
		default:
			deliver(m)
		}
	}, closed)
}

func TestRunCountsLostAndDuplicated(t *testing.T) {
	mem := gateway.NewMemoryBroker()
	defer mem.Close()
	cfg := testConfig(serveGateway(t, faultyBroker{mem}))
	cfg.Conns, cfg.Topics, cfg.Rate, cfg.Duration, cfg.Drain = 8, 1, 200, 700*time.Millisecond, 2*time.Second
	cfg.Quiet = true
	sum, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := sum.Acknowledged
	if p < 50 || sum.Unanswered != 0 || sum.Refused != 0 {
		t.Fatalf("publishes: %s", sum)
	}
	dropped := p / 10
	doubled := p/7 - p/70
	if sum.Lost != 8*dropped || sum.Duplicates != 8*doubled || sum.Clean() {
		t.Fatalf("%d publishes: lost %d (want %d), duplicated %d (want %d), clean %v",
			p, sum.Lost, 8*dropped, sum.Duplicates, 8*doubled, sum.Clean())
	}
	// A receiver notices a dropped message when a later one arrives: not
	// when the last publish itself was dropped.
	wantSkipped := 8 * dropped
	if p%10 == 0 {
		wantSkipped -= 8
	}
	if sum.Skipped != wantSkipped {
		t.Fatalf("skipped %d, want %d", sum.Skipped, wantSkipped)
	}
}

func TestRunRefusesRemoteTargets(t *testing.T) {
	cfg := testConfig("ws://192.0.2.1:4000/socket/websocket?vsn=2.0.0")
	_, err := Run(context.Background(), cfg, nil)
	if !errors.Is(err, errRemote) {
		t.Fatalf("err = %v, want %v", err, errRemote)
	}
	cfg.URLs = []string{"ws://localhost:1/socket/websocket", "ws://[::1]:1/x", "ws://127.0.0.9:1/x"}
	if err := cfg.validate(); err != nil {
		t.Fatalf("loopback targets refused: %v", err)
	}
}

func TestRunWithoutGateway(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := "ws://" + srv.Listener.Addr().String() + "/socket/websocket"
	srv.Close()
	cfg := testConfig(url)
	cfg.Conns, cfg.Topics = 3, 1
	sum, err := Run(context.Background(), cfg, nil)
	if err == nil || sum.Connected != 0 || sum.ConnErrors != 3 {
		t.Fatalf("err %v, connected %d, errors %d", err, sum.Connected, sum.ConnErrors)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	broker := gateway.NewMemoryBroker()
	defer broker.Close()
	cfg := testConfig(serveGateway(t, broker))
	cfg.Duration = time.Hour
	cfg.Quiet = true
	ctx, cancel := context.WithCancel(context.Background())
	var (
		sum  Summary
		err  error
		done = make(chan struct{})
		once sync.Once
	)
	go func() {
		defer close(done)
		sum, err = Run(ctx, cfg, nil)
	}()
	time.AfterFunc(500*time.Millisecond, func() { once.Do(cancel) })
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	cancel()
	if err != nil || sum.Published == 0 || sum.Publishing > 10*time.Second {
		t.Fatalf("err %v, published %d in %v", err, sum.Published, sum.Publishing)
	}
}

func TestValidate(t *testing.T) {
	good := testConfig(DefaultURL)
	if err := good.validate(); err != nil || good.Publishers != good.Topics {
		t.Fatalf("good config: %v, publishers %d", err, good.Publishers)
	}
	for name, mutate := range map[string]func(*Config){
		"no url":        func(c *Config) { c.URLs = nil },
		"zero conns":    func(c *Config) { c.Conns = 0 },
		"too many":      func(c *Config) { c.Conns = MaxConns + 1 },
		"topics>conns":  func(c *Config) { c.Topics = c.Conns + 1 },
		"publishers":    func(c *Config) { c.Publishers = c.Conns + 1 },
		"rate":          func(c *Config) { c.Rate = MaxRate * 2 },
		"negative rate": func(c *Config) { c.Rate = -1 },
		"duration":      func(c *Config) { c.Duration = 0 },
		"long":          func(c *Config) { c.Duration = MaxDuration + time.Second },
		"small payload": func(c *Config) { c.PayloadSize = 10 },
		"big payload":   func(c *Config) { c.PayloadSize = MaxPayloadSize + 1 },
		"scheme":        func(c *Config) { c.URLs = []string{"http://127.0.0.1:4000/"} },
		"timeout":       func(c *Config) { c.Timeout = 0 },
	} {
		c := testConfig(DefaultURL)
		mutate(&c)
		if err := c.validate(); !errors.Is(err, errConfig) {
			t.Errorf("%s: err = %v, want %v", name, err, errConfig)
		}
	}
}

func TestFrameAndBroadcast(t *testing.T) {
	l := &load{cfg: Config{PayloadSize: 128}}
	c := &loadConn{id: 7, name: "bench:3"}
	f := l.frame(nil, c, "42", 99)
	if !bytes.HasPrefix(f, []byte(`["1","42","bench:3","publish",["bench",{"p":7,"n":99,"t":`)) {
		t.Fatalf("frame %s", f)
	}
	obj := f[bytes.IndexByte(f, '{') : len(f)-2]
	if len(obj) != 128 {
		t.Fatalf("payload object is %d bytes, want 128: %s", len(obj), obj)
	}
	bc := append([]byte(`["1",null,"bench:3","bench",`), obj...)
	bc = append(bc, ']')
	p, n, ts, ok := parseBroadcast(bc)
	if !ok || p != 7 || n != 99 || time.Since(time.Unix(0, ts)) > time.Minute {
		t.Fatalf("parseBroadcast = %d %d %d %v", p, n, ts, ok)
	}
	for _, bad := range []string{`[null,"3","phoenix","phx_reply",{"status":"ok","response":{}}]`, `["1",null,"t","e",{"p":x}]`, `["1",null,"t","e",{"p":1,"n":2}]`} {
		if _, _, _, ok := parseBroadcast([]byte(bad)); ok {
			t.Errorf("parseBroadcast(%s) ok", bad)
		}
	}
	r, ok := parseReply([]byte(`["1","5","bench:3","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`))
	if !ok || r.ref != "5" || r.status != "error" || r.reason != "unmatched topic" || r.event != "phx_reply" {
		t.Fatalf("parseReply = %+v %v", r, ok)
	}
}

func TestCommand(t *testing.T) {
	broker := gateway.NewMemoryBroker()
	defer broker.Close()
	url := serveGateway(t, broker)
	var out, errOut bytes.Buffer
	code := run([]string{"-urls", url, "-conns", "4", "-topics", "2", "-rate", "100", "-duration", "300ms", "-quiet"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "4 of 4 joined") {
		t.Fatalf("summary:\n%s", out.String())
	}
	for _, args := range [][]string{{"-conns", "0"}, {"-urls", "ws://10.1.2.3:4000/x"}, {"stray"}} {
		if code := run(args, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
