package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

// guardedServer serves a node's API (publishing on) and a gateway behind
// a Guard configured by cfg, on 127.0.0.1, as ringcast-ws mounts them.
func guardedServer(t *testing.T, n *pubsub.Node, cfg GuardConfig) (*Guard, *gateway.Handler, string) {
	t.Helper()
	gw := gateway.NewHandler(broker.New(n), &gateway.Options{AllowedHosts: cfg.AllowedHosts, OriginPatterns: cfg.AllowedOrigins})
	mux := http.NewServeMux()
	g := NewGuard(mux, cfg)
	mux.Handle("/socket/websocket", gw)
	NewAPI(n, APIConfig{Publish: true, Gateway: gw, Guard: g.Stats}).Register(mux)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = gw.Close() })
	return g, gw, srv.URL
}

// request sends method url with body and the headers (name, value, ...);
// the header "Host" sets the request's Host.
func request(t *testing.T, method, url, body string, headers ...string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// published returns how many messages n sequenced.
func published(n *pubsub.Node) uint64 { return n.Stats().Published }

// A page of another site posts text/plain to /api/publish: a "simple
// request" that browsers send without asking. It is refused and nothing is
// published; curl and servers (no Origin) keep publishing.
func TestGuardRefusesCrossSitePublish(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	g, _, base := guardedServer(t, n, GuardConfig{})
	pub := base + "/api/publish?topic=t"

	request(t, "POST", pub, `{"pwned":1}`, "Content-Type", "text/plain", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site").
		expectError(t, 403, "cross-site request refused")
	// Older browsers send no Sec-Fetch-Site: the Origin decides.
	request(t, "POST", pub, `{"pwned":2}`, "Content-Type", "text/plain", "Origin", "https://evil.example").
		expectError(t, 403, "origin \"https://evil.example\" is not allowed")
	request(t, "POST", pub, `{"pwned":3}`, "Content-Type", "application/x-www-form-urlencoded", "Origin", "null").
		expectError(t, 403, "cross-origin request refused")
	// A page of the server's own origin must send JSON.
	self := "http://" + strings.TrimPrefix(base, "http://")
	request(t, "POST", pub, `{"pwned":4}`, "Content-Type", "text/plain", "Origin", self, "Sec-Fetch-Site", "same-origin").
		expectError(t, 415, "must be JSON")
	if got := published(n); got != 0 {
		t.Fatalf("%d messages published by refused requests", got)
	}

	for i, headers := range [][]string{
		{"Content-Type", "application/json", "Origin", self, "Sec-Fetch-Site", "same-origin"}, // the server's own page
		{"Content-Type", "application/x-www-form-urlencoded"},                                 // curl -d
		{}, // a server, no Content-Type
		{"Authorization", "Bearer t", "Origin", "https://evil.example", "Content-Type", "application/json"}, // a token: CORS decided
	} {
		if r := request(t, "POST", pub, `{"ok":1}`, headers...); r.status != 200 {
			t.Fatalf("request %d %v = %d %s, want 200", i, headers, r.status, r.body)
		}
	}
	if st := g.Stats(); st.CrossSite != 3 || st.ContentType != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Reads are not refused: browsers cannot read them cross-origin anyway.
	if r := request(t, "GET", base+"/api/cluster", "", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); r.status != 200 {
		t.Fatalf("GET cross-site = %d", r.status)
	}
}

func TestGuardDNSRebinding(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	g, gw, base := guardedServer(t, n, GuardConfig{AllowedHosts: []string{"ws.example.com"}})
	// Same-origin by Host and Origin alike, as a rebinding page is.
	request(t, "POST", base+"/api/publish?topic=t", `{"x":1}`, "Host", "evil.example", "Origin", "http://evil.example",
		"Content-Type", "application/json", "Sec-Fetch-Site", "same-origin").expectError(t, 403, `host "evil.example" not allowed`)
	request(t, "GET", base+"/api/stats", "", "Host", "evil.example:4000").expectError(t, 403, "DNS rebinding")
	if r := request(t, "GET", base+"/socket/websocket?vsn=2.0.0", "", "Host", "evil.example", "Origin", "http://evil.example",
		"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="); r.status != 403 {
		t.Fatalf("rebinding upgrade = %d %s", r.status, r.body)
	}
	if r := request(t, "GET", base+"/api/cluster", "", "Host", "ws.example.com:4000"); r.status != 200 {
		t.Fatalf("allowed host = %d %s", r.status, r.body)
	}
	if st := g.Stats(); st.Host != 3 || gw.Stats().Accepted != 0 {
		t.Fatalf("stats %+v %+v", st, gw.Stats())
	}
}

func TestGuardCORS(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	_, _, base := guardedServer(t, n, GuardConfig{AllowedOrigins: []string{"app.example.com"}})
	pub := base + "/api/publish?topic=t"
	r := request(t, "OPTIONS", pub, "", "Origin", "https://app.example.com", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,content-type")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		r.header.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("allowed preflight = %d %v", r.status, r.header)
	}
	r = request(t, "OPTIONS", pub, "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Access-Control-Allow-Headers") != "" {
		t.Fatalf("refused preflight = %d %v", r.status, r.header)
	}
	// The allowed origin may post JSON, cross-site, and read the answer.
	r = request(t, "POST", pub, `{"x":1}`, "Origin", "https://app.example.com", "Sec-Fetch-Site", "cross-site", "Content-Type", "application/json")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("allowed origin's publish = %d %v %s", r.status, r.header, r.body)
	}
	// But not text/plain.
	request(t, "POST", pub, `{"x":1}`, "Origin", "https://app.example.com", "Content-Type", "text/plain").expectError(t, 415, "JSON")
	// Others get no CORS header.
	if r := request(t, "GET", base+"/api/cluster", "", "Origin", "https://evil.example"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS header for a stranger: %v", r.header)
	}
}

// guardHandler is a Guard in front of a handler that answers 200 "ok"
// after reading the body, or 413 if the body was too large.
func guardHandler(cfg GuardConfig) *Guard {
	return NewGuard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, err.Error())
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), cfg)
}

