package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	cws "github.com/coder/websocket"
)

// upgrade sends a WebSocket upgrade request to g naming host (the Host
// header) and origin, and returns the status and body of the answer: 101
// when the gateway upgraded.
func (g *gateway) upgrade(host, origin string) (int, string) {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.srv.URL+socketPath+"?vsn=2.0.0", nil)
	if err != nil {
		g.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := httpClient().Do(req)
	if err != nil {
		g.t.Fatalf("upgrade: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A DNS-rebinding page names its own host in both Host and Origin, which a
// same-origin check alone accepts: the Host check refuses it.
func TestDNSRebindingRefused(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	status, body := g.upgrade("evil.example", "http://evil.example")
	if status != http.StatusForbidden || !strings.Contains(body, `host "evil.example" not allowed`) {
		t.Fatalf("rebinding upgrade = %d %q, want 403 naming the host", status, body)
	}
	if st := g.h.Stats(); st.RefusedHost != 1 || st.Refused != 1 || st.Accepted != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The same with a port, and a trailing dot.
	if status, _ := g.upgrade("evil.example:4000", "http://evil.example:4000"); status != http.StatusForbidden {
		t.Fatalf("rebinding upgrade with a port = %d", status)
	}
	if status, _ := g.upgrade("evil.example.", ""); status != http.StatusForbidden {
		t.Fatalf("rebinding upgrade with a trailing dot = %d", status)
	}
	// Loopback names and IP addresses are served.
	for _, host := range []string{"localhost:4000", "app.localhost", "127.0.0.1:4000", "[::1]:4000", "192.0.2.7", ""} {
		if status, body := g.upgrade(host, ""); status != http.StatusSwitchingProtocols {
			t.Fatalf("Host %q = %d %q, want 101", host, status, body)
		}
	}
}

func TestAllowedHosts(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{
		AllowedHosts:   []string{"ws.example.com", "bad[", "*.internal:4000"},
		OriginPatterns: []string{"app.example.com"},
	})
	for host, want := range map[string]int{
		"ws.example.com":      http.StatusSwitchingProtocols,
		"WS.Example.COM:443":  http.StatusSwitchingProtocols,
		"app.example.com":     http.StatusSwitchingProtocols, // the hosts of OriginPatterns
		"a.internal:4000":     http.StatusSwitchingProtocols,
		"a.internal:4001":     http.StatusForbidden,
		"evil.example":        http.StatusForbidden,
		"ws.example.com.evil": http.StatusForbidden,
	} {
		if status, body := g.upgrade(host, ""); status != want {
			t.Errorf("Host %q = %d %q, want %d", host, status, body, want)
		}
	}
}

func TestInsecureSkipVerifyAllowsAnyHost(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{InsecureSkipVerify: true})
	if status, body := g.upgrade("evil.example", "http://other.example"); status != http.StatusSwitchingProtocols {
		t.Fatalf("= %d %q, want 101", status, body)
	}
}

func TestOriginRefused(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{OriginPatterns: []string{"app.example.com", "*.trusted.example"}})
	host := g.srv.Listener.Addr().String()
	for origin, want := range map[string]int{
		"http://" + host:                http.StatusSwitchingProtocols, // same origin
		"https://app.example.com":       http.StatusSwitchingProtocols,
		"https://app.example.com:8443":  http.StatusSwitchingProtocols,
		"https://x.trusted.example":     http.StatusSwitchingProtocols,
		"https://evil.example":          http.StatusForbidden,
		"https://app.example.com.evil":  http.StatusForbidden,
		"null":                          http.StatusForbidden,
		"not a url":                     http.StatusForbidden,
		"https://app.example.com@evil/": http.StatusForbidden,
	} {
		if status, body := g.upgrade("", origin); status != want {
			t.Errorf("Origin %q = %d %q, want %d", origin, status, body, want)
		}
	}
	if st := g.h.Stats(); st.RefusedOrigin != 5 {
		t.Fatalf("RefusedOrigin = %d, want 5", st.RefusedOrigin)
	}
}

