package access

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzParseConfig: no input panics; a config that parses is valid and
// parses the same every time; an error always names the file.
func FuzzParseConfig(f *testing.F) {
	if example, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "ringcast.toml")); err == nil {
		f.Add(example)
	}
	f.Add([]byte(policyConfig))
	for _, s := range []string{
		"", "[default]\npublish = \"everyone\"\n", "namespaces.a = { publish = \"api\" }",
		"[namespaces.\"x\\u0000\"]\n", "[[namespaces]]\n", "default = [1, 2]\n", "[namespaces.a.b.c]\nd = 1\n",
		"a = \"\"\"\nmulti\n\"\"\"\n", "[default]\nhistory = 1979-05-27T07:32:00Z\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("f.toml", data)
		if err != nil {
			if cfg != nil {
				t.Fatal("a config and an error")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "f.toml") {
				t.Fatalf("error %v does not name the file", err)
			}
			_, err2 := ParseConfig("f.toml", data)
			if err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second parse: %v, first: %v", err2, err)
			}
			return
		}
		again, err := ParseConfig("f.toml", data)
		if err != nil || !again.Equal(cfg) {
			t.Fatalf("second parse: %+v %v, first %+v", again, err, cfg)
		}
		check := func(where string, r Rules) {
			if int(r.Subscribe) >= len(subscribeNames) || int(r.Publish) >= len(publishNames) {
				t.Fatalf("%s: rules out of range: %+v", where, r)
			}
		}
		check("default", cfg.Default)
		if cfg.Default.Publish == PublishCreator {
			t.Fatal("creator in [default]")
		}
		for ns, r := range cfg.Namespaces {
			if err := validNamespace(ns); err != nil {
				t.Fatalf("namespace %q: %v", ns, err)
			}
			check(ns, r)
			if r.Publish == PublishCreator && ns != NotifyNamespace {
				t.Fatalf("creator in %q", ns)
			}
		}
	})
}

// FuzzVerifyToken: no string panics the verifier, and none authenticates
// without the key: the fuzzer does not hold the secret or the private
// keys. Seeds include valid tokens signed with other keys and
// alg-confused ones.
func FuzzVerifyToken(f *testing.F) {
	testKeys(f)
	set, err := ParseKeySet(jwksOf(f, jwkOf("r1", &rsaKey.PublicKey), jwkOf("e1", &ecKey.PublicKey)))
	if err != nil {
		f.Fatal(err)
	}
	v := newVerifier(f, VerifierConfig{Secret: []byte(testSecret), PublicKey: &rsaKey.PublicKey, KeySet: set})
	rsaPEM := pemOf(f, &rsaKey.PublicKey)
	c := claims("alice", map[string]any{"channels": []string{"admin:*"}})
	// Only tokens signed with keys the fuzzer does not hold.
	f.Add(sign(f, jwt.SigningMethodHS256, []byte("not the secret, but long enough"), "", c))
	f.Add(sign(f, jwt.SigningMethodHS256, rsaPEM, "r1", c))
	f.Add(sign(f, jwt.SigningMethodRS256, rsaKey2, "r1", c))
	f.Add(sign(f, jwt.SigningMethodES256, ecKey2, "e1", c))
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")
	f.Add(strings.Repeat(".", 3))
	f.Fuzz(func(t *testing.T, token string) {
		start := time.Now()
		c, err := v.Verify(token)
		if err == nil {
			t.Fatalf("token %q authenticated as %+v", token, c)
		}
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("error %v does not wrap ErrUnauthorized", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("verification took %v", d)
		}
	})
}
