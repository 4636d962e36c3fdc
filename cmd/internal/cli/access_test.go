package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ringcast/ringcast/cmd/internal/access"
	"github.com/ringcast/ringcast/cmd/internal/notify"
	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/store/pgtest"
)

const (
	testAPIKey    = "0123456789abcdef0123456789abcdef"
	testJWTSecret = "an application's secret, 32 bytes or more"
	testConfig    = `[default]
publish = "clients"

[namespaces.admin]
subscribe = "claim"
publish = "api"
history = false
anonymous = false

[namespaces.rooms]
publish = "authenticated"
`
)

// accessCommand is a command with the flags of ringcast-ws's access.
func accessCommand() *Command {
	c := NewCommand("ringcast-test", "")
	c.DeclareNotify()
	c.DeclareAccess()
	return c
}

// writeFile writes a file in a directory of the test's own.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// hsToken signs an HS256 token for user with the test secret.
func hsToken(t testing.TB, user string, ttl time.Duration, channels ...string) string {
	t.Helper()
	c := jwt.MapClaims{"sub": user, "exp": time.Now().Add(ttl).Unix()}
	if channels != nil {
		c["channels"] = channels
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestClientAuthConfigured: each flag of client authentication turns it
// on; none leaves it off.
func TestClientAuthConfigured(t *testing.T) {
	cfg := writeFile(t, "ringcast.toml", testConfig)
	ecPEM := writeECKey(t)
	for _, tc := range []struct {
		args []string
		vars map[string]string
		want bool
	}{
		{nil, nil, false},
		{[]string{"--anonymous=true"}, nil, false},
		{[]string{"--anonymous=false"}, nil, true},
		{[]string{"--jwt-secret", testJWTSecret}, nil, true},
		{nil, map[string]string{"RINGCAST_JWT_SECRET": testJWTSecret}, true},
		{[]string{"--jwt-public-key", ecPEM}, nil, true},
		{nil, map[string]string{"RINGCAST_API_KEY": testAPIKey}, true},
		{[]string{"--config", cfg}, nil, true},
		{nil, map[string]string{"RINGCAST_CONFIG": cfg}, true},
	} {
		c := accessCommand()
		if err := c.Parse(tc.args, env(tc.vars)); err != nil {
			t.Fatalf("%q %v: %v", tc.args, tc.vars, err)
		}
		if got := c.ClientAuthConfigured(); got != tc.want {
			t.Errorf("%q %v: ClientAuthConfigured = %v, want %v", tc.args, tc.vars, got, tc.want)
		}
	}
	if NewCommand("ringcast-topic", "").ClientAuthConfigured() {
		t.Error("a command without the flags has client authentication")
	}
}

// writeECKey writes the PEM public key of a new ECDSA P-256 key.
func writeECKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
}

// TestAccessFlagErrors: a bad config, key file or API key stops the
// command at start with exit status 2 and a message naming the file and
// line.
func TestAccessFlagErrors(t *testing.T) {
	bad := writeFile(t, "ringcast.toml", "[default]\nhistory = true\n\n[namespaces.admin]\npublish = \"everyone\"\n")
	notPEM := writeFile(t, "key.pem", "hello")
	jwks := writeFile(t, "jwks.json", `{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`)
	for _, tc := range []struct {
		args []string
		vars map[string]string
		want string
	}{
		{[]string{"--config", bad}, nil, bad + `:5: namespace "admin": publish: unknown value "everyone" (want clients, authenticated, claim, creator or api)`},
		{nil, map[string]string{"RINGCAST_CONFIG": bad}, bad + ":5: "},
		{[]string{"--config", filepath.Join(t.TempDir(), "none.toml")}, nil, "none.toml: no such file"},
		{[]string{"--jwt-public-key", notPEM}, nil, "--jwt-public-key: " + notPEM + ": no PEM block"},
		{[]string{"--jwks", jwks}, nil, "--jwks: " + jwks + ": key 1: no kid"},
		{[]string{"--api-key", "short"}, nil, "--api-key: key 1 has 5 bytes"},
		{nil, map[string]string{"RINGCAST_API_KEY": testAPIKey + ",,"}, "--api-key: key 2 is empty"},
		{[]string{"--jwt-audience", "ringcast"}, nil, "--jwt-audience and --jwt-issuer need a key"},
	} {
		c := accessCommand()
		var stdout, stderr bytes.Buffer
		ran := false
		code := c.Main(tc.args, env(tc.vars), &stdout, &stderr, func(*Env) error { ran = true; return nil })
		if code != 2 || ran || !strings.HasPrefix(stderr.String(), "ringcast-test: ") || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q %v: exit %d, ran %v, stderr %q; want 2 and %q", tc.args, tc.vars, code, ran, stderr.String(), tc.want)
		}
	}
}

