package access

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Keys generated once per test run: RSA generation is slow under -race.
var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	rsaKey2  *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	ecKey2   *ecdsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if ecKey2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

// pemOf writes a public key as a PEM "PUBLIC KEY" block.
func pemOf(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// jwkOf writes a public key as a JWK.
func jwkOf(kid string, pub crypto.PublicKey) map[string]string {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		raw, err := k.Bytes()
		if err != nil {
			panic(err)
		}
		return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
	}
	panic(fmt.Sprintf("key %T", pub))
}

func jwksOf(t testing.TB, keys ...map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// claims are a token's claims with an exp an hour away.
func claims(sub string, extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign signs c with method and key, and a kid header if not empty.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const testSecret = "a secret of the application, 32 bytes+"

func newVerifier(t testing.TB, cfg VerifierConfig) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifyAccepts: each key type verifies its own tokens, and the
// claims come out.
func TestVerifyAccepts(t *testing.T) {
	testKeys(t)
	rsaPub, err := ParsePublicKey(pemOf(t, &rsaKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	ecPub, err := ParsePublicKey(pemOf(t, &ecKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	set, err := ParseKeySet(jwksOf(t, jwkOf("r1", &rsaKey2.PublicKey), jwkOf("e1", &ecKey2.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	chans := map[string]any{"channels": []string{"admin:billing", "orders:*"}}
	for name, tc := range map[string]struct {
		cfg   VerifierConfig
		token string
	}{
		"HS256":      {VerifierConfig{Secret: []byte(testSecret)}, sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims("alice", chans))},
		"RS256 PEM":  {VerifierConfig{PublicKey: rsaPub}, sign(t, jwt.SigningMethodRS256, rsaKey, "", claims("alice", chans))},
		"ES256 PEM":  {VerifierConfig{PublicKey: ecPub}, sign(t, jwt.SigningMethodES256, ecKey, "any-kid", claims("alice", chans))},
		"RS256 JWKS": {VerifierConfig{KeySet: set}, sign(t, jwt.SigningMethodRS256, rsaKey2, "r1", claims("alice", chans))},
		"ES256 JWKS": {VerifierConfig{KeySet: set}, sign(t, jwt.SigningMethodES256, ecKey2, "e1", claims("alice", chans))},
		"aud iss": {VerifierConfig{Secret: []byte(testSecret), Audience: "ringcast", Issuer: "https://shop.example"},
			sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims("alice", map[string]any{"aud": []string{"other", "ringcast"}, "iss": "https://shop.example", "channels": chans["channels"]}))},
	} {
		c, err := newVerifier(t, tc.cfg).Verify(tc.token)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.Subject != "alice" || len(c.Channels) != 2 || c.ExpiresAt.IsZero() {
			t.Errorf("%s: claims %+v", name, c)
		}
	}
}

// TestVerifyRefuses: expired, forged, alg-confused and malformed tokens
// are refused, each with ErrUnauthorized.
func TestVerifyRefuses(t *testing.T) {
	testKeys(t)
	rsaPEM := pemOf(t, &rsaKey.PublicKey)
	rsaPub, err := ParsePublicKey(rsaPEM)
	if err != nil {
		t.Fatal(err)
	}
	set, err := ParseKeySet(jwksOf(t, jwkOf("r1", &rsaKey.PublicKey), jwkOf("e1", &ecKey.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	hs := VerifierConfig{Secret: []byte(testSecret)}
	rs := VerifierConfig{PublicKey: rsaPub}
	both := VerifierConfig{Secret: []byte(testSecret), PublicKey: rsaPub}
	jwks := VerifierConfig{KeySet: set}
	hsSign := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	now := time.Now()
	long := strings.Repeat("a", MaxTokenLen)
	many := make([]string, MaxChannels+1)
	for i := range many {
		many[i] = fmt.Sprintf("t:%d", i)
	}
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims("alice", nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		cfg   VerifierConfig
		token string
		want  string
	}{
		"expired":                            {hs, hsSign(claims("alice", map[string]any{"exp": now.Add(-time.Hour).Unix()})), "expired"},
		"no exp":                             {hs, hsSign(claims("alice", map[string]any{"exp": nil})), "exp"},
		"nbf ahead":                          {hs, hsSign(claims("alice", map[string]any{"nbf": now.Add(time.Hour).Unix()})), "not valid yet"},
		"iat ahead":                          {hs, hsSign(claims("alice", map[string]any{"iat": now.Add(time.Hour).Unix()})), "issued"},
		"wrong secret":                       {hs, sign(t, jwt.SigningMethodHS256, []byte("another secret, 32 bytes or more!"), "", claims("alice", nil)), "signature"},
		"tampered":                           {hs, tamper(hsSign(claims("bob", nil))), "signature"},
		"wrong RSA key":                      {rs, sign(t, jwt.SigningMethodRS256, rsaKey2, "", claims("alice", nil)), "verification"},
		"alg none":                           {both, noneTok, "signing method"},
		"HS256 with the RSA PEM as secret":   {rs, sign(t, jwt.SigningMethodHS256, rsaPEM, "", claims("alice", nil)), "signing method"},
		"HS256 with the RSA PEM, secret too": {both, sign(t, jwt.SigningMethodHS256, rsaPEM, "", claims("alice", nil)), "signature"},
		"HS256 with the RSA PEM, JWKS":       {jwks, sign(t, jwt.SigningMethodHS256, rsaPEM, "r1", claims("alice", nil)), "signing method"},
		"RS256 to a secret":                  {hs, sign(t, jwt.SigningMethodRS256, rsaKey, "", claims("alice", nil)), "signing method"},
		"ES256 kid of an RSA key":            {jwks, sign(t, jwt.SigningMethodES256, ecKey, "r1", claims("alice", nil)), "no ES256 key"},
		"unknown kid":                        {jwks, sign(t, jwt.SigningMethodRS256, rsaKey, "r9", claims("alice", nil)), "kid"},
		"no kid":                             {jwks, sign(t, jwt.SigningMethodRS256, rsaKey, "", claims("alice", nil)), "kid"},
		"wrong aud":                          {VerifierConfig{Secret: []byte(testSecret), Audience: "ringcast"}, hsSign(claims("alice", map[string]any{"aud": "other"})), "aud"},
		"no aud":                             {VerifierConfig{Secret: []byte(testSecret), Audience: "ringcast"}, hsSign(claims("alice", nil)), "aud"},
		"wrong iss":                          {VerifierConfig{Secret: []byte(testSecret), Issuer: "https://a"}, hsSign(claims("alice", map[string]any{"iss": "https://b"})), "iss"},
		"no sub":                             {hs, hsSign(claims("alice", map[string]any{"sub": nil})), "sub"},
		"empty sub":                          {hs, hsSign(claims("", nil)), "sub"},
		"long sub":                           {hs, hsSign(claims(strings.Repeat("a", 65), nil)), "sub"},
		"upper-case sub":                     {hs, hsSign(claims("Alice", nil)), "sub"},
		"channels string":                    {hs, hsSign(claims("alice", map[string]any{"channels": "admin:*"})), "channels"},
		"channel *":                          {hs, hsSign(claims("alice", map[string]any{"channels": []string{"*"}})), "every topic"},
		"channel a*b":                        {hs, hsSign(claims("alice", map[string]any{"channels": []string{"a*b"}})), "channels"},
		"empty channel":                      {hs, hsSign(claims("alice", map[string]any{"channels": []string{""}})), "channels"},
		"many channels":                      {hs, hsSign(claims("alice", map[string]any{"channels": many})), "more than"},
		"too long":                           {hs, long + "." + long + "." + long, "longer"},
		"empty":                              {hs, "", "no token"},
		"opaque":                             {hs, "b3BhcXVl", "not a JWT"},
		"garbage":                            {hs, "a.b.c", "JWT"},
	} {
		_, err := newVerifier(t, tc.cfg).Verify(tc.token)
		if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrUnauthorized with %q", name, err, tc.want)
		}
	}
}

// tamper changes a token's claims and keeps its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), `"bob"`, `"eve"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// TestVerifyLeeway: a token expired within the leeway passes, past it not.
func TestVerifyLeeway(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := newVerifier(t, VerifierConfig{Secret: []byte(testSecret), Leeway: 10 * time.Second, Clock: func() time.Time { return now }})
	mk := func(exp time.Time) string {
		return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"sub": "alice", "exp": exp.Unix()})
	}
	if _, err := v.Verify(mk(now.Add(-5 * time.Second))); err != nil {
		t.Errorf("within the leeway: %v", err)
	}
	if _, err := v.Verify(mk(now.Add(-time.Minute))); err == nil {
		t.Error("a minute past exp was accepted")
	}
}

func TestClaimsGrants(t *testing.T) {
	c := &Claims{Channels: []string{"admin:billing", "orders:*"}}
	for topic, want := range map[string]bool{
		"admin:billing": true, "admin:billing2": false, "admin:payroll": false, "admin": false,
		"orders:1": true, "orders:": true, "orders": false, "ordersx:1": false, "lobby": false,
	} {
		if got := c.Grants(topic); got != want {
			t.Errorf("Grants(%q) = %v, want %v", topic, got, want)
		}
	}
	if (*Claims)(nil).Grants("admin:billing") || (&Claims{}).Grants("admin:billing") {
		t.Error("no claims granted a topic")
	}
}

func TestNewVerifierErrors(t *testing.T) {
	testKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]VerifierConfig{
		"none":      {},
		"small RSA": {PublicKey: &small.PublicKey},
		"P-384":     {PublicKey: &p384.PublicKey},
		"private":   {PublicKey: rsaKey},
	} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParsePublicKeyErrors(t *testing.T) {
	testKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	good := pemOf(t, &ecKey.PublicKey)
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"garbage":     {[]byte("not pem"), "no PEM block"},
		"private key": {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), "private key"},
		"small RSA":   {pemOf(t, &small.PublicKey), "shorter than 2048"},
		"P-384":       {pemOf(t, &p384.PublicKey), "P-256"},
		"two blocks":  {append(append([]byte(nil), good...), good...), "more than one"},
		"bad DER":     {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), "PUBLIC KEY"},
		"other type":  {pem.EncodeToMemory(&pem.Block{Type: "SOMETHING", Bytes: []byte{1}}), "want PUBLIC KEY"},
	} {
		if _, err := ParsePublicKey(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)})
	if k, err := ParsePublicKey(pkcs1); err != nil || !k.(*rsa.PublicKey).Equal(&rsaKey.PublicKey) {
		t.Errorf("PKCS #1: %v", err)
	}
}

func TestParseKeySet(t *testing.T) {
	testKeys(t)
	r, e := jwkOf("r1", &rsaKey.PublicKey), jwkOf("e1", &ecKey.PublicKey)
	enc := jwkOf("enc", &rsaKey2.PublicKey)
	enc["use"] = "enc"
	ps := jwkOf("ps", &rsaKey2.PublicKey)
	ps["alg"] = "PS256"
	oct := map[string]string{"kty": "oct", "kid": "o", "k": "c2VjcmV0"}
	set, err := ParseKeySet(jwksOf(t, r, e, enc, ps, oct))
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2 || len(set.Skipped) != 3 {
		t.Errorf("keys %d, skipped %q", set.Len(), set.Skipped)
	}
	with := func(k map[string]string, key, value string) map[string]string {
		c := map[string]string{}
		for a, b := range k {
			c[a] = b
		}
		if value == "" {
			delete(c, key)
		} else {
			c[key] = value
		}
		return c
	}
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"not JSON":    {[]byte("{"), "not a JSON Web Key Set"},
		"empty":       {[]byte(`{"keys":[]}`), "no RS256 or ES256"},
		"only enc":    {jwksOf(t, enc), "no RS256 or ES256"},
		"no kid":      {jwksOf(t, with(r, "kid", "")), "no kid"},
		"dup kid":     {jwksOf(t, r, with(e, "kid", "r1")), "twice"},
		"private":     {jwksOf(t, with(e, "d", "AAAA")), "private"},
		"short x":     {jwksOf(t, with(e, "x", "AAAA")), "x:"},
		"off curve":   {jwksOf(t, with(e, "y", e["x"])), "x, y"},
		"P-384":       {jwksOf(t, with(e, "crv", "P-384")), "P-256"},
		"bad n":       {jwksOf(t, with(r, "n", "!!")), "n:"},
		"small n":     {jwksOf(t, with(r, "n", "AQAB")), "2048"},
		"even e":      {jwksOf(t, with(r, "e", "Ag")), "exponent"},
		"keys object": {[]byte(`{"keys":{}}`), "not a JSON Web Key Set"},
	} {
		if _, err := ParseKeySet(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