func TestMaxConnsPerAddr(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{MaxConnsPerAddr: 3})
	var cs []*client
	for range 3 {
		cs = append(cs, g.dial())
	}
	status, body := g.upgrade("", "")
	if status != http.StatusTooManyRequests || !strings.Contains(body, "too many connections from 127.0.0.1") {
		t.Fatalf("4th connection = %d %q, want 429", status, body)
	}
	waitFor(t, testTimeout, "3 connections", func() bool { return g.h.Stats().Connections == 3 })
	if st := g.h.Stats(); st.RefusedConnLimit != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A closed connection frees its place.
	_ = cs[0].ws.Close(cws.StatusNormalClosure, "")
	waitFor(t, testTimeout, "the connection to be gone", func() bool { return g.h.Stats().Connections == 2 })
	c := g.dial()
	c.join("1", "t:again")
	g.h.mu.Lock()
	n := g.h.perAddr["127.0.0.1"]
	g.h.mu.Unlock()
	if n != 3 {
		t.Fatalf("perAddr = %d, want 3", n)
	}
}

// Without a bound, one address may open many connections.
func TestMaxConnsPerAddrOff(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{MaxConnsPerAddr: -1})
	for range 5 {
		g.dial()
	}
	if len(g.h.perAddr) != 0 {
		t.Fatalf("perAddr tracked without a bound: %v", g.h.perAddr)
	}
}

func TestPublishRateLimit(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{PublishRate: 0.001, PublishBurst: 5})
	c := g.dial()
	c.join("1", "t:rl")
	const sent = 20
	for i := range sent {
		c.send(`["1","p` + strconv.Itoa(i) + `","t:rl","publish",["e",{"n":` + strconv.Itoa(i) + `}]]`)
	}
	ok, limited := 0, 0
	for ok+limited < sent {
		_, data := c.read()
		msg := string(data)
		switch {
		case strings.Contains(msg, `"status":"ok"`):
			ok++
		case strings.Contains(msg, `{"reason":"rate limited"}`):
			limited++
		case strings.Contains(msg, `"e",{"n":`): // a broadcast
		default:
			t.Fatalf("unexpected %s", msg)
		}
	}
	if ok != 5 || limited != sent-5 {
		t.Fatalf("%d ok and %d rate limited, want 5 and %d", ok, limited, sent-5)
	}
	// The socket stays open and serves.
	c.send(`[null,"h","phoenix","heartbeat",{}]`)
	for {
		_, data := c.read()
		if string(data) == okReply("", "h", "phoenix") {
			break
		}
	}
	if st := g.h.Stats(); st.RateLimitedPublishes != sent-5 || st.Publishes != 5 || st.FloodClosed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestJoinRateLimit(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{JoinRate: 0.001, JoinBurst: 2})
	c := g.dial()
	c.join("1", "t:a")
	c.join("2", "t:b")
	c.send(`["3","3","t:c","phx_join",{}]`)
	c.expect(errReply("3", "3", "t:c", "rate limited"))
	if st := g.h.Stats(); st.RateLimitedJoins != 1 || st.Joins != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// userOpts authenticates the token as the user of that name.
func userOpts(o *Options) *Options {
	o.AuthenticateConn = func(_ *http.Request, token string) (Identity, error) { return Identity{User: token}, nil }
	return o
}

func TestUserRateLimitShared(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), userOpts(&Options{PublishRate: -1, UserPublishRate: 0.001, UserPublishBurst: 3}))
	a := dialURL(t, g.url+"&token=ann", nil)
	b := dialURL(t, g.url+"&token=ann", nil)
	other := dialURL(t, g.url+"&token=bob", nil)
	for _, c := range []*client{a, b, other} {
		c.join("1", "t:u")
	}
	publish := func(c *client, ref string) string {
		c.send(`["1","` + ref + `","t:u","publish",["e",{}]]`)
		for {
			_, data := c.read()
			if msg := string(data); strings.Contains(msg, `"phx_reply"`) {
				return msg
			}
		}
	}
	for i, c := range []*client{a, b, a} {
		if msg := publish(c, "p"+strconv.Itoa(i)); msg != okReply("1", "p"+strconv.Itoa(i), "t:u") {
			t.Fatalf("publish %d: %s", i, msg)
		}
	}
	if msg := publish(b, "p3"); msg != errReply("1", "p3", "t:u", "rate limited") {
		t.Fatalf("4th publish of the user: %s", msg)
	}
	// Another user has budget of its own.
	if msg := publish(other, "q"); msg != okReply("1", "q", "t:u") {
		t.Fatalf("other user: %s", msg)
	}
	if n := g.h.users.size(); n != 2 {
		t.Fatalf("%d users tracked, want 2", n)
	}
}

