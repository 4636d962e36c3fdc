package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEnv returns an Env whose signals the test sends, logging JSON to logs.
func testEnv(t *testing.T, args ...string) (*Env, chan os.Signal, *syncBuffer) {
	t.Helper()
	c := NewCommand("ringcast-test", "")
	// A node with the topics role opens the default store: in a directory
	// of the test's own.
	if err := c.Parse(args, env(map[string]string{"HOME": t.TempDir()})); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 2)
	logs := &syncBuffer{}
	return c.newEnv(logs, LogJSON, sigs), sigs, logs
}

// readyLine returns the attributes of the "ringcast-test ready" line once it
// was logged.
func readyLine(t *testing.T, logs *syncBuffer) map[string]any {
	t.Helper()
	var ready map[string]any
	waitFor(t, testTimeout, "the ready line", func() bool {
		for line := range strings.Lines(logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "ringcast-test ready" {
				ready = m
				return true
			}
		}
		return false
	})
	return ready
}

func TestServeGracefulShutdown(t *testing.T) {
	e, sigs, logs := testEnv(t, "--name", "n1", "--shutdown-timeout", "5s")
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.StartNode([]string{pubsub.RoleTopics})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	api := NewAPI(n, APIConfig{Publish: true})
	mux := newMux(api)
	var drained sync.WaitGroup
	drained.Add(1)
	drainSawUnhealthy := false
	s := Service{
		Node:    n,
		API:     api,
		Servers: []*Server{NewServer("listen", ln, mux, e.Log)},
		Drain: []func(context.Context) error{func(ctx context.Context) error {
			defer drained.Done()
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("drain without a deadline")
			}
			drainSawUnhealthy = api.draining.Load()
			return nil
		}},
	}
	done := make(chan error, 1)
	go func() { done <- e.Serve(s) }()

	ready := readyLine(t, logs)
	base := "http://" + ln.Addr().String()
	if ready["listen"] != ln.Addr().String() || ready["gossip"] != n.GossipAddr() || ready["peer"] != n.PeerAddr() || ready["name"] != "n1" {
		t.Fatalf("ready line %v", ready)
	}
	if r := do(t, "GET", base+"/healthz", ""); r.status != 200 {
		t.Fatalf("healthz = %d", r.status)
	}
	if r := do(t, "POST", base+"/api/publish?topic=t", "{}"); r.status != 200 {
		t.Fatalf("publish = %d %s", r.status, r.body)
	}

	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after SIGTERM = %v, want nil", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return after SIGTERM")
	}
	drained.Wait()
	if !drainSawUnhealthy {
		t.Error("the gateway was drained while /healthz still answered ok")
	}
	if _, err := n.Publish(context.Background(), "t", nil); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("node still open after Serve: Publish = %v", err)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the HTTP listener still accepts after Serve")
	}
	for _, want := range []string{`"msg":"shutting down","node":"n1","signal":"terminated"`, `"msg":"ringcast-test stopped"`, `"msg":"node left the cluster"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	checkNodeOnce(t, logs.String(), "n1")
}

// checkNodeOnce fails unless every JSON line of logs carries the key
// "node" exactly once, with the value name.
func checkNodeOnce(t *testing.T, logs, name string) {
	t.Helper()
	for line := range strings.Lines(logs) {
		d := json.NewDecoder(strings.NewReader(line))
		if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("not a JSON object: %q", line)
		}
		var nodes []any
		for d.More() {
			k, err := d.Token()
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			var v any
			if err := d.Decode(&v); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if k == "node" {
				nodes = append(nodes, v)
			}
		}
		if len(nodes) != 1 || nodes[0] != name {
			t.Fatalf("line %q: node %v, want once %q", strings.TrimSpace(line), nodes, name)
		}
	}
}

// TestLogsNameAnUnnamedNode: without --name, the process names the node
// before it logs, and its lines and the node's carry that one name.
func TestLogsNameAnUnnamedNode(t *testing.T) {
	e, _, logs := testEnv(t, "--store", "memory")
	n, err := e.StartNode([]string{pubsub.RoleTopics})
	if err != nil {
		t.Fatal(err)
	}
	e.Log.Info("a line of the process")
	_ = n.Close()
	if n.Name() == "" || n.Name() != e.cmd.Common.NodeName {
		t.Fatalf("node %q, command %q", n.Name(), e.cmd.Common.NodeName)
	}
	for _, want := range []string{`"msg":"a line of the process"`, `"msg":"node started"`} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("logs lack %s:\n%s", want, logs)
		}
	}
	checkNodeOnce(t, logs.String(), n.Name())
}

func TestServeSecondSignalCutsShort(t *testing.T) {
	e, sigs, logs := testEnv(t, "--shutdown-timeout", "1m")
	n, err := e.StartNode(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	stuck := make(chan struct{})
	s := Service{Node: n, Drain: []func(context.Context) error{func(ctx context.Context) error {
		close(stuck)
		<-ctx.Done() // a client that never finishes closing
		return ctx.Err()
	}}}
	done := make(chan error, 1)
	go func() { done <- e.Serve(s) }()
	readyLine(t, logs)
	sigs <- os.Interrupt
	<-stuck
	sigs <- os.Interrupt
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v, want the drain's context.Canceled", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("a second signal did not cut the shutdown short")
	}
	if !strings.Contains(logs.String(), "second signal") {
		t.Errorf("logs do not mention the second signal:\n%s", logs)
	}
}

func TestServeServerFailure(t *testing.T) {
	e, _, logs := testEnv(t)
	n, err := e.StartNode(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // Serve fails at once
	done := make(chan error, 1)
	go func() {
		done <- e.Serve(Service{Node: n, Servers: []*Server{NewServer("listen", ln, newMux(nil), e.Log)}})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "serve listen on") {
			t.Fatalf("Serve = %v, want the server's failure", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return after its server failed")
	}
	if _, err := n.Publish(context.Background(), "t", nil); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("node still open after a failed Serve: Publish = %v", err)
	}
	if !strings.Contains(logs.String(), "server failed") {
		t.Errorf("logs do not report the failure:\n%s", logs)
	}
}
