package notify

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestAccounts(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{TokenTTL: time.Hour})
		e.expect(http.StatusCreated, "POST", "/api/users", "", `{"id":"alice","email":"alice@example.com","password":"correct horse"}`)
		if msg := e.expect(http.StatusConflict, "POST", "/api/users", "", `{"id":"alice","email":"other@example.com","password":"12345678"}`).errMsg(t); !strings.Contains(msg, "taken") {
			t.Errorf("409 says %q", msg)
		}
		for _, body := range []string{
			`{"id":"","email":"a@example.com","password":"12345678"}`,
			`{"id":"Alice","email":"a@example.com","password":"12345678"}`,
			`{"id":"a b","email":"a@example.com","password":"12345678"}`,
			`{"id":"` + strings.Repeat("a", 65) + `","email":"a@example.com","password":"12345678"}`,
			`{"id":"bob","email":"","password":"12345678"}`,
			`{"id":"bob","email":"no-at-sign","password":"12345678"}`,
			`{"id":"bob","email":"Bob <bob@example.com>","password":"12345678"}`,
			`{"id":"bob","email":"` + strings.Repeat("b", 250) + `@example.com","password":"12345678"}`,
			`{"id":"bob","email":"bob@example.com","password":"1234567"}`,
			`{"id":"bob","email":"bob@example.com","password":"` + strings.Repeat("p", 73) + `"}`,
			`{"id":"bob","email":"bob@example.com"}`,
			`{"id":"bob","email":"bob@example.com","password":"12345678","admin":true}`,
			`{"id":"bob","email":"bob@example.com","password":"12345678"} {}`,
			`{"id":1}`,
			`[]`,
			`not json`,
			``,
		} {
			e.expect(http.StatusBadRequest, "POST", "/api/users", "", body).errMsg(t)
		}
		e.expect(http.StatusCreated, "POST", "/api/users", "", `{"id":"b.o-b_1","email":"bob@example.com","password":"`+strings.Repeat("p", 72)+`"}`)

		var tok Token
		e.expect(http.StatusOK, "POST", "/api/tokens", "", `{"id":"alice","password":"correct horse"}`).json(t, &tok)
		if len(tok.Token) != 43 || strings.ContainsAny(tok.Token, "+/=.") {
			t.Errorf("token %q: want 43 base64url characters", tok.Token)
		}
		if want := e.clock.Now().Add(time.Hour); !tok.ExpiresAt.Equal(want) {
			t.Errorf("expires_at %v, want %v", tok.ExpiresAt, want)
		}
		var stored string
		if err := e.db.SQL.QueryRow(e.db.Rebind(`SELECT hash FROM notify_tokens WHERE user_id = ?`), "alice").Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != tokenHash(tok.Token) || len(stored) != 64 {
			t.Errorf("stored %q, not the token's SHA-256", stored)
		}

		wrong := e.expect(http.StatusUnauthorized, "POST", "/api/tokens", "", `{"id":"alice","password":"wrong horse"}`)
		unknown := e.expect(http.StatusUnauthorized, "POST", "/api/tokens", "", `{"id":"nobody","password":"wrong horse"}`)
		if string(wrong.Body) != string(unknown.Body) {
			t.Errorf("wrong password %q and unknown user %q answer differently", wrong.Body, unknown.Body)
		}
		e.expect(http.StatusBadRequest, "POST", "/api/tokens", "", `{"id":"alice"}`)
		e.expect(http.StatusBadRequest, "POST", "/api/tokens", "", `{"id":"alice","password":"x","extra":1}`)

		// The token authenticates; a missing or bad one does not.
		e.expect(http.StatusOK, "GET", "/api/inbox", tok.Token, "")
		r := e.expect(http.StatusUnauthorized, "GET", "/api/inbox", "", "")
		if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
			t.Errorf("WWW-Authenticate %q", h)
		}
		r = e.expect(http.StatusUnauthorized, "GET", "/api/inbox", "not-a-token", "")
		if h := r.Header.Get("WWW-Authenticate"); !strings.Contains(h, "invalid_token") {
			t.Errorf("WWW-Authenticate %q", h)
		}
		e.expect(http.StatusUnauthorized, "GET", "/api/inbox", strings.Repeat("x", maxTokenLen+1), "")
		user, err := e.svc.Authenticate(context.Background(), tok.Token)
		if err != nil || user != "alice" {
			t.Fatalf("Authenticate: %q %v", user, err)
		}

		// Revocation.
		var second Token
		e.expect(http.StatusOK, "POST", "/api/tokens", "", `{"id":"alice","password":"correct horse"}`).json(t, &second)
		e.expect(http.StatusNoContent, "DELETE", "/api/tokens/current", tok.Token, "")
		e.expect(http.StatusUnauthorized, "GET", "/api/inbox", tok.Token, "")
		e.expect(http.StatusUnauthorized, "DELETE", "/api/tokens/current", tok.Token, "")
		e.expect(http.StatusOK, "GET", "/api/inbox", second.Token, "")
		wantErr(t, e.svc.RevokeToken(context.Background(), tok.Token), ErrUnauthorized)

		// Expiry.
		e.clock.Advance(time.Hour)
		e.expect(http.StatusUnauthorized, "GET", "/api/inbox", second.Token, "")
		// A new login removes the expired tokens.
		e.expect(http.StatusOK, "POST", "/api/tokens", "", `{"id":"alice","password":"correct horse"}`)
		var n int
		if err := e.db.SQL.QueryRow(e.db.Rebind(`SELECT count(*) FROM notify_tokens WHERE user_id = ?`), "alice").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%d tokens kept, want 1", n)
		}

		email, err := e.svc.Email(context.Background(), "alice")
		if err != nil || email != "alice@example.com" {
			t.Errorf("Email: %q %v", email, err)
		}
		_, err = e.svc.Email(context.Background(), "nobody")
		wantErr(t, err, ErrNotFound)
	})
}

