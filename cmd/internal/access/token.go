package access

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ringcast/ringcast/cmd/internal/notify"
	"github.com/ringcast/ringcast/pubsub"
)

// Bounds of tokens.
const (
	// MaxTokenLen bounds a presented token before any work is done on it.
	MaxTokenLen = 8 << 10
	// MaxChannels bounds the entries of a token's channels claim.
	MaxChannels = 256
	// DefaultLeeway is the clock skew allowed when checking a JWT's exp,
	// nbf and iat.
	DefaultLeeway = 30 * time.Second
	// MinRSABits is the smallest RSA key accepted.
	MinRSABits = 2048
)

// ErrUnauthorized is wrapped by every error of Verifier.Verify.
var ErrUnauthorized = errors.New("access: unauthorized")

// Claims are what a verified JWT says about its bearer.
type Claims struct {
	// Subject is the token's sub: the user id (see notify.ValidateUserID).
	Subject string
	// Channels are the topics the token grants (its "channels" claim):
	// exact topic names, or prefixes ending in "*" ("orders:*"). Nil when
	// the token has no such claim: it grants no topic by claim.
	Channels []string
	// ExpiresAt is the token's exp.
	ExpiresAt time.Time
}

// Grants reports whether the channels claim grants topic: an exact entry,
// or a prefix entry ("orders:*") that topic starts with. A nil *Claims
// grants nothing.
func (c *Claims) Grants(topic string) bool {
	if c == nil {
		return false
	}
	for _, ch := range c.Channels {
		if prefix, ok := strings.CutSuffix(ch, "*"); ok {
			if strings.HasPrefix(topic, prefix) {
				return true
			}
		} else if ch == topic {
			return true
		}
	}
	return false
}

// ValidateChannel checks an entry of a channels claim: a topic name
// (pubsub.ValidateTopic), or a non-empty prefix of one followed by a
// single "*" at the end.
func ValidateChannel(ch string) error {
	prefix, wild := strings.CutSuffix(ch, "*")
	switch {
	case ch == "":
		return errors.New("empty channel")
	case strings.Contains(prefix, "*"):
		return fmt.Errorf("channel %q: \"*\" may only end a prefix", truncate(ch))
	case wild && prefix == "":
		return errors.New(`channel "*" would grant every topic; list prefixes ("orders:*")`)
	}
	if err := pubsub.ValidateTopic(prefix); err != nil {
		return fmt.Errorf("channel %q: %w", truncate(ch), err)
	}
	return nil
}

// VerifierConfig configures a Verifier. At least one of Secret, PublicKey
// and KeySet must be set.
type VerifierConfig struct {
	// Secret accepts HS256 tokens signed with it.
	Secret []byte
	// PublicKey accepts RS256 tokens (an *rsa.PublicKey) or ES256 tokens
	// (an *ecdsa.PublicKey on P-256) signed with its private key.
	PublicKey crypto.PublicKey
	// KeySet accepts RS256 and ES256 tokens whose kid header names one of
	// its keys, of the algorithm's type.
	KeySet *KeySet
	// Audience, if set, must be among the token's aud.
	Audience string
	// Issuer, if set, must be the token's iss.
	Issuer string
	// Leeway is the clock skew allowed. Zero: DefaultLeeway.
	Leeway time.Duration
	// Clock is the time. Nil: time.Now.
	Clock func() time.Time
}

// Verifier verifies JWTs. Each algorithm is pinned to the key configured
// for it: an HS256 token is checked with Secret only, RS256 and ES256
// tokens with public keys of their own type only, so a token signed with
// a public key as an HMAC secret is refused. It is safe for concurrent
// use.
type Verifier struct {
	secret  []byte
	pub     crypto.PublicKey
	keys    *KeySet
	parser  *jwt.Parser
	methods []string
}

