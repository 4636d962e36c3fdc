package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The websocat session of README.md, byte for byte.
const (
	joinMatrix    = `["1","1","topics:matrix","phx_join",{}]`
	joinedMatrix  = `["1","1","topics:matrix","phx_reply",{"status":"ok","response":{}}]`
	publishMatrix = `["1","1","topics:matrix","publish",["event",{"message":"red pill or blue pill?"}]]`
	publishedOK   = `["1","1","topics:matrix","phx_reply",{"status":"ok","response":{}}]`
	redPill       = `["1",null,"topics:matrix","event",{"message":"red pill or blue pill?"}]`
)

// cluster is a set of running binaries joined to the first topic server.
type cluster struct {
	topics   []*proc // ringcast-topic, each with --http
	gateways []*proc // ringcast-ws --roles gateway
}

// all returns every process with its HTTP address.
func (c *cluster) all() map[*proc]string {
	m := make(map[*proc]string)
	for _, p := range c.topics {
		m[p] = p.addr("http")
	}
	for _, p := range c.gateways {
		m[p] = p.addr("listen")
	}
	return m
}

// startCluster starts topic servers and pure gateways on 127.0.0.1 with
// ports chosen by the system, all joined to the first topic server's gossip
// address, and waits until every process sees all of them. Every process
// gets the flags in extra too.
func startCluster(t *testing.T, gateways, topics int, extra ...string) *cluster {
	t.Helper()
	// Loopback clusters use fast failure detection, whose push/pull every
	// second also repairs a join that gossip missed: with the LAN timings two
	// members joining the seed at the same moment can take up to the 30 s
	// push/pull interval to learn of each other, longer than the tests wait.
	common := []string{"--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0", "--shutdown-timeout", shutdownTimeout.String(),
		"--failure-detection", "fast"}
	common = append(common, extra...)
	c := &cluster{}
	first := start(t, "topic-1", topicBinary, nil, append(common, "--name", "topic-1", "--http", "127.0.0.1:0")...)
	c.topics = append(c.topics, first)
	seed := first.addr("gossip")
	for i := 2; i <= topics; i++ {
		name := fmt.Sprintf("topic-%d", i)
		c.topics = append(c.topics, start(t, name, topicBinary, nil,
			append(common, "--name", name, "--http", "127.0.0.1:0", "--join", seed)...))
	}
	for i := 1; i <= gateways; i++ {
		name := fmt.Sprintf("gateway-%d", i)
		c.gateways = append(c.gateways, start(t, name, wsBinary, nil,
			append(common, "--name", name, "--listen", "127.0.0.1:0", "--roles", "gateway", "--join", seed)...))
	}
	n := gateways + topics
	for p, addr := range c.all() {
		waitFor(t, testTimeout, p.label+" to see "+fmt.Sprint(n)+" members", func() bool {
			var info clusterInfo
			getJSON(t, "http://"+addr+"/api/cluster", &info)
			return len(info.Members) == n
		})
	}
	return c
}