func TestUserLimitsBounded(t *testing.T) {
	u := newUserLimits(bucket{r: 1, burst: 1}, bucket{})
	for i := range maxIdleUsers + 10 {
		name := "u" + strconv.Itoa(i)
		u.release(name, u.acquire(name))
	}
	live := u.acquire("live")
	if n := u.size(); n > maxIdleUsers+1 {
		t.Fatalf("%d users kept, want at most %d", n, maxIdleUsers+1)
	}
	u.mu.Lock()
	idle := u.idle
	u.mu.Unlock()
	if idle > maxIdleUsers || idle != u.size()-1 {
		t.Fatalf("idle = %d, size %d", idle, u.size())
	}
	// A user with a connection is never forgotten.
	for i := range 2 * maxIdleUsers {
		name := "v" + strconv.Itoa(i)
		u.release(name, u.acquire(name))
	}
	if again := u.acquire("live"); again != live {
		t.Fatal("the limits of a connected user were dropped")
	}
}

// A client that keeps sending far past its limit is closed with a reason.
func TestFloodClosesConnection(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{PublishRate: 0.001, PublishBurst: 1})
	c := g.dial()
	c.join("1", "t:flood")
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		for i := range floodRefusalBurst + 100 {
			if c.ws.Write(ctx, cws.MessageText, []byte(`["1","`+strconv.Itoa(i)+`","t:flood","publish",["e",{}]]`)) != nil {
				return
			}
		}
	}()
	c.expectClose(cws.StatusPolicyViolation, reasonFlood)
	<-done
	if st := g.h.Stats(); st.FloodClosed != 1 || st.RateLimitedPublishes < floodRefusalBurst {
		t.Fatalf("stats %+v", st)
	}
}

// recordingAuth refuses what its rules say and records every Request.
type recordingAuth struct {
	mu   sync.Mutex
	reqs []Request
}

func (a *recordingAuth) authorize(r Request) error {
	a.mu.Lock()
	a.reqs = append(a.reqs, r)
	a.mu.Unlock()
	switch {
	case strings.HasPrefix(r.Topic, "secret:"):
		return Refuse("forbidden: " + r.Topic)
	case r.Topic == "t:nohistory" && r.Action == ActionHistory:
		return errors.New("no history for you")
	case strings.HasPrefix(r.Topic, "ro:") && r.Action == ActionPublish:
		return Refuse("read-only topic")
	case r.Topic == "t:panic":
		panic("policy bug")
	}
	return nil
}

func (a *recordingAuth) actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.reqs {
		out = append(out, r.Action.String()+" "+r.Topic)
	}
	return out
}

