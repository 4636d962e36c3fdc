package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// The security tests run ringcast-ws with client authentication: a
// --config of namespace permissions, ES256 client tokens verified with
// --jwt-public-key, and an API key in RINGCAST_API_KEY, with no
// notification system (--store memory).

const (
	securityAPIKey = "shop-servers-key-0123456789abcdef"
	securityConfig = `# The namespaces of the security tests.
[default]
subscribe = "anyone"
publish = "clients"

[namespaces.admin]
subscribe = "claim"
publish = "api"
history = false
anonymous = false

[namespaces.feed]
history = false
`
)

// secured is a running ringcast-ws with client authentication.
type secured struct {
	addr   string
	key    *ecdsa.PrivateKey // signs the clients' tokens
	keyPEM []byte            // its public key, as --jwt-public-key reads it
}

// startSecured runs ringcast-ws with the config, key and API key above.
func startSecured(t *testing.T) *secured {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &secured{key: key, keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
	dir := t.TempDir()
	keyFile, cfgFile := filepath.Join(dir, "client-tokens.pem"), filepath.Join(dir, "ringcast.toml")
	if err := os.WriteFile(keyFile, s.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte(securityConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, "ringcast-ws", wsBinary, []string{"RINGCAST_API_KEY=" + securityAPIKey},
		"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0",
		"--shutdown-timeout", shutdownTimeout.String(), "--failure-detection", "fast",
		"--store", "memory", "--config", cfgFile, "--jwt-public-key", keyFile)
	p.waitReady()
	s.addr = p.addr("listen")
	return s
}

// token signs an ES256 client token for user, granting channels.
func (s *secured) token(t testing.TB, user string, ttl time.Duration, channels ...string) string {
	t.Helper()
	c := jwt.MapClaims{"sub": user, "exp": time.Now().Add(ttl).Unix(), "iat": time.Now().Add(-time.Minute).Unix()}
	if channels != nil {
		c["channels"] = channels
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publish POSTs a message to topic with the headers, and returns the
// status and body.
func (s *secured) publish(t testing.TB, topic string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+s.addr+"/api/publish?topic="+topic, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// dialRefused requires the gateway to refuse an upgrade with token with
// 401.
func (s *secured) dialRefused(t *testing.T, what, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ws, resp, err := cws.Dial(ctx, "ws://"+s.addr+"/socket/websocket?vsn=2.0.0&token="+token, &cws.DialOptions{HTTPClient: httpClient})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err == nil {
		_ = ws.CloseNow()
		t.Fatalf("%s: the gateway accepted the connection", what)
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s: %v; want 401", what, err)
	}
}

// TestSecurityTokensAndAPI: the binary refuses expired, forged and
// alg-confused tokens at the upgrade, and POST /api/publish to an
// api-only namespace without its API key.
func TestSecurityTokensAndAPI(t *testing.T) {
	s := startSecured(t)
	for what, tok := range map[string]string{
		"an expired token": s.token(t, "bob", -time.Hour, "admin:billing"),
		"a token of another key": func() string {
			other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(other)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}(),
		"an HS256 token signed with the public key": func() string {
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix(), "channels": []string{"admin:*"}}).SignedString(s.keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}(),
	} {
		s.dialRefused(t, what, tok)
	}
	// A valid token connects.
	dialToken(t, "bob", s.addr, s.token(t, "bob", time.Hour), true)

	for _, tc := range []struct {
		what   string
		topic  string
		header map[string]string
		status int
	}{
		{"no key", "admin:billing", nil, http.StatusUnauthorized},
		{"a wrong key", "admin:billing", map[string]string{"X-API-Key": "not-the-shop-key-0123456789abcdef"}, http.StatusUnauthorized},
		{"a user's token", "admin:billing", map[string]string{"Authorization": "Bearer " + s.token(t, "bob", time.Hour, "admin:billing")}, http.StatusForbidden},
		{"the key", "admin:billing", map[string]string{"X-API-Key": securityAPIKey}, http.StatusOK},
		{"the key as a bearer", "admin:billing", map[string]string{"Authorization": "Bearer " + securityAPIKey}, http.StatusOK},
		{"no key, an open topic", "topics:matrix", nil, http.StatusOK},
	} {
		if status, body := s.publish(t, tc.topic, tc.header, `{"amount":1}`); status != tc.status {
			t.Errorf("POST /api/publish to %s with %s: %d %s; want %d", tc.topic, tc.what, status, body, tc.status)
		}
	}
}

// joinReply joins topic with payload and returns the reply's status and
// reason.
func joinReply(c *wsClient, ref, topic, payload string) (string, string) {
	c.t.Helper()
	c.send(`["` + ref + `","` + ref + `","` + topic + `","phx_join",` + payload + `]`)
	var r struct {
		Reason string `json:"reason"`
	}
	status := c.reply(ref, &r)
	return status, r.Reason
}

// TestSecurityJoinsAndPublishes: the gateway asks the namespace policy
// about every join, history read and publish, and refuses with a Phoenix
// error reply on a socket that stays open: an anonymous join of
// admin:billing, a client's forged publish there, a join with since where
// history is off, a topic the token's channels claim does not grant.
func TestSecurityJoinsAndPublishes(t *testing.T) {
	s := startSecured(t)

	anon := dial(t, "anonymous", s.addr)
	if status, reason := joinReply(anon, "1", "admin:billing", `{}`); status != "error" || reason != "unauthorized" {
		t.Fatalf("anonymous join of admin:billing: %s %q; want error unauthorized", status, reason)
	}
	if status, reason := joinReply(anon, "2", "feed:news", `{"since":0}`); status != "error" || reason != "history not allowed" {
		t.Fatalf("anonymous join of feed:news with since: %s %q; want error \"history not allowed\"", status, reason)
	}
	// The socket is still open, and open topics work as before.
	anon.send(`[null,"3","phoenix","heartbeat",{}]`)
	anon.expect(`[null,"3","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	if status, _ := joinReply(anon, "4", "feed:news", `{}`); status != "ok" {
		t.Fatalf("anonymous live join of feed:news: %s", status)
	}

	bob := dialToken(t, "bob", s.addr, s.token(t, "bob", time.Hour, "admin:billing"), true)
	if status, reason := joinReply(bob, "1", "admin:payroll", `{}`); status != "error" || !strings.HasPrefix(reason, "forbidden") {
		t.Fatalf("bob's join of admin:payroll (not in his channels): %s %q; want error forbidden", status, reason)
	}
	if status, reason := joinReply(bob, "2", "admin:billing", `{"since":0}`); status != "error" || reason != "history not allowed" {
		t.Fatalf("bob's join of admin:billing with since: %s %q; want error \"history not allowed\"", status, reason)
	}
	if status, reason := joinReply(bob, "3", "admin:billing", `{}`); status != "ok" {
		t.Fatalf("bob's join of admin:billing: %s %q", status, reason)
	}
	// A forged publish is refused; the API key's goes through, and is the
	// only message bob receives.
	bob.send(`["3","4","admin:billing","publish",["message",{"amount":-1000}]]`)
	var r struct {
		Reason string `json:"reason"`
	}
	if status := bob.reply("4", &r); status != "error" || !strings.HasPrefix(r.Reason, "forbidden") {
		t.Fatalf("bob's publish to admin:billing: %s %q; want error forbidden", status, r.Reason)
	}
	if status, body := s.publish(t, "admin:billing", map[string]string{"X-API-Key": securityAPIKey}, `{"amount":5}`); status != http.StatusOK {
		t.Fatalf("POST /api/publish with the key: %d %s", status, body)
	}
	p := bob.nextEvent("message", nil)
	var got map[string]int
	if err := json.Unmarshal(p.payload, &got); err != nil || got["amount"] != 5 || p.topic != "admin:billing" {
		t.Fatalf("bob received %s on %s; want the API's {\"amount\":5}", p.payload, p.topic)
	}
}
