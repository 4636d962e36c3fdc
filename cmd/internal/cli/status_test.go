package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

// statusServer serves what RegisterStatus registers for node n (with a
// gateway), behind the Guard the binaries put in front of it, with the
// command line args.
func statusServer(t *testing.T, n *pubsub.Node, storeDesc string, args ...string) string {
	t.Helper()
	e, _, _ := testEnv(t, args...)
	e.storeDesc = storeDesc
	gw := gateway.NewHandler(broker.New(n), nil)
	t.Cleanup(func() { _ = gw.Shutdown(context.Background()) })
	mux := http.NewServeMux()
	front := NewGuard(mux, GuardConfig{ProtectedMode: true, APIRate: DefaultAPIRate, APIBurst: DefaultAPIBurst})
	api := NewAPI(n, APIConfig{Gateway: gw, Guard: front.Stats})
	api.Register(mux)
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	e.RegisterStatus(mux, StatusConfig{API: api, Addrs: map[string]string{"listen": srv.Listener.Addr().String()}})
	return srv.URL
}

func getStatus(t *testing.T, base string) Status {
	t.Helper()
	r := do(t, http.MethodGet, base+StatusAPIPath, "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s = %d %s %s", StatusAPIPath, r.status, r.header.Get("Content-Type"), r.body)
	}
	var s Status
	if err := json.Unmarshal([]byte(r.body), &s); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	return s
}

// TestStatusAPI reads GET /api/status of a node in a cluster of two: the
// version, the configuration without its secrets, the members with their
// roles, states and ring shares, and the counters; a member that leaves
// is listed as gone.
func TestStatusAPI(t *testing.T) {
	a := startNode(t, pubsub.Config{NodeName: "a", Gossip: pubsub.FastGossip(), Roles: []string{pubsub.RoleGateway, pubsub.RoleTopics}})
	b, err := pubsub.New(pubsub.Config{NodeName: "b", Gossip: pubsub.FastGossip(), Seeds: []string{a.GossipAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	waitFor(t, testTimeout, "two members", func() bool { return len(a.Members()) == 2 })

	const secret, password = "s3cret-of-the-cluster", "pa55word-of-the-db"
	// The store as StartNode describes it once opened; the flags hold the
	// password and the secret, which the status must not show.
	storeURL := "postgres://ringcast:" + password + "@db.example:5432/ringcast"
	base := statusServer(t, a, RedactURL(storeURL), "--store", storeURL,
		"--secret", secret, "--replication", "3", "--cluster", "prod", "--join", "127.0.0.1:7946")
	r := do(t, http.MethodGet, base+StatusAPIPath, "")
	for _, leak := range []string{secret, password} {
		if strings.Contains(r.body, leak) {
			t.Fatalf("GET /api/status shows %q:\n%s", leak, r.body)
		}
	}
	s := getStatus(t, base)
	if s.Node != "a" || s.Command != "ringcast-test" || s.Version == "" || s.Started.IsZero() || s.Time.Before(s.Started) {
		t.Errorf("status header = %q %q %q %v %v", s.Node, s.Command, s.Version, s.Started, s.Time)
	}
	c := s.Config
	if !c.Secret || c.Cluster != "prod" || c.Replication != 3 || !c.ProtectedMode || c.TLS || c.Notify ||
		c.Store != "postgres://ringcast:xxxxx@db.example:5432/ringcast" || len(c.Join) != 1 ||
		c.Listen["listen"] == "" || c.Gossip != a.GossipAddr() || c.Peer != a.PeerAddr() ||
		strings.Join(c.Roles, ",") != "gateway,topics" {
		t.Errorf("config = %+v", c)
	}
	if len(s.Members) != 2 {
		t.Fatalf("members = %+v; want a and b", s.Members)
	}
	ma, mb := s.Members[0], s.Members[1]
	if ma.Name != "a" || !ma.Self || ma.State != "alive" || mb.Name != "b" || mb.Self || mb.State != "alive" ||
		strings.Join(mb.Roles, ",") != "topics" || mb.Gossip != b.GossipAddr() || mb.Peer != b.PeerAddr() {
		t.Errorf("members = %+v", s.Members)
	}
	if sum := ma.Share + mb.Share; ma.Share <= 0 || mb.Share <= 0 || sum < 0.999 || sum > 1.001 {
		t.Errorf("ring shares %v + %v; want both positive, summing to 1", ma.Share, mb.Share)
	}
	if s.Gateway == nil || s.Guard == nil || s.Links == nil {
		t.Errorf("no gateway, guard or link counters: %+v", s)
	}

	// Traffic shows in the counters.
	if _, err := a.Publish(context.Background(), "status-test", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, testTimeout, "the publish counted", func() bool { return getStatus(t, base).Stats.Published == 1 })

	// b leaves: a lists it as gone, with a share of 0, after a.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, testTimeout, "b gone", func() bool {
		s = getStatus(t, base)
		return len(s.Members) == 2 && s.Members[1].Name == "b" && s.Members[1].State == "gone"
	})
	if gone := s.Members[1]; gone.Share != 0 || gone.Since.Before(mb.Since) || s.Members[0].Share != 1 {
		t.Errorf("after b left: %+v", s.Members)
	}
	if r := do(t, http.MethodPost, base+StatusAPIPath, "{}"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST %s = %d; want 405", StatusAPIPath, r.status)
	}
}

// TestStatusMembersBounded: members gone longer than statusGoneTTL are
// forgotten, and at most statusMaxGone are listed.
func TestStatusMembersBounded(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "self"})
	h := newStatusHandler(NewAPI(n, APIConfig{}), StatusSettings{}, "ringcast-test")
	now := h.started
	for i := range statusMaxGone + 10 {
		name := "old-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		h.members[name] = &seenMember{m: pubsub.Member{Name: name}, since: now.Add(-statusGoneTTL / 2).Add(-timeOf(i))}
	}
	h.members["ancient"] = &seenMember{m: pubsub.Member{Name: "ancient"}, since: now.Add(-2 * statusGoneTTL)}
	ms := h.updateMembers(n, now)
	if len(ms) != 1+statusMaxGone {
		t.Fatalf("listed %d members; want self and %d gone", len(ms), statusMaxGone)
	}
	if ms[0].Name != "self" || ms[0].State != "alive" {
		t.Errorf("first member %+v; want self alive", ms[0])
	}
	if _, ok := h.members["ancient"]; ok {
		t.Error("a member gone for twice the TTL is still remembered")
	}
	if len(h.members) != 1+statusMaxGone {
		t.Errorf("remembers %d members; want %d", len(h.members), 1+statusMaxGone)
	}
}

