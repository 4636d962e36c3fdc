package broker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
	"github.com/ringcast/ringcast/pubsub/gateway/gatewaytest"
)

// presenceRules is the presence configuration of every node of these tests.
var presenceRules = []pubsub.PresenceRule{{Pattern: "room:*"}, {Pattern: "room:solo", MaxMetasPerKey: 1}}

// startPresenceNode is startNode with presence on the room:* topics.
func startPresenceNode(t testing.TB, name, seed string, roles ...string) *pubsub.Node {
	t.Helper()
	cfg := pubsub.Config{NodeName: name, Roles: roles, Gossip: pubsub.FastGossip(), Workers: 2, Presence: presenceRules}
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

// readEvent reads messages until one of event arrives, and returns its
// payload.
func (c *wsClient) readEvent(event string) json.RawMessage {
	c.t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		_, data, err := c.ws.Read(ctx)
		cancel()
		if err != nil {
			c.t.Fatalf("read (waiting for %s): %v", event, err)
		}
		var msg []json.RawMessage
		if err := json.Unmarshal(data, &msg); err != nil || len(msg) != 5 {
			c.t.Fatalf("not a Phoenix message: %s", data)
		}
		var ev string
		_ = json.Unmarshal(msg[3], &ev)
		if ev == event {
			return msg[4]
		}
	}
}

