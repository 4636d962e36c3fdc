package access

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// MinAPIKeyLen is the shortest API key accepted, in bytes.
const MinAPIKeyLen = 16

// maxAPIKeyLen bounds an API key, configured or presented.
const maxAPIKeyLen = 1024

// APIKeys are the keys that let a server publish over HTTP. Several keys
// are valid at once, so that a new one can be rolled out before the old
// one is dropped. The zero value holds no key. It is safe for concurrent
// use.
type APIKeys struct {
	sums [][sha256.Size]byte
}

// ParseAPIKeys parses a comma-separated list of API keys (blanks around
// each are trimmed). Each key has MinAPIKeyLen to 1024 bytes of printable
// ASCII without spaces or commas. An empty list holds no key.
func ParseAPIKeys(list string) (APIKeys, error) {
	var ks APIKeys
	for i, k := range strings.Split(list, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			if strings.TrimSpace(list) == "" {
				return APIKeys{}, nil
			}
			return APIKeys{}, fmt.Errorf("key %d is empty", i+1)
		}
		if len(k) < MinAPIKeyLen || len(k) > maxAPIKeyLen {
			return APIKeys{}, fmt.Errorf("key %d has %d bytes: want %d to %d (e.g. openssl rand -hex 32)", i+1, len(k), MinAPIKeyLen, maxAPIKeyLen)
		}
		for j := 0; j < len(k); j++ {
			if k[j] <= ' ' || k[j] >= 0x7f {
				return APIKeys{}, fmt.Errorf("key %d: only printable ASCII without spaces", i+1)
			}
		}
		ks.sums = append(ks.sums, sha256.Sum256([]byte(k)))
	}
	return ks, nil
}

// Len returns the number of keys.
func (ks APIKeys) Len() int { return len(ks.sums) }

// Match reports whether key is one of the keys. It compares digests in
// constant time against every key, whichever matches.
func (ks APIKeys) Match(key string) bool {
	if len(ks.sums) == 0 || key == "" || len(key) > maxAPIKeyLen {
		return false
	}
	sum := sha256.Sum256([]byte(key))
	found := 0
	for i := range ks.sums {
		found |= subtle.ConstantTimeCompare(sum[:], ks.sums[i][:])
	}
	return found == 1
}

// ErrBadAPIKey is returned by RequestKey for an X-API-Key header that is
// no key.
var ErrBadAPIKey = errors.New("access: the X-API-Key is not valid")

// Credentials are what an HTTP request presents: an API key (X-API-Key,
// or Authorization: Bearer KEY) or a bearer token.
type Credentials struct {
	// APIKey is true when the request presented one of the API keys.
	APIKey bool
	// Token is the bearer token when it is no API key; "" for none.
	Token string
}

// RequestCredentials reads r's X-API-Key and Authorization headers. An
// X-API-Key that matches no key is ErrBadAPIKey; a bearer value that
// matches one is an API key, any other is a Token to authenticate.
func (ks APIKeys) RequestCredentials(r *http.Request) (Credentials, error) {
	if v := r.Header.Values("X-API-Key"); len(v) > 0 {
		if len(v) == 1 && ks.Match(strings.TrimSpace(v[0])) {
			return Credentials{APIKey: true}, nil
		}
		return Credentials{}, ErrBadAPIKey
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Credentials{}, nil
	}
	tok = strings.TrimSpace(tok)
	if ks.Match(tok) {
		return Credentials{APIKey: true}, nil
	}
	return Credentials{Token: tok}, nil
}