// timeOf spreads the test's gone members a second apart.
func timeOf(i int) time.Duration { return time.Duration(i) * time.Second }

// TestStatusPageServed gets the page and its files, with the policy that
// forbids anything not of its own origin.
func TestStatusPageServed(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "p"})
	base := statusServer(t, n, "none")
	for path, ctype := range map[string]string{
		"/status":            "text/html; charset=utf-8",
		"/status/status.js":  "text/javascript; charset=utf-8",
		"/status/status.css": "text/css; charset=utf-8",
	} {
		r := do(t, http.MethodGet, base+path, "")
		if r.status != http.StatusOK || r.header.Get("Content-Type") != ctype ||
			r.header.Get("Content-Security-Policy") != StatusContentSecurityPolicy || r.header.Get("ETag") == "" {
			t.Errorf("GET %s = %d %v", path, r.status, r.header)
		}
	}
	for _, path := range []string{"/status/", "/status/index.html", "/status/nope.js"} {
		if r := do(t, http.MethodGet, base+path, ""); r.status != http.StatusNotFound {
			t.Errorf("GET %s = %d; want 404", path, r.status)
		}
	}
	page := do(t, http.MethodGet, base+"/status", "").body
	for _, bad := range []string{"<style", " style=", " onclick=", "http://", "https://", "<script>"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page has %q, which its policy refuses", bad)
		}
	}
}

// TestStatusThroughGuard: the page's poll, with the headers Chromium sends
// from the page (same origin), passes the Guard in protected mode; a poll
// naming another Host (a DNS-rebinding page) is refused.
func TestStatusThroughGuard(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "g"})
	base := statusServer(t, n, "none")
	host := strings.TrimPrefix(base, "http://")
	get := func(hdr map[string]string) int {
		req, err := http.NewRequest(http.MethodGet, base+StatusAPIPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if h := hdr["Host"]; h != "" {
			req.Host = h
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Referer": ""}); code != http.StatusOK {
		t.Fatalf("the page's poll = %d; want 200", code)
	}
	if code := get(map[string]string{"Host": "evil.example:" + host[strings.LastIndex(host, ":")+1:]}); code != http.StatusForbidden {
		t.Fatalf("a poll for Host evil.example = %d; want 403", code)
	}
}