// newRequest is httptest.NewRequest for the host 127.0.0.1:4000 (a
// target with a host of its own keeps it).
func newRequest(method, target string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, target, body)
	if !strings.HasPrefix(target, "http") {
		r.Host = "127.0.0.1:4000"
	}
	return r
}

// serve runs r, from remote, through h and returns the answer.
func serve(h http.Handler, r *http.Request, remote string) *httptest.ResponseRecorder {
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestProtectedMode(t *testing.T) {
	logs := &syncBuffer{}
	g := guardHandler(GuardConfig{ProtectedMode: true, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	for _, remote := range []string{"192.0.2.10:5000", "[2001:db8::1]:5000", "10.0.0.1:1"} {
		for _, path := range []string{"/api/stats", "/socket/websocket?vsn=2.0.0", "/healthz"} {
			w := serve(g, newRequest("GET", path, nil), remote)
			if w.Code != 403 || !strings.Contains(w.Body.String(), "protected mode: no client authentication is configured") ||
				!strings.Contains(w.Body.String(), "--protected-mode=false") {
				t.Fatalf("%s from %s = %d %q", path, remote, w.Code, w.Body.String())
			}
		}
	}
	for _, remote := range []string{"127.0.0.1:5000", "127.8.9.10:5000", "[::1]:5000"} {
		if w := serve(g, newRequest("GET", "/api/stats", nil), remote); w.Code != 200 {
			t.Fatalf("from %s = %d %q", remote, w.Code, w.Body.String())
		}
	}
	// A client of this host that dialled one of its other addresses.
	r := newRequest("GET", "/api/stats", nil)
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 4000}))
	if w := serve(g, r, "192.0.2.10:5000"); w.Code != 200 {
		t.Fatalf("from this host's own address = %d", w.Code)
	}
	if st := g.Stats(); st.ProtectedMode != 9 {
		t.Fatalf("stats %+v", st)
	}
	// Logged once per window.
	if n := strings.Count(logs.String(), "protected mode"); n != 1 {
		t.Fatalf("protected mode logged %d times:\n%s", n, logs.String())
	}

	// With client authentication, or without protected mode, every
	// address is served.
	for _, cfg := range []GuardConfig{{ProtectedMode: true, ClientAuth: true}, {ProtectedMode: false}} {
		if w := serve(guardHandler(cfg), newRequest("GET", "/api/stats", nil), "192.0.2.10:5000"); w.Code != 200 {
			t.Fatalf("%+v: %d", cfg, w.Code)
		}
	}
}