// presenceKeys renders a presence_state map, or a diff's joins or leaves,
// as "key:metas" sorted.
func presenceKeys(t testing.TB, raw json.RawMessage) string {
	t.Helper()
	var m map[string]struct {
		Metas []map[string]any `json:"metas"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("presence map %s: %v", raw, err)
	}
	var out []string
	for k, v := range m {
		for _, meta := range v.Metas {
			if ref, _ := meta["phx_ref"].(string); ref == "" {
				t.Fatalf("meta without phx_ref in %s", raw)
			}
		}
		out = append(out, fmt.Sprintf("%s:%d", k, len(v.Metas)))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func diffParts(t testing.TB, raw json.RawMessage) (joins, leaves string) {
	t.Helper()
	var d struct {
		Joins  json.RawMessage `json:"joins"`
		Leaves json.RawMessage `json:"leaves"`
	}
	if err := json.Unmarshal(raw, &d); err != nil || d.Joins == nil || d.Leaves == nil {
		t.Fatalf("presence_diff %s: %v", raw, err)
	}
	return presenceKeys(t, d.Joins), presenceKeys(t, d.Leaves)
}

// Two gateways on two nodes, the topic owned by a third: presence_state
// and presence_diff carry the joins of both, and the clients of a gateway
// whose node fails leave within the failure detection.
func TestPresenceAcrossGateways(t *testing.T) {
	owner := startPresenceNode(t, "topics", "", pubsub.RoleTopics)
	g1 := startPresenceNode(t, "gateway-1", owner.GossipAddr(), pubsub.RoleGateway)
	g2 := startPresenceNode(t, "gateway-2", owner.GossipAddr(), pubsub.RoleGateway)
	waitMembers(t, owner, g1, g2)
	_, url1 := serveGateway(t, g1)
	_, url2 := serveGateway(t, g2)

	a := dial(t, url1)
	a.send(`["1","1","room:1","phx_join",{"presence":{"key":"alice"}}]`)
	a.expect(`["1","1","room:1","phx_reply",{"status":"ok","response":{}}]`)
	if got := presenceKeys(t, a.readEvent("presence_state")); got != "alice:1" {
		t.Fatalf("alice's presence_state: %s", got)
	}
	b := dial(t, url2)
	b.send(`["1","1","room:1","phx_join",{"presence":{"key":"bob","meta":{"x":1}}}]`)
	b.expect(`["1","1","room:1","phx_reply",{"status":"ok","response":{}}]`)
	if got := presenceKeys(t, b.readEvent("presence_state")); got != "alice:1,bob:1" {
		t.Fatalf("bob's presence_state: %s", got)
	}
	if j, l := diffParts(t, a.readEvent("presence_diff")); j != "bob:1" || l != "" {
		t.Fatalf("alice sees joins %q leaves %q", j, l)
	}

	start := time.Now()
	if err := g2.Close(); err != nil { // no goodbye: the cluster sees a failure
		t.Fatal(err)
	}
	if j, l := diffParts(t, a.readEvent("presence_diff")); j != "" || l != "bob:1" {
		t.Fatalf("alice sees joins %q leaves %q", j, l)
	}
	t.Logf("bob left %v after his gateway's node stopped", time.Since(start).Round(time.Millisecond))
	p, err := g1.Presence(ctxT(t), "room:1")
	if err != nil || p.Len() != 1 || len(p["alice"]) != 1 {
		t.Fatalf("Presence = %v, %v", p, err)
	}

	// The owner's bounds refuse a join with a reason.
	a.send(`["2","2","room:solo","phx_join",{"presence":{"key":"x"}}]`)
	a.expect(`["2","2","room:solo","phx_reply",{"status":"ok","response":{}}]`)
	a2 := dial(t, url1)
	a2.send(`["2","2","room:solo","phx_join",{"presence":{"key":"x"}}]`)
	a2.expect(`["2","2","room:solo","phx_reply",{"status":"error","response":{"reason":"presence limit reached"}}]`)
}

// envChildSeed makes TestPresenceGatewayProcess run a gateway joined to
// this gossip address, as the child process of
// TestPresencePhoenixJSAcrossGateways.
const envChildSeed = "RINGCAST_TEST_PRESENCE_SEED"

// TestPresencePhoenixJSAcrossGateways runs phoenix.js's Presence class
// against two gateways of one cluster, one of them in a process of its
// own that the test kills with SIGKILL: the clients of the killed gateway
// leave within the failure detection, and a client that reconnects comes
// back with one meta (testdata/phoenix_presence.mjs).
func TestPresencePhoenixJSAcrossGateways(t *testing.T) {
	js := gatewaytest.FindPhoenixJS(t)
	owner := startPresenceNode(t, "topics", "", pubsub.RoleTopics)
	gA := startPresenceNode(t, "gateway-a", owner.GossipAddr(), pubsub.RoleGateway)
	_, urlA := serveGateway(t, gA)

	// Gateway B: this test binary again, in a process of its own.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPresenceGatewayProcess$", "-test.count=1")
	child.Env = append(os.Environ(), envChildSeed+"="+owner.GossipAddr())
	stdin, err := child.StdinPipe() // closed with the test: the child then exits
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	childURL := make(chan string, 1)
	childDone := make(chan error, 1)
	go func() {
		// The child's first line is its URL; the rest is read to its end.
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		childURL <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, r)
		childDone <- child.Wait()
	}()
	defer func() {
		_ = child.Process.Kill()
		<-childDone
	}()
	var urlB string
	select {
	case line := <-childURL:
		var ok bool
		if urlB, ok = strings.CutPrefix(line, "GATEWAY_URL "); !ok {
			t.Fatalf("gateway B's process said %q", line)
		}
	case <-ctx.Done():
		t.Fatal("gateway B's process did not start")
	}
	waitFor(t, testTimeout, "gateway B's node to join", func() bool { return len(owner.Members()) == 3 })

	socket := func(u string) string { return strings.TrimSuffix(strings.TrimSuffix(u, "?vsn=2.0.0"), "/websocket") }
	cmd := js.Command(t, ctx, filepath.Join("testdata", "phoenix_presence.mjs"), socket(urlA), socket(urlB))
	cmd.Stderr = os.Stderr
	jsOut, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var killedAt time.Time
	var lines []string
	sc := bufio.NewScanner(jsOut)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if line == "READY_TO_KILL" {
			killedAt = time.Now()
			if err := child.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("SIGKILL gateway B: %v", err)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("phoenix client: %v\n%s", err, strings.Join(lines, "\n"))
	}
	last := ""
	if len(lines) > 0 {
		last = lines[len(lines)-1]
	}
	if killedAt.IsZero() || !strings.HasPrefix(last, "ALICE_LEFT bob:1,observer:1") {
		t.Fatalf("phoenix client output:\n%s", strings.Join(lines, "\n"))
	}
	// FastGossip declares a silent node dead in under two seconds; the
	// bound leaves room for a loaded machine.
	if d := time.Since(killedAt); d > 10*time.Second {
		t.Fatalf("alice left %v after SIGKILL", d)
	}
	t.Logf("%s; %v after SIGKILL", last, time.Since(killedAt).Round(time.Millisecond))
}

// TestPresenceGatewayProcess is gateway B of
// TestPresencePhoenixJSAcrossGateways: a node joined to the parent's
// cluster and a gateway, until it is killed or its stdin closes.
func TestPresenceGatewayProcess(t *testing.T) {
	seed := os.Getenv(envChildSeed)
	if seed == "" {
		t.Skip("runs only as the child process of TestPresencePhoenixJSAcrossGateways")
	}
	n := startPresenceNode(t, "gateway-b", seed, pubsub.RoleGateway)
	h := gateway.NewHandler(broker.New(n), nil)
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer func() { _ = h.Close() }()
	fmt.Printf("GATEWAY_URL ws://%s/socket/websocket?vsn=2.0.0\n", srv.Listener.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
}
