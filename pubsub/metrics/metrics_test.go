package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
	"github.com/ringcast/ringcast/pubsub/store/sqlite"
)

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startPair starts two nodes joined together on 127.0.0.1, both on one
// SQLite store in which every topic is durable, and waits until each sees
// the other.
func startPair(t *testing.T) (a, b *pubsub.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ringcast.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	start := func(name string, seeds ...string) *pubsub.Node {
		n, err := pubsub.New(pubsub.Config{
			NodeName: name,
			Seeds:    seeds,
			Gossip:   pubsub.FastGossip(),
			Store:    st,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		return n
	}
	a = start("a")
	b = start("b", a.GossipAddr())
	waitFor(t, 20*time.Second, "both nodes to see each other", func() bool {
		return len(a.Members()) == 2 && len(b.Members()) == 2
	})
	return a, b
}

// gather collects c in a pedantic registry, which checks that what c
// collects matches what it describes, and returns the families by name.
func gather(t *testing.T, cs ...prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value returns the value of the series of family name whose labels
// include labels ("k=v" each), summed over the series that match; a
// histogram's value is its count.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if have[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// TestNodeCollector publishes from one node of a pair to subscribers on
// the other and checks what each node's collector reports.
func TestNodeCollector(t *testing.T) {
	a, b := startPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topics, each = 4, 5
	subs := make([]*pubsub.Subscription, topics)
	for i := range topics {
		s, err := b.Subscribe(ctx, fmt.Sprintf("orders-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Unsubscribe() }()
		subs[i] = s
	}
	for i := range topics {
		for j := range each {
			if _, err := a.Publish(ctx, fmt.Sprintf("orders-%d", i), fmt.Appendf(nil, "m%d", j)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, s := range subs {
		for range each {
			if _, err := s.Next(ctx); err != nil {
				t.Fatalf("subscription %d: %v", i, err)
			}
		}
	}

	ma := gather(t, NewCollector(a))
	mb := gather(t, NewCollector(b))
	for _, m := range []map[string]*dto.MetricFamily{ma, mb} {
		if v := value(t, m, "ringcast_cluster_members"); v != 2 {
			t.Errorf("ringcast_cluster_members = %v, want 2", v)
		}
		if v := value(t, m, "ringcast_member_info", "member=a"); v != 1 {
			t.Errorf("ringcast_member_info{member=a} = %v, want 1", v)
		}
		if v := value(t, m, "ringcast_member_ring_share"); v < 0.999 || v > 1.001 {
			t.Errorf("ring shares add up to %v, want 1", v)
		}
		if v := value(t, m, "ringcast_joined"); v != 1 {
			t.Errorf("ringcast_joined = %v", v)
		}
	}
	if v := value(t, ma, "ringcast_node_info", "node=a"); v != 1 {
		t.Errorf("ringcast_node_info{node=a} = %v", v)
	}
	if v := value(t, ma, "ringcast_publishes_total"); v != topics*each {
		t.Errorf("a: ringcast_publishes_total = %v, want %d", v, topics*each)
	}
	if v := value(t, ma, "ringcast_publish_outcomes_total", "ack=owner", "result=ok"); v != topics*each {
		t.Errorf("a: publishes acknowledged by the owner = %v, want %d", v, topics*each)
	}
	if v := value(t, ma, "ringcast_publish_outcomes_total", "result=error"); v != 0 {
		t.Errorf("a: failed publishes = %v, want 0", v)
	}
	if v := value(t, mb, "ringcast_deliveries_total", "result=delivered"); v != topics*each {
		t.Errorf("b: delivered = %v, want %d", v, topics*each)
	}
	if v := value(t, mb, "ringcast_subscriptions"); v != topics {
		t.Errorf("b: ringcast_subscriptions = %v, want %d", v, topics)
	}
	if v := value(t, mb, "ringcast_topics_local"); v != topics {
		t.Errorf("b: ringcast_topics_local = %v, want %d", v, topics)
	}
	both := func(name string, labels ...string) float64 {
		return value(t, ma, name, labels...) + value(t, mb, name, labels...)
	}
	if v := both("ringcast_history_messages"); v != topics*each {
		t.Errorf("histories hold %v messages, want %d", v, topics*each)
	}
	if v := both("ringcast_topics_owned"); v != topics {
		t.Errorf("topics owned by a and b: %v, want %d", v, topics)
	}
	if v := both("ringcast_messages_sequenced_total"); v != topics*each {
		t.Errorf("messages sequenced by a and b: %v, want %d", v, topics*each)
	}
	if v := both("ringcast_store_committed_messages_total"); v != topics*each {
		t.Errorf("messages committed by a and b: %v, want %d", v, topics*each)
	}
	if v := both("ringcast_store_claims_total"); v != topics {
		t.Errorf("store claims by a and b: %v, want %d", v, topics)
	}
	for _, h := range []string{"ringcast_claim_duration_seconds", "ringcast_store_append_duration_seconds", "ringcast_store_claim_duration_seconds"} {
		if v := both(h); v == 0 {
			t.Errorf("%s: nothing recorded", h)
		}
	}
	if v := both("ringcast_store_transactions_total"); v != both("ringcast_store_append_duration_seconds") {
		t.Errorf("%v store transactions, %v timed", v, both("ringcast_store_append_duration_seconds"))
	}
	// Every message went from a to b, either as a publish (to b's topics)
	// or as a delivery (of a's).
	if v := value(t, ma, "ringcast_link_frames_sent_total", "peer=b"); v == 0 {
		t.Error("a sent b no frame")
	}
	if v := value(t, mb, "ringcast_link_frames_received_total", "peer=a"); v == 0 {
		t.Error("b received no frame from a")
	}
	if v := value(t, ma, "ringcast_link_sent_bytes_total", "peer=b"); v == 0 {
		t.Error("a sent b no byte")
	}
	if v := value(t, ma, "ringcast_link_connected", "peer=b"); v != 1 {
		t.Errorf("ringcast_link_connected{peer=b} on a = %v", v)
	}
	if v := value(t, ma, "ringcast_link_dials_total", "peer=b"); v < 1 {
		t.Errorf("ringcast_link_dials_total{peer=b} on a = %v", v)
	}

	// The histogram's buckets are cumulative and end with its count.
	h := ma["ringcast_store_append_duration_seconds"].GetMetric()[0].GetHistogram()
	bs := h.GetBucket()
	for i := 1; i < len(bs); i++ {
		if bs[i].GetCumulativeCount() < bs[i-1].GetCumulativeCount() || bs[i].GetUpperBound() <= bs[i-1].GetUpperBound() {
			t.Fatalf("buckets not cumulative: %v", bs)
		}
	}
	if len(bs) == 0 || bs[len(bs)-1].GetCumulativeCount() > h.GetSampleCount() || bs[0].GetUpperBound() != 25e-6 {
		t.Fatalf("buckets %v, count %d", bs, h.GetSampleCount())
	}

	if problems, err := testutil.CollectAndLint(NewCollector(a)); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}

	// Publishes by ack level and result.
	if _, err := a.Publish(ctx, "orders-0", []byte("late"), pubsub.WithAck(pubsub.AckReplicated)); err != nil {
		t.Fatal(err)
	}
	cancelled, stop := context.WithCancel(ctx)
	stop()
	if _, err := a.Publish(cancelled, "orders-none", []byte("x")); err == nil {
		t.Fatal("a publish with a cancelled context succeeded")
	}
	ma, mb = gather(t, NewCollector(a)), gather(t, NewCollector(b))
	if v := value(t, ma, "ringcast_publish_outcomes_total", "ack=replicated", "result=ok"); v != 1 {
		t.Errorf("a: replicated publishes = %v, want 1", v)
	}
	if v := value(t, ma, "ringcast_publish_outcomes_total", "ack=owner", "result=error"); v != 1 {
		t.Errorf("a: failed owner-acknowledged publishes = %v, want 1", v)
	}
}

// TestConstLabels registers the collectors of two nodes in one registry,
// told apart by a label.
func TestConstLabels(t *testing.T) {
	a, b := startPair(t)
	mfs := gather(t,
		NewCollector(a, WithConstLabels(prometheus.Labels{"instance_node": "a"})),
		NewCollector(b, WithConstLabels(prometheus.Labels{"instance_node": "b"})))
	for _, n := range []string{"a", "b"} {
		if v := value(t, mfs, "ringcast_cluster_members", "instance_node="+n); v != 2 {
			t.Errorf("ringcast_cluster_members{instance_node=%s} = %v", n, v)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(a))
	if err := reg.Register(NewCollector(b)); err == nil {
		t.Fatal("two collectors without distinct labels registered in one registry")
	}
}

// startGateway serves a gateway on n over 127.0.0.1 and returns it with
// its WebSocket URL.
func startGateway(t *testing.T, n *pubsub.Node) (*gateway.Handler, string) {
	t.Helper()
	gw := gateway.NewHandler(broker.New(n), nil)
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = gw.Shutdown(ctx)
		srv.Close()
	})
	return gw, "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket/websocket?vsn=2.0.0"
}

// TestGatewayCollector connects a client, joins a topic and checks the
// gateway's metrics, and that every numeric field of gateway.Stats has
// one.
func TestGatewayCollector(t *testing.T) {
	a, _ := startPair(t)
	gw, url := startGateway(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := cws.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, cws.MessageText, []byte(`["1","1","orders","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	if _, data, err := ws.Read(ctx); err != nil || !bytes.Contains(data, []byte(`"ok"`)) {
		t.Fatalf("join reply %s, %v", data, err)
	}

	// The writer counts a frame once its write returned, which may be just
	// after the client read it.
	c := NewGatewayCollector(gw)
	mfs := gather(t, c)
	for deadline := time.Now().Add(10 * time.Second); value(t, mfs, "ringcast_gateway_frames_sent_total") == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		mfs = gather(t, c)
	}
	for name, want := range map[string]float64{
		"ringcast_gateway_connections":                1,
		"ringcast_gateway_connections_accepted_total": 1,
		"ringcast_gateway_joins_total":                1,
		"ringcast_gateway_topics":                     1,
		"ringcast_gateway_frames_received_total":      1,
		"ringcast_gateway_frames_sent_total":          1,
		"ringcast_gateway_slow_consumers_total":       0,
	} {
		if v := value(t, mfs, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	numeric := 0
	st := reflect.TypeFor[gateway.Stats]()
	for i := range st.NumField() {
		switch st.Field(i).Type.Kind() {
		case reflect.Int64, reflect.Uint64, reflect.Int, reflect.Uint:
			numeric++
		}
	}
	if len(mfs) != numeric {
		t.Errorf("%d metrics for %d numeric fields of gateway.Stats", len(mfs), numeric)
	}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "ringcast_gateway_") || mf.GetHelp() == "" {
			t.Errorf("metric %s, help %q", name, mf.GetHelp())
		}
	}
	if problems, err := testutil.CollectAndLint(NewGatewayCollector(gw)); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

// TestPromtool serves every collector (the node's, the gateway's, Go's and
// the process's) over HTTP as a Prometheus server scrapes them, and checks
// the text with promtool check metrics. Without promtool (Debian package
// prometheus) it skips, unless RINGCAST_REQUIRE_PROMTOOL=1.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("RINGCAST_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("promtool not found and RINGCAST_REQUIRE_PROMTOOL=1: %v", err)
		}
		t.Skip("promtool not found (apt-get install prometheus); set RINGCAST_REQUIRE_PROMTOOL=1 to fail instead")
	}
	a, b := startPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := b.Subscribe(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Unsubscribe() }()
	if _, err := a.Publish(ctx, "orders", []byte("m")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(ctx); err != nil {
		t.Fatal(err)
	}
	gw, _ := startGateway(t, a)

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(a), NewGatewayCollector(gw), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	for _, want := range []string{
		"ringcast_publishes_total 1", "# TYPE ringcast_claim_duration_seconds histogram", "ringcast_gateway_connections 0", "go_goroutines",
		`ringcast_peer_connections_refused_total{reason="handshake"} `, "ringcast_gateway_upgrades_refused_origin_total 0",
		"ringcast_gateway_joins_rate_limited_total 0", "ringcast_gateway_denied_total 0",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("no %q in the metrics", want)
		}
	}
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestPeerRefusals: a connection to the peer port that does not shake
// hands is counted in pubsub's LinkStats.Refused and on
// ringcast_peer_connections_refused_total.
func TestPeerRefusals(t *testing.T) {
	n, err := pubsub.New(pubsub.Config{NodeName: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for i := range 2 {
		c, err := net.Dial("tcp", n.PeerAddr())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		_, _ = io.Copy(io.Discard, c) // until the node closes it
		c.Close()
	}
	waitFor(t, 10*time.Second, "two refused handshakes", func() bool {
		return n.Stats().Links.Refused.Handshake == 2
	})
	mfs := gather(t, NewCollector(n))
	if v := value(t, mfs, "ringcast_peer_connections_refused_total", "reason=handshake"); v != 2 {
		t.Fatalf(`ringcast_peer_connections_refused_total{reason="handshake"} = %v, want 2`, v)
	}
	if v := value(t, mfs, "ringcast_peer_connections_refused_total"); v != 2 {
		t.Fatalf("ringcast_peer_connections_refused_total summed = %v, want 2", v)
	}
	if n := len(mfs["ringcast_peer_connections_refused_total"].GetMetric()); n != 5 {
		t.Fatalf("%d reasons, want 5", n)
	}
}

// TestStoreCollector reads the size of a real SQLite store; a store that
// cannot answer makes that metric's collection fail.
func TestStoreCollector(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ringcast.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewStoreCollector(st, WithConstLabels(prometheus.Labels{"node": "a"}))
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	if v := value(t, gather(t, c), "ringcast_store_size_bytes", "node=a"); v <= 0 {
		t.Fatalf("ringcast_store_size_bytes = %v, want the file's bytes", v)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(st.Path()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err == nil {
		t.Fatal("a store whose file is gone reported a size")
	}
}