// In protected mode the seed session works unchanged from loopback: a
// websocat-like client joins topics:matrix.
func TestProtectedModeLoopbackSession(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	_, _, base := guardedServer(t, n, GuardConfig{ProtectedMode: true})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ws, resp, err := cws.Dial(ctx, "ws://"+strings.TrimPrefix(base, "http://")+"/socket/websocket?vsn=2.0.0", &cws.DialOptions{HTTPClient: httpClient})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, cws.MessageText, []byte(`["1","1","topics:matrix","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	_, data, err := ws.Read(ctx)
	if want := `["1","1","topics:matrix","phx_reply",{"status":"ok","response":{}}]`; err != nil || string(data) != want {
		t.Fatalf("join: %s %v, want %s", data, err, want)
	}
	_ = ws.Close(cws.StatusNormalClosure, "")
}

func TestGuardAPIRate(t *testing.T) {
	g := guardHandler(GuardConfig{APIRate: 0.01, APIBurst: 2})
	for i := range 2 {
		if w := serve(g, newRequest("GET", "/api/stats", nil), "192.0.2.1:1"); w.Code != 200 {
			t.Fatalf("request %d = %d", i, w.Code)
		}
	}
	w := serve(g, newRequest("GET", "/api/stats", nil), "192.0.2.1:2")
	response{status: w.Code, body: w.Body.String()}.expectError(t, 429, "too many requests from 192.0.2.1")
	if ra := w.Header().Get("Retry-After"); ra != "100" {
		t.Fatalf("Retry-After %q, want 100", ra)
	}
	// Another address has its own budget; non-API paths are not limited.
	if w := serve(g, newRequest("GET", "/api/stats", nil), "192.0.2.2:1"); w.Code != 200 {
		t.Fatalf("other address = %d", w.Code)
	}
	if w := serve(g, newRequest("GET", "/healthz", nil), "192.0.2.1:1"); w.Code != 200 {
		t.Fatalf("healthz = %d", w.Code)
	}
	if st := g.Stats(); st.RateLimited != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGuardRateAddrsBounded(t *testing.T) {
	g := guardHandler(GuardConfig{APIRate: 1000, APIBurst: 1})
	for i := range maxRateAddrs + 100 {
		ip := net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String()
		serve(g, newRequest("GET", "/api/stats", nil), ip+":1")
	}
	g.rateMu.Lock()
	n := len(g.rates)
	g.rateMu.Unlock()
	if n > maxRateAddrs {
		t.Fatalf("%d addresses tracked, want at most %d", n, maxRateAddrs)
	}
}

func TestGuardBodyLimit(t *testing.T) {
	g := guardHandler(GuardConfig{MaxBodyBytes: 10})
	w := serve(g, newRequest("POST", "/api/topics", strings.NewReader(`{"name":"a long name"}`)), "127.0.0.1:1")
	response{status: w.Code, body: w.Body.String()}.expectError(t, 413, "larger than 10 bytes")
	// Without a Content-Length, the body is cut off as it is read.
	r := newRequest("POST", "/api/topics", io.MultiReader(strings.NewReader(`{"name":"a long name"}`)))
	r.ContentLength = -1
	w = serve(g, r, "127.0.0.1:1")
	if w.Code != 413 {
		t.Fatalf("chunked = %d", w.Code)
	}
	if w := serve(g, newRequest("POST", "/api/topics", strings.NewReader(`{}`)), "127.0.0.1:1"); w.Code != 200 {
		t.Fatalf("small body = %d", w.Code)
	}
	if st := g.Stats(); st.TooLarge != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The publish API and the guard answer a body too large with 413 and a
// JSON error, whether the guard or the handler sees it first.
func TestGuardedPublishTooLarge(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	_, _, base := guardedServer(t, n, GuardConfig{MaxBodyBytes: 2 << 20})
	big := `"` + strings.Repeat("x", 3<<20) + `"`
	// As curl does for a large body, the client waits for 100 Continue: the
	// refusal comes before the body is written. (Without it, a client still
	// writing megabytes after the answer may see its write reset instead.)
	request(t, "POST", base+"/api/publish?topic=t", big, "Content-Type", "application/json", "Expect", "100-continue").expectError(t, 413, "larger than")
	over := `"` + strings.Repeat("x", pubsub.DefaultMaxPayload) + `"`
	request(t, "POST", base+"/api/publish?topic=t", over, "Expect", "100-continue").expectError(t, 413, "payload too large")
}

func TestGuardStatsInAPI(t *testing.T) {
	n := startNode(t, pubsub.Config{NodeName: "n1"})
	_, _, base := guardedServer(t, n, GuardConfig{})
	request(t, "GET", base+"/api/stats", "", "Host", "evil.example")
	r := request(t, "GET", base+"/api/stats", "")
	var got NodeStats
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || got.Guard == nil || got.Guard.Host != 1 {
		t.Fatalf("GET /api/stats = %d %s", r.status, r.body)
	}
	if !strings.Contains(r.body, `"refused_host":0`) {
		t.Fatalf("gateway refusals missing: %s", r.body)
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "Application/JSON": true,
		"application/merge-patch+json": true, "text/plain": false, "": false, "application/x-www-form-urlencoded": false,
		"multipart/form-data; boundary=x": false, "text/json": false, "application/json;;": false,
	} {
		if got := isJSON(ct); got != want {
			t.Errorf("isJSON(%q) = %v", ct, got)
		}
	}
}

func TestGuardLogsOncePerWindow(t *testing.T) {
	logs := &syncBuffer{}
	g := guardHandler(GuardConfig{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	for range 50 {
		serve(g, newRequest("GET", "http://evil.example/api/stats", nil), "127.0.0.1:1")
	}
	if n := strings.Count(logs.String(), "request refused"); n != 1 {
		t.Fatalf("%d lines for 50 refusals", n)
	}
	g.logMu.Lock()
	g.logs[refuseHost].at = time.Now().Add(-guardLogEvery)
	g.logMu.Unlock()
	serve(g, newRequest("GET", "http://evil.example/api/stats", nil), "127.0.0.1:1")
	if !strings.Contains(logs.String(), `"suppressed":49`) {
		t.Fatalf("the second line does not count the others:\n%s", logs.String())
	}
}