// NewVerifier returns a Verifier of cfg, which is copied.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	v := &Verifier{secret: append([]byte(nil), cfg.Secret...), keys: cfg.KeySet}
	if len(v.secret) > 0 {
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	switch k := cfg.PublicKey.(type) {
	case nil:
	case *rsa.PublicKey:
		if err := checkRSA(k); err != nil {
			return nil, err
		}
		v.pub = k
		v.methods = append(v.methods, jwt.SigningMethodRS256.Alg())
	case *ecdsa.PublicKey:
		if err := checkEC(k); err != nil {
			return nil, err
		}
		v.pub = k
		v.methods = append(v.methods, jwt.SigningMethodES256.Alg())
	default:
		return nil, fmt.Errorf("access: public key of type %T: want RSA or ECDSA P-256", cfg.PublicKey)
	}
	if v.keys != nil {
		for _, alg := range v.keys.algs() {
			if !slices.Contains(v.methods, alg) {
				v.methods = append(v.methods, alg)
			}
		}
	}
	if len(v.methods) == 0 {
		return nil, errors.New("access: no key to verify tokens with")
	}
	leeway := cfg.Leeway
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	now := cfg.Clock
	if now == nil {
		now = time.Now
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Algorithms returns the JWT algorithms v accepts.
func (v *Verifier) Algorithms() []string { return append([]string(nil), v.methods...) }

// tokenClaims is the claims set as decoded.
type tokenClaims struct {
	jwt.RegisteredClaims
	Channels []string `json:"channels,omitempty"`
}

// IsJWT reports whether tok has a JWT's three dot-separated parts (the
// notification system's opaque tokens, base64url, have no dot).
func IsJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// Verify checks a JWT: its signature with the key pinned to its alg, an
// exp that has not passed, nbf and iat not in the future (with the
// leeway), aud and iss when configured, a sub that is a valid user id and
// a channels claim, if any, of at most MaxChannels valid entries. Every
// error wraps ErrUnauthorized.
func (v *Verifier) Verify(token string) (*Claims, error) {
	switch {
	case token == "":
		return nil, fmt.Errorf("%w: no token", ErrUnauthorized)
	case len(token) > MaxTokenLen:
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrUnauthorized, MaxTokenLen)
	case !IsJWT(token):
		return nil, fmt.Errorf("%w: not a JWT", ErrUnauthorized)
	}
	var c tokenClaims
	if _, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		return nil, fmt.Errorf("%w: JWT: %w", ErrUnauthorized, err)
	}
	if err := notify.ValidateUserID(c.Subject); err != nil {
		return nil, fmt.Errorf("%w: JWT sub: %s", ErrUnauthorized, strings.TrimPrefix(err.Error(), notify.ErrInvalid.Error()+": "))
	}
	if len(c.Channels) > MaxChannels {
		return nil, fmt.Errorf("%w: JWT channels: more than %d entries", ErrUnauthorized, MaxChannels)
	}
	for _, ch := range c.Channels {
		if err := ValidateChannel(ch); err != nil {
			return nil, fmt.Errorf("%w: JWT channels: %v", ErrUnauthorized, err)
		}
	}
	out := &Claims{Subject: c.Subject, Channels: c.Channels}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	return out, nil
}

// key returns the key that verifies t: the one configured for its alg,
// never another type's.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	switch alg {
	case jwt.SigningMethodHS256.Alg():
		if len(v.secret) > 0 {
			return v.secret, nil
		}
	case jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg():
		if kid != "" && v.keys != nil {
			if k, ok := v.keys.lookup(kid, alg); ok {
				return k, nil
			}
			if v.pub == nil {
				return nil, fmt.Errorf("no %s key with kid %q", alg, truncate(kid))
			}
		}
		if v.pub != nil && keyAlg(v.pub) == alg {
			return v.pub, nil
		}
		if kid == "" && v.keys != nil {
			return nil, errors.New("the token has no kid header to choose a key of the set with")
		}
	}
	return nil, fmt.Errorf("no key for %s", alg)
}

// keyAlg is the algorithm a public key verifies.
func keyAlg(k crypto.PublicKey) string {
	switch k.(type) {
	case *rsa.PublicKey:
		return jwt.SigningMethodRS256.Alg()
	case *ecdsa.PublicKey:
		return jwt.SigningMethodES256.Alg()
	}
	return ""
}

func checkRSA(k *rsa.PublicKey) error {
	if k.N == nil || k.N.BitLen() < MinRSABits {
		return fmt.Errorf("access: RSA key shorter than %d bits", MinRSABits)
	}
	if k.E < 3 || k.E%2 == 0 {
		return fmt.Errorf("access: RSA key with public exponent %d", k.E)
	}
	return nil
}

func checkEC(k *ecdsa.PublicKey) error {
	if k.Curve != elliptic.P256() {
		return fmt.Errorf("access: ECDSA key on %s: ES256 needs P-256", k.Curve.Params().Name)
	}
	return nil
}
