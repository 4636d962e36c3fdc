package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
)

const testTimeout = 10 * time.Second

func startNode(t testing.TB, cfg pubsub.Config) *pubsub.Node {
	t.Helper()
	n, err := pubsub.New(cfg)
	if err != nil {
		t.Fatalf("pubsub.New: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// apiServer serves an API of n on 127.0.0.1.
func apiServer(t testing.TB, n *pubsub.Node, cfg APIConfig) (*API, string) {
	t.Helper()
	api := NewAPI(n, cfg)
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return api, srv.URL
}

// httpClient keeps no idle connection, so tests leave no goroutine behind.
// httpClient honours "Expect: 100-continue", so a test can send a large
// body the way curl does and see a refusal before the body is written.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: testTimeout}, Timeout: testTimeout}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, method, url, body string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// expectError requires status and a JSON {"error"} body containing want.
func (r response) expectError(t testing.TB, status int, want string) {
	t.Helper()
	var e struct{ Error string }
	if r.status != status || json.Unmarshal([]byte(r.body), &e) != nil || !strings.Contains(e.Error, want) {
		t.Fatalf("got %d %s, want %d and an error containing %q", r.status, r.body, status, want)
	}
}

func TestHealthz(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	api, base := apiServer(t, n, APIConfig{})
	if r := do(t, "GET", base+"/healthz", ""); r.status != 200 || r.body != "ok\n" {
		t.Fatalf("healthz = %d %q, want 200 ok", r.status, r.body)
	}
	if r := do(t, "HEAD", base+"/healthz", ""); r.status != 200 {
		t.Fatalf("HEAD healthz = %d, want 200", r.status)
	}
	do(t, "POST", base+"/healthz", "").expectError(t, 405, "method POST not allowed")
	api.SetDraining()
	if r := do(t, "GET", base+"/healthz", ""); r.status != 503 || r.body != "shutting down\n" {
		t.Fatalf("healthz while draining = %d %q, want 503", r.status, r.body)
	}
}

// A node whose view holds no member with the topics role cannot publish or
// subscribe: it is not ready until one joins.
func TestHealthzWithoutTopicServers(t *testing.T) {
	g := startNode(t, pubsub.Config{NodeName: "g", Gossip: pubsub.FastGossip(), Roles: []string{pubsub.RoleGateway}})
	_, base := apiServer(t, g, APIConfig{})
	if r := do(t, "GET", base+"/healthz", ""); r.status != 503 || r.body != "no member owns topics\n" {
		t.Fatalf("healthz with no topic server = %d %q, want 503 no member owns topics", r.status, r.body)
	}
	startNode(t, pubsub.Config{NodeName: "a", Gossip: pubsub.FastGossip(), Seeds: []string{g.GossipAddr()}})
	waitFor(t, testTimeout, "healthz ok once a topic server joined", func() bool {
		r := do(t, "GET", base+"/healthz", "")
		return r.status == 200 && r.body == "ok\n"
	})
}

func TestClusterEndpoint(t *testing.T) {
	a := startNode(t, pubsub.Config{NodeName: "a", Gossip: pubsub.FastGossip()})
	b := startNode(t, pubsub.Config{NodeName: "b", Gossip: pubsub.FastGossip(), Roles: []string{pubsub.RoleGateway}, Seeds: []string{a.GossipAddr()}})
	waitFor(t, testTimeout, "two members", func() bool { return len(a.Members()) == 2 && len(b.Members()) == 2 })
	_, base := apiServer(t, b, APIConfig{})
	r := do(t, "GET", base+"/api/cluster", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/cluster = %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var got ClusterInfo
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	want := ClusterInfo{Node: "b", Members: []ClusterMember{
		{Name: "a", Roles: []string{"topics"}, Gossip: a.GossipAddr(), Peer: a.PeerAddr(), Share: 1},
		{Name: "b", Roles: []string{"gateway"}, Gossip: b.GossipAddr(), Peer: b.PeerAddr(), Share: 0},
	}}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Fatalf("GET /api/cluster = %s\nwant %s", gj, wj)
	}
	do(t, "DELETE", base+"/api/cluster", "").expectError(t, 405, "not allowed")
	do(t, "GET", base+"/api/nothing", "").expectError(t, 404, "no such endpoint")
}

func TestPublishAndTopic(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	_, base := apiServer(t, n, APIConfig{Publish: true})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sub, err := n.Subscribe(ctx, "topics:matrix")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	r := do(t, "POST", base+"/api/publish?topic=topics:matrix", "  {\"message\": \"hi\"}\n")
	info, err := n.TopicInfo(ctx, "topics:matrix")
	if err != nil || info.Epoch == 0 {
		t.Fatalf("TopicInfo = %+v, %v", info, err)
	}
	// The epoch is a string: it may exceed what JavaScript holds exactly.
	if want := fmt.Sprintf(`{"topic":"topics:matrix","seq":1,"epoch":"%d"}`+"\n", info.Epoch); r.status != 200 || r.body != want {
		t.Fatalf("publish = %d %s, want 200 %s", r.status, r.body, want)
	}
	r = do(t, "POST", base+"/api/publish?topic=topics:matrix&event=event&ack=owner", `[1,2]`)
	if want := fmt.Sprintf(`{"topic":"topics:matrix","seq":2,"epoch":"%d"}`+"\n", info.Epoch); r.status != 200 || r.body != want {
		t.Fatalf("publish = %d %s, want 200 %s", r.status, r.body, want)
	}
	var pub Published
	if err := json.Unmarshal([]byte(r.body), &pub); err != nil || pub != (Published{Topic: "topics:matrix", Seq: 2, Epoch: info.Epoch}) {
		t.Fatalf("decoding %s: %+v %v", r.body, pub, err)
	}
	for _, want := range []struct{ event, payload string }{{"message", `{"message": "hi"}`}, {"event", `[1,2]`}} {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		event, payload, binary, err := gateway.DecodeEnvelope(m.Data)
		if err != nil || binary || event != want.event || string(payload) != want.payload {
			t.Fatalf("published envelope = %q %q %v %v, want %q %q", event, payload, binary, err, want.event, want.payload)
		}
	}

	r = do(t, "GET", base+"/api/topics/"+url.PathEscape("topics:matrix"), "")
	var st TopicState
	if r.status != 200 || json.Unmarshal([]byte(r.body), &st) != nil {
		t.Fatalf("GET /api/topics = %d %s", r.status, r.body)
	}
	if st.Topic != "topics:matrix" || st.Owner != "n1" || st.Seq != 2 || st.Epoch == 0 {
		t.Fatalf("topic state %+v, want owner n1, seq 2, an epoch", st)
	}
	r = do(t, "GET", base+"/api/topics/a/b%20c", "")
	if r.status != 200 || !strings.Contains(r.body, `"topic":"a/b c","owner":"n1","epoch":"0","seq":0`) {
		t.Fatalf("GET a topic never published = %d %s", r.status, r.body)
	}
	do(t, "GET", base+"/api/topics/", "").expectError(t, 400, "invalid topic")
	do(t, "GET", base+"/api/topics/bad%0Atopic", "").expectError(t, 400, "invalid topic")
}

func TestPublishErrors(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	const maxPayload = 64
	_, base := apiServer(t, n, APIConfig{Publish: true, MaxPayload: maxPayload})
	pub := base + "/api/publish"

	do(t, "GET", pub+"?topic=t", "").expectError(t, 405, "method GET not allowed; use POST")
	if r := do(t, "PUT", pub+"?topic=t", "{}"); r.header.Get("Allow") != "POST" {
		t.Fatalf("405 without Allow: POST: %v", r.header)
	}
	do(t, "POST", pub, "{}").expectError(t, 400, "invalid topic: empty")
	do(t, "POST", pub+"?topic=a%00b", "{}").expectError(t, 400, "invalid topic")
	do(t, "POST", pub+"?topic="+strings.Repeat("x", 256), "{}").expectError(t, 400, "invalid topic")
	do(t, "POST", pub+"?topic=t&event=", "{}").expectError(t, 400, "invalid event")
	do(t, "POST", pub+"?topic=t&event="+strings.Repeat("e", 256), "{}").expectError(t, 400, "invalid event")
	do(t, "POST", pub+"?topic=t&event=phx_reply", "{}").expectError(t, 400, "reserved")
	do(t, "POST", pub+"?topic=t&ack=all", "{}").expectError(t, 400, `invalid ack "all": want none, owner or replicated`)
	do(t, "POST", pub+"?topic=t&ack=", "{}").expectError(t, 400, `invalid ack ""`)
	do(t, "POST", pub+"?topic=t&ack=Replicated", "{}").expectError(t, 400, "invalid ack")
	do(t, "POST", pub+"?topic=t", "").expectError(t, 400, "not valid JSON")
	do(t, "POST", pub+"?topic=t", `{"a":`).expectError(t, 400, "not valid JSON")

	// The envelope of the default event takes 2+7 bytes of the 64.
	limit := maxPayload - 2 - len(DefaultEvent)
	fits := `"` + strings.Repeat("x", limit-2) + `"`
	if r := do(t, "POST", pub+"?topic=t", fits); r.status != 200 {
		t.Fatalf("a body of exactly %d bytes = %d %s, want 200", limit, r.status, r.body)
	}
	over := `"` + strings.Repeat("x", limit-1) + `"`
	do(t, "POST", pub+"?topic=t", over).expectError(t, 413, "payload too large")
	// Without a Content-Length the body is cut off while it is read.
	req, _ := http.NewRequest("POST", pub+"?topic=t", io.MultiReader(strings.NewReader(over)))
	req.ContentLength = -1
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	response{status: resp.StatusCode, body: string(b)}.expectError(t, 413, "payload too large")

	// The node's own limit applies too.
	_, base2 := apiServer(t, n, APIConfig{Publish: true, MaxPayload: 2 * pubsub.DefaultMaxPayload})
	big := `"` + strings.Repeat("x", pubsub.DefaultMaxPayload) + `"`
	do(t, "POST", base2+"/api/publish?topic=t", big).expectError(t, 413, "payload too large")
}

func TestPublishAck(t *testing.T) {
	g := pubsub.FastGossip()
	a := startNode(t, pubsub.Config{NodeName: "a", Gossip: g})
	b := startNode(t, pubsub.Config{NodeName: "b", Gossip: g, Seeds: []string{a.GossipAddr()}})
	gw := startNode(t, pubsub.Config{NodeName: "gw", Gossip: g, Roles: []string{pubsub.RoleGateway}, Seeds: []string{a.GossipAddr()}})
	for _, n := range []*pubsub.Node{a, b, gw} {
		waitFor(t, testTimeout, n.Name()+" to see three members", func() bool { return len(n.Members()) == 3 })
	}
	_, base := apiServer(t, gw, APIConfig{Publish: true})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	const topic = "topics:ack"
	sub, err := gw.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	// none: accepted at once, without a position.
	r := do(t, "POST", base+"/api/publish?topic="+topic+"&ack=none", `{"n":1}`)
	if r.status != http.StatusAccepted || r.body != `{"topic":"`+topic+`"}`+"\n" {
		t.Fatalf("publish with ack=none = %d %s, want 202 and the topic alone", r.status, r.body)
	}
	// replicated: answered with the position once both topic servers hold it.
	r = do(t, "POST", base+"/api/publish?topic="+topic+"&ack=replicated", `{"n":2}`)
	var pub Published
	if r.status != 200 || json.Unmarshal([]byte(r.body), &pub) != nil || pub.Topic != topic || pub.Seq != 2 || pub.Epoch == 0 {
		t.Fatalf("publish with ack=replicated = %d %s, want 200 with seq 2 and an epoch", r.status, r.body)
	}
	for i, want := range []string{`{"n":1}`, `{"n":2}`} {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, payload, _, _ := gateway.DecodeEnvelope(m.Data); string(payload) != want || m.Seq != uint64(i+1) {
			t.Fatalf("message %d = seq %d %s, want seq %d %s", i, m.Seq, payload, i+1, want)
		}
	}

	// The owner fails without handing off: the replica takes the topic over
	// with the acknowledged message in its history, in the same epoch.
	owner, err := gw.Owner(topic)
	if err != nil {
		t.Fatal(err)
	}
	survivor := b
	if owner.Name == "a" {
		_ = a.Close()
	} else {
		_ = b.Close()
		survivor = a
	}
	waitFor(t, testTimeout, "the survivor to own "+topic, func() bool {
		o, err := gw.Owner(topic)
		return err == nil && o.Name == survivor.Name()
	})
	resumed, err := gw.Subscribe(ctx, topic, pubsub.Since(pub.Epoch, 1))
	if err != nil {
		t.Fatalf("resuming after seq 1 from the survivor: %v", err)
	}
	defer resumed.Unsubscribe()
	m, err := resumed.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, payload, _, _ := gateway.DecodeEnvelope(m.Data); string(payload) != `{"n":2}` || m.Seq != 2 || m.Epoch != pub.Epoch {
		t.Fatalf("recovered %s seq %d epoch %d, want {\"n\":2} seq 2 epoch %d", payload, m.Seq, m.Epoch, pub.Epoch)
	}
}

func TestNoOwner(t *testing.T) {
	// A pure gateway alone: nobody owns topics.
	n := startNode(t, pubsub.Config{NodeName: "gw", Roles: []string{pubsub.RoleGateway}})
	_, base := apiServer(t, n, APIConfig{Publish: true})
	do(t, "POST", base+"/api/publish?topic=t", "{}").expectError(t, 503, "no owner")
	do(t, "GET", base+"/api/topics/t", "").expectError(t, 503, "no owner")
}

func TestPublishDisabled(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	_, base := apiServer(t, n, APIConfig{})
	do(t, "POST", base+"/api/publish?topic=t", "{}").expectError(t, 404, "no such endpoint")
}

func newMux(api *API) *http.ServeMux {
	mux := http.NewServeMux()
	if api != nil {
		api.Register(mux)
	}
	return mux
}

func TestStatsEndpoint(t *testing.T) {
	a := startNode(t, pubsub.Config{NodeName: "a", Gossip: pubsub.FastGossip()})
	b := startNode(t, pubsub.Config{NodeName: "b", Gossip: pubsub.FastGossip(), Roles: []string{pubsub.RoleGateway}, Seeds: []string{a.GossipAddr()}})
	waitFor(t, testTimeout, "two members", func() bool { return len(a.Members()) == 2 && len(b.Members()) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sub, err := b.Subscribe(ctx, "stats")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "stats", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Next(ctx); err != nil {
		t.Fatal(err)
	}

	gw := gateway.NewHandler(gateway.NewMemoryBroker(), nil)
	_, withGateway := apiServer(t, a, APIConfig{Gateway: gw})
	var got NodeStats
	var r response
	waitFor(t, testTimeout, "the Deliver to b to be counted", func() bool {
		r = do(t, "GET", withGateway+"/api/stats", "")
		if r.status != 200 || json.Unmarshal([]byte(r.body), &got) != nil {
			t.Fatalf("GET /api/stats = %d %s", r.status, r.body)
		}
		return got.Links.Peers["b"].Sent[pubsub.FrameDeliver] > 0
	})
	if got.Node != "a" || got.Published != 1 || got.Sequenced != 1 || got.OwnedTopics != 1 || got.Gateway == nil || got.Gateway.Connections != 0 {
		t.Fatalf("GET /api/stats = %s", r.body)
	}
	for _, key := range []string{`"owned_topics":1`, `"replica_topics":`, `"forgotten":0`, `"peers":{"b":{`, `"Deliver":`, `"gateway":{"connections":0`} {
		if !strings.Contains(r.body, key) {
			t.Errorf("GET /api/stats lacks %s: %s", key, r.body)
		}
	}

	_, plain := apiServer(t, b, APIConfig{})
	r = do(t, "GET", plain+"/api/stats", "")
	if r.status != 200 || strings.Contains(r.body, `"gateway"`) || !strings.Contains(r.body, `"node":"b"`) || !strings.Contains(r.body, `"local_topics":1`) {
		t.Fatalf("GET /api/stats without a gateway = %d %s", r.status, r.body)
	}
	do(t, "POST", plain+"/api/stats", "").expectError(t, 405, "not allowed")
}