func TestClusterSession(t *testing.T) {
	c := startCluster(t, 2, 2)
	g1, g2 := c.gateways[0].addr("listen"), c.gateways[1].addr("listen")

	// Every process is healthy, and every view agrees on roles and shares.
	for p, addr := range c.all() {
		if status, body, err := httpDo("GET", "http://"+addr+"/healthz", ""); status != 200 || body != "ok\n" {
			t.Fatalf("%s /healthz = %d %q %v", p.label, status, body, err)
		}
	}
	var info clusterInfo
	getJSON(t, "http://"+g1+"/api/cluster", &info)
	if info.Node != "gateway-1" {
		t.Fatalf("gateway-1 calls itself %q", info.Node)
	}
	var total float64
	for _, m := range info.Members {
		switch {
		case strings.HasPrefix(m.Name, "gateway-"):
			if !slices.Equal(m.Roles, []string{"gateway"}) || m.Share != 0 {
				t.Errorf("pure gateway %s has roles %v and share %v", m.Name, m.Roles, m.Share)
			}
		case strings.HasPrefix(m.Name, "topic-"):
			if !slices.Equal(m.Roles, []string{"topics"}) || m.Share <= 0 {
				t.Errorf("topic server %s has roles %v and share %v", m.Name, m.Roles, m.Share)
			}
		}
		if m.Gossip == "" || m.Peer == "" {
			t.Errorf("member %s without addresses: %+v", m.Name, m)
		}
		total += m.Share
	}
	if total < 0.999 || total > 1.001 {
		t.Errorf("shares add up to %v", total)
	}

	// The websocat session: A on gateway 1, B on gateway 2.
	a := dial(t, "A", g1)
	a.send(joinMatrix)
	a.expect(joinedMatrix)
	b := dial(t, "B", g2)
	b.send(joinMatrix)
	b.expect(joinedMatrix)
	b.send(publishMatrix)
	b.expect(publishedOK)
	b.expect(redPill)
	a.expect(redPill)

	// The HTTP API publishes to clients on both gateways.
	var matrix topicState
	getJSON(t, "http://"+g1+"/api/topics/topics:matrix", &matrix)
	status, body, err := httpDo("POST", "http://"+g1+"/api/publish?topic=topics:matrix&event=event", `{"message":"via http"}`)
	if want := fmt.Sprintf(`{"topic":"topics:matrix","seq":2,"epoch":"%d"}`+"\n", matrix.Epoch); status != 200 || body != want {
		t.Fatalf("POST /api/publish = %d %s %v, want %s", status, body, err, want)
	}
	a.expect(`["1",null,"topics:matrix","event",{"message":"via http"}]`)
	b.expect(`["1",null,"topics:matrix","event",{"message":"via http"}]`)
	status, body, err = httpDo("POST", "http://"+g2+"/api/publish?topic=topics:matrix&ack=replicated", `{"n":3}`)
	if want := fmt.Sprintf(`{"topic":"topics:matrix","seq":3,"epoch":"%d"}`+"\n", matrix.Epoch); status != 200 || body != want {
		t.Fatalf("POST /api/publish?ack=replicated = %d %s %v, want %s", status, body, err, want)
	}
	a.expect(`["1",null,"topics:matrix","message",{"n":3}]`)
	b.expect(`["1",null,"topics:matrix","message",{"n":3}]`)
	if status, body, _ := httpDo("POST", "http://"+g2+"/api/publish?topic=topics:matrix", `{"n":`); status != 400 {
		t.Fatalf("POST /api/publish with bad JSON = %d %s, want 400", status, body)
	}
	if status, _, _ := httpDo("GET", "http://"+g2+"/api/publish?topic=topics:matrix", ""); status != http.StatusMethodNotAllowed {
		t.Fatalf("GET /api/publish = %d, want 405", status)
	}

	var before topicState
	getJSON(t, "http://"+g2+"/api/topics/topics:matrix", &before)
	if before.Topic != "topics:matrix" || before.Seq != 3 || before.Epoch == 0 || !strings.HasPrefix(before.Owner, "topic-") {
		t.Fatalf("GET /api/topics/topics:matrix = %+v, want seq 3 owned by a topic server", before)
	}

	// A pure gateway's counters: one client, joined; three messages
	// delivered to its node's one subscription; no topic owned.
	var stats struct {
		Node        string `json:"node"`
		OwnedTopics int    `json:"owned_topics"`
		LocalTopics int    `json:"local_topics"`
		Delivered   uint64 `json:"delivered"`
		Gateway     struct {
			Connections int64  `json:"connections"`
			Joins       uint64 `json:"joins"`
		} `json:"gateway"`
	}
	getJSON(t, "http://"+g1+"/api/stats", &stats)
	if !strings.HasPrefix(stats.Node, "gateway-") || stats.OwnedTopics != 0 || stats.LocalTopics != 1 || stats.Delivered != 3 ||
		stats.Gateway.Connections != 1 || stats.Gateway.Joins != 1 {
		t.Fatalf("GET /api/stats on a gateway = %+v", stats)
	}

	// Stop the topic's owner mid-session.
	var owner, survivor *proc
	for _, p := range c.topics {
		if p.nodeName() == before.Owner {
			owner = p
		} else {
			survivor = p
		}
	}
	signalled := time.Now()
	owner.signal(syscall.SIGTERM)

	// Publish until the cluster takes it again; both clients receive it.
	var (
		attempt int
		seq     uint64
	)
	deadline := time.Now().Add(testTimeout)
	for {
		attempt++
		status, body, err := httpDo("POST", "http://"+g2+"/api/publish?topic=topics:matrix&event=event", fmt.Sprintf(`{"attempt":%d}`, attempt))
		if status == 200 {
			if _, err := fmt.Sscanf(body, `{"topic":"topics:matrix","seq":%d,`, &seq); err != nil {
				t.Fatalf("publish answer %q: %v", body, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no publish succeeded in %v after the owner's SIGTERM; last: %d %s %v", testTimeout, status, body, err)
		}
		t.Logf("publish attempt %d during the hand-off: %d %s %v", attempt, status, strings.TrimSpace(body), err)
		time.Sleep(50 * time.Millisecond)
	}
	earlier := func(msg string) bool { // an attempt reported failed may still have gone through
		for i := 1; i < attempt; i++ {
			if msg == fmt.Sprintf(`["1",null,"topics:matrix","event",{"attempt":%d}]`, i) {
				return true
			}
		}
		return false
	}
	want := fmt.Sprintf(`["1",null,"topics:matrix","event",{"attempt":%d}]`, attempt)
	a.expectSkipping(want, earlier)
	b.expectSkipping(want, earlier)

	code, exitAt := owner.waitExit(shutdownTimeout + 5*time.Second)
	if code != 0 {
		t.Fatalf("%s exited with status %d after SIGTERM", owner.label, code)
	}
	if took := exitAt.Sub(signalled); took > shutdownTimeout {
		t.Fatalf("%s took %v to exit, more than its shutdown timeout %v", owner.label, took, shutdownTimeout)
	}
	if logs := owner.logs(); !strings.Contains(logs, `"msg":"ringcast-topic stopped"`) || strings.Contains(logs, "stopped with errors") {
		t.Fatalf("%s did not stop cleanly:\n%s", owner.label, logs)
	}

	// The survivor took the topic over with its sequence: same epoch, the
	// numbers go on.
	var after topicState
	getJSON(t, "http://"+g1+"/api/topics/topics:matrix", &after)
	if after.Owner != survivor.nodeName() || after.Epoch != before.Epoch || seq <= before.Seq || after.Seq < seq {
		t.Fatalf("after the hand-off: %+v (publish got seq %d); before: %+v", after, seq, before)
	}
	if after.Seq != seq {
		// The survivor rebuilt the topic from its replica rather than
		// receiving it from the leaving owner, and moved the sequence on.
		t.Logf("sequence moved from %d to %d during the hand-off", seq, after.Seq)
	}

	// The WebSocket session goes on as before.
	b.send(`["1","2","topics:matrix","publish",["event",{"message":"still here"}]]`)
	b.expect(`["1","2","topics:matrix","phx_reply",{"status":"ok","response":{}}]`)
	b.expect(`["1",null,"topics:matrix","event",{"message":"still here"}]`)
	a.expect(`["1",null,"topics:matrix","event",{"message":"still here"}]`)
	a.send(`[null,"2","phoenix","heartbeat",{}]`)
	a.expect(`[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]`)
}

// The README shows the session the test above replays.
func TestReadmeSession(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	session := strings.Join([]string{
		"# terminal 1",
		`websocat "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0"`,
		joinMatrix,
		joinedMatrix,
		"# terminal 2",
		`websocat "ws://127.0.0.1:4001/socket/websocket?vsn=2.0.0"`,
		joinMatrix,
		joinedMatrix,
		publishMatrix,
		publishedOK,
		"# both terminals then show",
		redPill,
	}, "\n")
	if !strings.Contains(string(readme), "```\n"+session+"\n```\n") {
		t.Fatalf("README.md does not show the session:\n%s", session)
	}
}

func TestCommandLine(t *testing.T) {
	common := []string{"name", "gossip", "peer", "join", "cluster", "secret", "log-format", "log-level", "shutdown-timeout",
		"failure-detection", "replication", "history-size", "history-ttl", "idle-topic-ttl", "max-payload",
		"store", "durable", "store-timeout"}
	for bin, own := range map[string][]string{
		wsBinary: {"listen", "roles", "origins", "notify", "jwt-secret", "anonymous",
			"smtp", "smtp-user", "smtp-password", "smtp-from", "smtp-tls", "email-delay"},
		topicBinary: {"http"},
	} {
		code, stdout, stderr := runOnce(t, bin, nil, "--help")
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: "+bin+" [flags]") {
			t.Fatalf("%s --help: status %d, stderr %q, stdout:\n%s", bin, code, stderr, stdout)
		}
		for _, f := range append(slices.Clone(common), own...) {
			env := "RINGCAST_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
			if !strings.Contains(stdout, "\n  --"+f+" ") || !strings.Contains(stdout, "env "+env) {
				t.Errorf("%s --help does not list --%s and %s:\n%s", bin, f, env, stdout)
			}
		}

		code, stdout, stderr = runOnce(t, bin, nil, "--no-such-flag")
		if want := bin + ": flag provided but not defined: -no-such-flag (see " + bin + " --help)\n"; code != 2 || stderr != want || stdout != "" {
			t.Errorf("%s --no-such-flag: status %d, stderr %q, stdout %q; want 2 and %q", bin, code, stderr, stdout, want)
		}
		code, _, stderr = runOnce(t, bin, []string{"RINGCAST_SHUTDOWN_TIMEOUT=never"})
		if code != 2 || !strings.HasPrefix(stderr, bin+`: invalid value "never" for RINGCAST_SHUTDOWN_TIMEOUT`) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s with a bad variable: status %d, stderr %q", bin, code, stderr)
		}
		for _, bad := range []struct {
			env, args []string
			want      string
		}{
			{args: []string{"--failure-detection", "wan"}, want: `invalid value "wan" for flag -failure-detection: unknown failure detection "wan" (want lan or fast)`},
			{env: []string{"RINGCAST_REPLICATION=0"}, want: `invalid value "0" for RINGCAST_REPLICATION: out of range: want 1 to 16`},
			{args: []string{"--history-size", "-5"}, want: `invalid value "-5" for flag -history-size: out of range: want -1 to 1048576`},
			{env: []string{"RINGCAST_HISTORY_TTL=-1m"}, want: `invalid value "-1m" for RINGCAST_HISTORY_TTL: duration -1m0s is not positive`},
			{args: []string{"--max-payload", "128MiB"}, want: `invalid value "128MiB" for flag -max-payload: out of range: want 1KiB to 64MiB`},
		} {
			code, stdout, stderr := runOnce(t, bin, bad.env, bad.args...)
			if want := bin + ": " + bad.want + " (see " + bin + " --help)\n"; code != 2 || stderr != want || stdout != "" {
				t.Errorf("%s %v %v: status %d, stderr %q; want 2 and %q", bin, bad.env, bad.args, code, stderr, want)
			}
		}
	}

	// A busy port: the first gateway holds it.
	first := start(t, "gateway-1", wsBinary, nil, "--listen", "127.0.0.1:0")
	busy := first.addr("listen")
	code, _, stderr := runOnce(t, wsBinary, nil, "--listen", busy)
	if want := wsBinary + ": listen " + busy + ": address already in use\n"; code != 1 || stderr != want {
		t.Errorf("busy port: status %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	code, _, stderr = runOnce(t, topicBinary, nil, "--http", busy)
	if want := topicBinary + ": listen " + busy + ": address already in use\n"; code != 1 || stderr != want {
		t.Errorf("busy admin port: status %d, stderr %q; want 1 and %q", code, stderr, want)
	}

	// Variables configure what flags do not; a flag wins over its variable.
	p := start(t, "gateway-2", wsBinary, []string{"RINGCAST_NAME=from-env", "RINGCAST_LISTEN=127.0.0.1:0", "RINGCAST_JOIN=" + first.addr("gossip")},
		"--name", "from-flag")
	if name := p.nodeName(); name != "from-flag" {
		t.Errorf("node name %q, want the flag's from-flag", name)
	}
	listen := p.addr("listen")
	if strings.HasSuffix(listen, ":0") || listen == busy {
		t.Errorf("ready line reports listen=%s, want the port actually bound", listen)
	}
	var info clusterInfo
	waitFor(t, testTimeout, "the variable's --join to take effect", func() bool {
		getJSON(t, "http://"+listen+"/api/cluster", &info)
		return len(info.Members) == 2
	})

	// A topic server without --http serves no HTTP and says so in its ready line.
	q := start(t, "topic-1", topicBinary, nil, "--join", first.addr("gossip"))
	if _, ok := q.waitReady()["http"]; ok {
		t.Errorf("ringcast-topic without --http reports an http address: %v", q.waitReady())
	}

	// SIGINT shuts a process down with status 0; so does SIGTERM.
	for sig, pr := range map[os.Signal]*proc{os.Interrupt: p, syscall.SIGTERM: q} {
		pr.signal(sig)
		if code, _ := pr.waitExit(shutdownTimeout + 5*time.Second); code != 0 {
			t.Errorf("%s exited with status %d after %v:\n%s", pr.label, code, sig, pr.logs())
		}
	}
}

// The official Phoenix JavaScript client, one socket on each of two gateways.
func TestPhoenixJS(t *testing.T) {
	dir := os.Getenv("RINGCAST_PHOENIX_JS")
	if dir == "" {
		msg := "RINGCAST_PHOENIX_JS is not set: set it to a directory holding node_modules/phoenix and node_modules/ws " +
			"(mkdir -p /tmp/phx && cd /tmp/phx && npm install phoenix@1.8 ws@8) to run the Phoenix client across gateways"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("RINGCAST_PHOENIX_JS is set but node is not installed: %v", err)
	}
	c := startCluster(t, 2, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "testdata/phoenix.mjs",
		"ws://"+c.gateways[0].addr("listen")+"/socket",
		"ws://"+c.gateways[1].addr("listen")+"/socket",
		"topics:phoenix")
	cmd.Env = append(os.Environ(), "RINGCAST_PHOENIX_JS="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the Phoenix client script failed: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestRunScriptSyntax(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	if out, err := exec.Command(bash, "-n", "run.sh").CombinedOutput(); err != nil {
		t.Fatalf("bash -n run.sh: %v\n%s", err, out)
	}
}