// TestAccessUsage: --help shows the flags, and says that --api-key shows
// in ps.
func TestAccessUsage(t *testing.T) {
	c := accessCommand()
	var b bytes.Buffer
	c.Usage(&b)
	out := b.String()
	for _, want := range []string{"--config string", "env RINGCAST_CONFIG", "--jwt-public-key string", "--jwks string",
		"--jwt-audience string", "--jwt-issuer string", "--api-key string", "env RINGCAST_API_KEY", "flags show in ps"} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

// testAccess parses args into an Access without the notification system.
func testAccess(t *testing.T, args ...string) *Access {
	t.Helper()
	c := accessCommand()
	if err := c.Parse(args, env(nil)); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	return (&Env{Log: NewLogger(&logs, LogJSON, 0), cmd: c}).Access(nil)
}

// TestAccessAuthenticate: a pure gateway (no notification system) with
// --jwt-secret authenticates JWTs, carrying their claims; bad tokens are
// refused; no token is anonymous.
func TestAccessAuthenticate(t *testing.T) {
	a := testAccess(t, "--jwt-secret", testJWTSecret)
	ctx := context.Background()
	id, err := a.Authenticate(ctx, hsToken(t, "alice", time.Hour, "admin:*"))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := id.Data.(*access.Claims)
	if id.User != "alice" || !ok || !c.Grants("admin:billing") {
		t.Fatalf("identity %+v", id)
	}
	for name, tok := range map[string]string{
		"expired": hsToken(t, "alice", -time.Hour),
		"opaque":  "b3BhcXVlLXRva2Vu",
		"garbage": "a.b.c",
	} {
		if _, err := a.Authenticate(ctx, tok); !errors.Is(err, access.ErrUnauthorized) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if id, err := a.Authenticate(ctx, ""); err != nil || !id.Anonymous() {
		t.Errorf("no token: %+v %v", id, err)
	}
	// Without a key no JWT is accepted.
	if _, err := testAccess(t).Authenticate(ctx, hsToken(t, "alice", time.Hour)); !errors.Is(err, access.ErrUnauthorized) {
		t.Errorf("JWT without a key: %v", err)
	}
	// The gateway gets both hooks; without a way to check tokens, it
	// ignores them as before.
	var o gateway.Options
	a.GatewayOptions(&o)
	if o.AuthenticateConn == nil || o.Authorize == nil {
		t.Fatal("GatewayOptions left a hook unset")
	}
	var open gateway.Options
	testAccess(t).GatewayOptions(&open)
	if open.AuthenticateConn != nil || open.Authorize == nil {
		t.Fatal("without keys, GatewayOptions checks tokens")
	}
	cfg := writeFile(t, "ringcast.toml", testConfig)
	b := testAccess(t, "--config", cfg)
	b.GatewayOptions(&o)
	if err := o.Authorize(gateway.Request{Action: gateway.ActionSubscribe, Topic: "admin:billing"}); err == nil {
		t.Error("anonymous join of admin:billing allowed")
	}
}

// TestPublishAuthorization: POST /api/publish with the policy of a
// config: an API key publishes anywhere, a token as its namespace allows,
// anonymous requests only where the namespace is open.
func TestPublishAuthorization(t *testing.T) {
	n := startNode(t, pubsub.Config{})
	cfg := writeFile(t, "ringcast.toml", testConfig)
	a := testAccess(t, "--config", cfg, "--jwt-secret", testJWTSecret, "--api-key", "old-key-0123456789abcdef,"+testAPIKey)
	apiCfg := APIConfig{Publish: true, Reserved: NotifyPrefixes()}
	a.APIConfig(&apiCfg)
	_, base := apiServer(t, n, apiCfg)
	alice := hsToken(t, "alice", time.Hour)
	billing := hsToken(t, "bob", time.Hour, "admin:billing")
	for _, tc := range []struct {
		name   string
		topic  string
		header map[string]string
		status int
		want   string
	}{
		{"anonymous, api namespace", "admin:billing", nil, http.StatusUnauthorized, "unauthorized"},
		{"bad X-API-Key", "admin:billing", map[string]string{"X-API-Key": "wrong-key-0123456789abcdef"}, http.StatusUnauthorized, "X-API-Key"},
		{"X-API-Key", "admin:billing", map[string]string{"X-API-Key": testAPIKey}, http.StatusOK, ""},
		{"old key", "admin:billing", map[string]string{"X-API-Key": "old-key-0123456789abcdef"}, http.StatusOK, ""},
		{"bearer API key", "admin:billing", map[string]string{"Authorization": "Bearer " + testAPIKey}, http.StatusOK, ""},
		{"user token, api namespace", "admin:billing", map[string]string{"Authorization": "Bearer " + alice}, http.StatusForbidden, "forbidden: only the HTTP API"},
		{"claim token, api namespace", "admin:billing", map[string]string{"Authorization": "Bearer " + billing}, http.StatusForbidden, "forbidden"},
		{"bad bearer", "admin:billing", map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized, "neither an API key nor a valid token"},
		{"expired token", "rooms:1", map[string]string{"Authorization": "Bearer " + hsToken(t, "alice", -time.Hour)}, http.StatusUnauthorized, "expired"},
		{"anonymous, authenticated namespace", "rooms:1", nil, http.StatusUnauthorized, "needs a token to publish"},
		{"user, authenticated namespace", "rooms:1", map[string]string{"Authorization": "Bearer " + alice}, http.StatusOK, ""},
		{"anonymous, open topic", "topics:matrix", nil, http.StatusOK, ""},
		{"API key, reserved", "notifications:x", map[string]string{"X-API-Key": testAPIKey}, http.StatusForbidden, "reserved"},
	} {
		req, err := http.NewRequest(http.MethodPost, base+"/api/publish?topic="+tc.topic, strings.NewReader(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(body.String(), tc.want) {
			t.Errorf("%s: %d %s, want %d and %q", tc.name, resp.StatusCode, body.String(), tc.status, tc.want)
		}
		if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}

	// Where no token and no key can be checked, a bearer token is ignored,
	// as before.
	openCfg := APIConfig{Publish: true}
	testAccess(t).APIConfig(&openCfg)
	_, open := apiServer(t, n, openCfg)
	req, err := http.NewRequest(http.MethodPost, open+"/api/publish?topic=topics:matrix", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer some-app-token")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("open gateway, unchecked bearer: %d", resp.StatusCode)
	}
}

// TestTopicListingNeedsAPIKey: with API keys configured, the cluster's
// topic listing names every topic to API key holders only; without them it
// stays open (the listener's protection guards it).
func TestTopicListingNeedsAPIKey(t *testing.T) {
	n := startNode(t, pubsub.Config{})
	if _, err := n.Publish(t.Context(), "admin:billing", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	get := func(base string, header map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/api/cluster/topics", nil)
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
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		return resp.StatusCode, body.String()
	}
	keyed := APIConfig{}
	testAccess(t, "--jwt-secret", testJWTSecret, "--api-key", testAPIKey).APIConfig(&keyed)
	_, base := apiServer(t, n, keyed)
	for name, header := range map[string]map[string]string{
		"anonymous":  nil,
		"user token": {"Authorization": "Bearer " + hsToken(t, "alice", time.Hour)},
		"wrong key":  {"X-API-Key": "wrong-key-0123456789abcdef"},
	} {
		if status, body := get(base, header); status != http.StatusUnauthorized || strings.Contains(body, "admin:billing") {
			t.Errorf("%s: %d %s, want 401 naming no topic", name, status, body)
		}
	}
	for name, header := range map[string]map[string]string{
		"X-API-Key":      {"X-API-Key": testAPIKey},
		"bearer API key": {"Authorization": "Bearer " + testAPIKey},
	} {
		if status, body := get(base, header); status != http.StatusOK || !strings.Contains(body, "admin:billing") {
			t.Errorf("%s: %d %s, want 200 with the topic", name, status, body)
		}
	}
	open := APIConfig{}
	testAccess(t, "--jwt-secret", testJWTSecret).APIConfig(&open)
	_, base = apiServer(t, n, open)
	if status, body := get(base, nil); status != http.StatusOK || !strings.Contains(body, "admin:billing") {
		t.Errorf("without API keys: %d %s, want 200 with the topic", status, body)
	}
}

// TestTokenCheckUnavailable: when the notification system's database (a
// PostgreSQL server the test stops) is down, a token cannot be checked: POST /api/publish answers 503 with
// Retry-After, not 401, and the gateway's authentication says
// gateway.ErrUnavailable, so that clients retry instead of dropping a
// token that may be good.
func TestTokenCheckUnavailable(t *testing.T) {
	pg := pgtest.Start(t)
	n := startNode(t, pubsub.Config{})
	db, err := notify.OpenDB(t.Context(), pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	c := accessCommand()
	if err := c.Parse([]string{"--api-key", testAPIKey}, env(nil)); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	a := (&Env{Log: NewLogger(&logs, LogJSON, 0), cmd: c}).Access(&Notify{DB: db, Service: notify.NewService(db, nil, notify.Options{})})
	apiCfg := APIConfig{Publish: true}
	a.APIConfig(&apiCfg)
	_, base := apiServer(t, n, apiCfg)
	publish := func() *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+"/api/publish?topic=rooms:1", strings.NewReader(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer not-a-known-token")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	if resp := publish(); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown token with the database up: %d, want 401", resp.StatusCode)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(t.Context(), "not-a-known-token"); !errors.Is(err, gateway.ErrUnavailable) {
		t.Fatalf("Authenticate with the database down: %v, want gateway.ErrUnavailable", err)
	}
	if resp := publish(); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("unknown token with the database down: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