func TestLoginRateLimit(t *testing.T) {
	e := newTestEnv(t, TestSQLite, Options{LoginAttempts: 3, LoginWindow: time.Minute})
	e.expect(http.StatusCreated, "POST", "/api/users", "", `{"id":"alice","email":"alice@example.com","password":"correct horse"}`)
	for range 3 {
		e.expect(http.StatusUnauthorized, "POST", "/api/tokens", "", `{"id":"alice","password":"wrong horse"}`)
	}
	r := e.expect(http.StatusTooManyRequests, "POST", "/api/tokens", "", `{"id":"alice","password":"correct horse"}`)
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	e.clock.Advance(time.Minute)
	e.expect(http.StatusOK, "POST", "/api/tokens", "", `{"id":"alice","password":"correct horse"}`)

	// Per user, from many addresses.
	e.clock.Advance(time.Minute)
	for i := range 4 {
		req := `{"id":"alice","password":"wrong horse"}`
		want := http.StatusUnauthorized
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		r := e.doFrom("198.51.100."+itoa(uint64(i+1))+":4000", "POST", "/api/tokens", req)
		if r.Status != want {
			t.Fatalf("attempt %d: %d, want %d", i, r.Status, want)
		}
	}
	// Sign-ups per address.
	e.clock.Advance(time.Minute)
	for i := range 4 {
		want := http.StatusCreated
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		r := e.doFrom("203.0.113.9:1", "POST", "/api/users", `{"id":"u`+itoa(uint64(i))+`","email":"u@example.com","password":"12345678"}`)
		if r.Status != want {
			t.Fatalf("sign-up %d: %d, want %d", i, r.Status, want)
		}
	}
}

func TestJWT(t *testing.T) {
	secret := []byte("a secret of the application, long enough")
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{JWTSecret: secret, JWTLeeway: 5 * time.Second})
		now := e.clock.Now()
		sign := func(m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
			t.Helper()
			s, err := jwt.NewWithClaims(m, claims).SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		good := sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "appuser", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
		// A JWT user needs no account here.
		in := e.inbox(good)
		if in.Unread != 0 || len(in.Topics) != 0 {
			t.Errorf("inbox %+v", in)
		}
		e.topic(good, "app-topic")
		if user, err := e.svc.Authenticate(context.Background(), good); err != nil || user != "appuser" {
			t.Fatalf("Authenticate: %q %v", user, err)
		}
		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "appuser", "exp": now.Add(time.Hour).Unix()}).
			SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		for name, tok := range map[string]string{
			"alg none":     none,
			"RS256":        sign(jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": "appuser", "exp": now.Add(time.Hour).Unix()}),
			"HS384":        sign(jwt.SigningMethodHS384, secret, jwt.MapClaims{"sub": "appuser", "exp": now.Add(time.Hour).Unix()}),
			"wrong secret": sign(jwt.SigningMethodHS256, []byte("another secret"), jwt.MapClaims{"sub": "appuser", "exp": now.Add(time.Hour).Unix()}),
			"no exp":       sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "appuser"}),
			"expired":      sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "appuser", "exp": now.Add(-time.Minute).Unix()}),
			"nbf ahead":    sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "appuser", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Minute).Unix()}),
			"iat ahead":    sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "appuser", "exp": now.Add(time.Hour).Unix(), "iat": now.Add(time.Minute).Unix()}),
			"no sub":       sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}),
			"bad sub":      sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "App User", "exp": now.Add(time.Hour).Unix()}),
			"garbage":      "a.b.c",
		} {
			if r := e.do("GET", "/api/inbox", tok, ""); r.Status != http.StatusUnauthorized {
				t.Errorf("%s: %d %s", name, r.Status, r.Body)
			}
		}
		// Within the leeway.
		skewed := sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "appuser", "exp": now.Add(-2 * time.Second).Unix(), "nbf": now.Add(2 * time.Second).Unix()})
		e.expect(http.StatusOK, "GET", "/api/inbox", skewed, "")
		// A JWT cannot be revoked.
		e.expect(http.StatusBadRequest, "DELETE", "/api/tokens/current", good, "")

		// Without a secret, JWTs are refused.
		plain := NewService(e.db, e.pub, Options{Clock: e.clock.Now})
		_, err = plain.Authenticate(context.Background(), good)
		wantErr(t, err, ErrUnauthorized)
	})
}

func TestLimiter(t *testing.T) {
	l := newLimiter(2, time.Second)
	now := time.Unix(1000, 0)
	for i, want := range []bool{true, true, false, false} {
		if ok, _ := l.allow("k", now); ok != want {
			t.Fatalf("attempt %d: %v", i, ok)
		}
	}
	if ok, _ := l.allow("other", now); !ok {
		t.Fatal("another key is limited")
	}
	if ok, _ := l.allow("k", now.Add(time.Second)); !ok {
		t.Fatal("a new window is limited")
	}
	// A flood of keys stays bounded.
	for i := range maxKeys + 10 {
		l.allow(itoa(uint64(i)), now.Add(time.Second))
	}
	if n := len(l.keys); n > maxKeys {
		t.Fatalf("%d keys kept", n)
	}
	if ok, _ := l.allow("late", now.Add(time.Second)); ok {
		t.Fatal("a full limiter admitted a new key within the window")
	}
	if ok, _ := l.allow("late", now.Add(3*time.Second)); !ok {
		t.Fatal("a full limiter did not forget ended windows")
	}
}
