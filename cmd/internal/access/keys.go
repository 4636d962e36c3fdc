package access

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// MaxKeyFileSize bounds a key or key set file, in bytes.
const MaxKeyFileSize = 1 << 20

// MaxKeys bounds the keys of a key set.
const MaxKeys = 100

// readKeyFile reads a key file whole, within MaxKeyFileSize.
func readKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > MaxKeyFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxKeyFileSize)
	}
	return os.ReadFile(path)
}

// LoadPublicKey reads a PEM file holding one public key (see
// ParsePublicKey).
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParsePublicKey parses a PEM block "PUBLIC KEY" (PKIX), "RSA PUBLIC KEY"
// (PKCS #1) or "CERTIFICATE" (its key) holding an RSA key of at least
// MinRSABits bits (RS256) or an ECDSA P-256 key (ES256). A private key is
// refused: the file is meant to hold only what verifies.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block (want -----BEGIN PUBLIC KEY-----)")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("more than one PEM block: give one public key (a key set goes to --jwks)")
	}
	var k any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			k = cert.PublicKey
		}
	default:
		if bytes.Contains([]byte(block.Type), []byte("PRIVATE")) {
			return nil, fmt.Errorf("PEM block %q is a private key: give the public key only", block.Type)
		}
		return nil, fmt.Errorf("PEM block %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("PEM block %q: %w", block.Type, err)
	}
	switch k := k.(type) {
	case *rsa.PublicKey:
		return k, checkRSA(k)
	case *ecdsa.PublicKey:
		return k, checkEC(k)
	}
	return nil, fmt.Errorf("public key of type %T: want RSA (RS256) or ECDSA P-256 (ES256)", k)
}

// KeySet is a JSON Web Key Set: public keys by kid. It is not changed
// after ParseKeySet returns it.
type KeySet struct {
	keys map[string]crypto.PublicKey
	// Skipped describes the keys of the set left out because ringcast does
	// not verify with them (encryption keys, other algorithms).
	Skipped []string
}

// Len returns the number of keys the set verifies with.
func (s *KeySet) Len() int { return len(s.keys) }

func (s *KeySet) lookup(kid, alg string) (crypto.PublicKey, bool) {
	k, ok := s.keys[kid]
	if !ok || keyAlg(k) != alg {
		return nil, false
	}
	return k, true
}

// algs returns the algorithms of the set's keys.
func (s *KeySet) algs() []string {
	var out []string
	for _, k := range s.keys {
		if a := keyAlg(k); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// LoadKeySet reads a JWKS file (see ParseKeySet).
func LoadKeySet(path string) (*KeySet, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseKeySet(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// jwk is one key of a set, as RFC 7517 and 7518 write it.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
}

// ParseKeySet parses a JSON Web Key Set {"keys": [...]}: RSA keys (kty
// "RSA", n, e; at least MinRSABits bits) verify RS256 tokens, EC keys
// (kty "EC", crv "P-256", x, y) ES256 tokens. Every key needs a kid,
// unique in the set. Keys for encryption (use "enc") or with another alg
// are skipped and listed in Skipped; a set with no key left is an error,
// as is a malformed key or one holding a private part.
func ParseKeySet(data []byte) (*KeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if len(doc.Keys) > MaxKeys {
		return nil, fmt.Errorf("more than %d keys", MaxKeys)
	}
	s := &KeySet{keys: make(map[string]crypto.PublicKey, len(doc.Keys))}
	for i, raw := range doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		where := fmt.Sprintf("key %d", i+1)
		if k.Kid != "" {
			where += fmt.Sprintf(" (kid %q)", truncate(k.Kid))
		}
		if k.Use != "" && k.Use != "sig" {
			s.Skipped = append(s.Skipped, where+": use "+truncate(k.Use))
			continue
		}
		var want string
		switch k.Kty {
		case "RSA":
			want = jwt.SigningMethodRS256.Alg()
		case "EC":
			want = jwt.SigningMethodES256.Alg()
		default:
			s.Skipped = append(s.Skipped, where+": kty "+truncate(k.Kty))
			continue
		}
		if k.Alg != "" && k.Alg != want {
			s.Skipped = append(s.Skipped, where+": alg "+truncate(k.Alg))
			continue
		}
		if k.Kid == "" {
			return nil, fmt.Errorf("%s: no kid", where)
		}
		if _, dup := s.keys[k.Kid]; dup {
			return nil, fmt.Errorf("%s: kid used twice", where)
		}
		if k.D != "" {
			return nil, fmt.Errorf("%s: holds a private key (d): give the public keys only", where)
		}
		pub, err := k.public()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		s.keys[k.Kid] = pub
	}
	if len(s.keys) == 0 {
		return nil, errors.New("no RS256 or ES256 signing key in the set")
	}
	return s, nil
}

// public builds the key of an RSA or EC jwk.
func (k *jwk) public() (crypto.PublicKey, error) {
	if k.Kty == "RSA" {
		n, err := b64int(k.N, "n")
		if err != nil {
			return nil, err
		}
		e, err := b64int(k.E, "e")
		if err != nil {
			return nil, err
		}
		if !e.IsInt64() || e.Int64() > 1<<31-1 {
			return nil, errors.New("e is too large")
		}
		pub := &rsa.PublicKey{N: n, E: int(e.Int64())}
		return pub, checkRSA(pub)
	}
	if k.Crv != "P-256" {
		return nil, fmt.Errorf("crv %q: ES256 needs P-256", truncate(k.Crv))
	}
	x, err := b64fixed(k.X, "x", 32)
	if err != nil {
		return nil, err
	}
	y, err := b64fixed(k.Y, "y", 32)
	if err != nil {
		return nil, err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("x, y: %w", err)
	}
	return pub, nil
}

// b64int decodes a base64url unsigned big-endian integer.
func b64int(s, name string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%s: not a base64url integer", name)
	}
	return new(big.Int).SetBytes(b), nil
}

// b64fixed decodes a base64url field of exactly n bytes.
func b64fixed(s, name string, n int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("%s: want %d bytes in base64url", name, n)
	}
	return b, nil
}