func TestAuthorize(t *testing.T) {
	auth := &recordingAuth{}
	g := newGateway(t, NewMemoryBroker(), userOpts(&Options{Authorize: auth.authorize}))
	c := dialURL(t, g.url+"&token=ann", &cws.DialOptions{HTTPHeader: http.Header{"X-Tenant": {"acme"}}})

	c.send(`["1","1","secret:plans","phx_join",{}]`)
	c.expect(errReply("1", "1", "secret:plans", "forbidden: secret:plans"))
	c.send(`["2","2","t:nohistory","phx_join",{"since":0}]`)
	c.expect(errReply("2", "2", "t:nohistory", "unauthorized"))
	c.join("3", "ro:news")
	c.send(`["3","4","ro:news","publish",["e",{}]]`)
	c.expect(errReply("3", "4", "ro:news", "read-only topic"))
	c.send(`["5","5","t:panic","phx_join",{}]`)
	c.expect(errReply("5", "5", "t:panic", "unauthorized"))
	// Allowed: a resuming join asks subscribe then history; a publish.
	c.send(`["6","6","t:ok","phx_join",{"since":0}]`)
	c.expect(`["6","6","t:ok","phx_reply",{"status":"ok","response":{"recovered":0,"epoch":"1","seq":0}}]`)
	c.send(`["6","7","t:ok","publish",["e",{}]]`)
	c.expect(`["6","7","t:ok","phx_reply",{"status":"ok","response":{"seq":1}}]`)

	want := []string{
		"subscribe secret:plans",
		"subscribe t:nohistory", "history t:nohistory",
		"subscribe ro:news", "publish ro:news",
		"subscribe t:panic",
		"subscribe t:ok", "history t:ok", "publish t:ok",
	}
	if got := auth.actions(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Authorize asked\n%v\nwant\n%v", got, want)
	}
	auth.mu.Lock()
	r := auth.reqs[0]
	auth.mu.Unlock()
	if r.Identity.User != "ann" || !strings.HasPrefix(r.Remote, "127.0.0.1:") || r.Header.Get("X-Tenant") != "acme" {
		t.Fatalf("request %+v", r)
	}
	if st := g.h.Stats(); st.Denied != 4 || st.Connections != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Channels decide for themselves: Authorize is not asked about them.
func TestAuthorizeSkipsChannels(t *testing.T) {
	auth := &recordingAuth{}
	g := newGateway(t, NewMemoryBroker(), &Options{
		Authorize: auth.authorize,
		Channels: map[string]Channel{"secret:chan": ChannelFunc(func(context.Context, *Session, string, json.RawMessage) (json.RawMessage, error) {
			return nil, nil
		})},
	})
	c := g.dial()
	c.join("1", "secret:chan")
	if got := auth.actions(); len(got) != 0 {
		t.Fatalf("Authorize asked %v", got)
	}
}

// FuzzHostAllowed feeds untrusted Host and Origin headers, and patterns,
// to the checks: they never panic, a valid pattern allows itself, and
// without patterns only IP addresses and localhost names pass.
func FuzzHostAllowed(f *testing.F) {
	for _, s := range [][3]string{
		{"ws.example.com", "ws.example.com:443", "https://ws.example.com"},
		{"*.example.com", "evil.example", "http://evil.example"},
		{"[", "[::1]:4000", "null"},
		{"*", "", "http://[::1"},
		{"a.internal:4000", "A.INTERNAL.:4000", "https://a.internal:4000/x?y"},
		{"127.0.0.1", "localhost.", "http://user@localhost"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, pattern, host, origin string) {
		patterns := []string{pattern}
		allowed := HostAllowed(patterns, host)
		_ = OriginAllowed(patterns, origin, host)
		if HostAllowed(nil, host) && !allowed {
			t.Fatalf("a pattern made %q less allowed", host)
		}
		if HostAllowed(nil, host) {
			name, ok := hostName(host)
			if !ok {
				t.Fatalf("allowed a malformed host %q", host)
			}
			if name != "localhost" && !strings.HasSuffix(name, ".localhost") && !isIPLiteral(name) {
				t.Fatalf("allowed %q without a pattern", host)
			}
		}
		if ValidateHostPattern(pattern) == nil && !strings.ContainsAny(pattern, "*?[\\") {
			if _, ok := hostName(pattern); ok && !HostAllowed(patterns, pattern) {
				t.Fatalf("pattern %q does not allow itself", pattern)
			}
		}
	})
}

func isIPLiteral(name string) bool {
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"))
	return err == nil
}

// The rate limits cost no allocation per message once a connection's
// limiters exist.
func TestRateLimitAllocs(t *testing.T) {
	h := NewHandler(NewMemoryBroker(), &Options{PublishRate: 1e9, PublishBurst: 1 << 30, UserPublishRate: 1e9, UserPublishBurst: 1 << 30})
	defer h.Close()
	c := newConn(h, 1)
	c.user = h.users.acquire("ann")
	f := &frame{topic: "t", event: eventPublish}
	c.allow(opPublish, f) // makes the limiter
	if n := testing.AllocsPerRun(1000, func() {
		if !c.allow(opPublish, f) {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per publish", n)
	}
	h.users.release("ann", c.user)
	c.cancel()
}
