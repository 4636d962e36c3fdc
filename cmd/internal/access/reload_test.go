package access

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFileVerifierReload: a changed key set is read again after the
// reload interval; one that no longer loads keeps the previous keys.
func TestFileVerifierReload(t *testing.T) {
	testKeys(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	path := filepath.Join(t.TempDir(), "jwks.json")
	mtime := time.Now().Add(-time.Hour)
	write := func(data []byte) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Second) // coarse file systems keep seconds
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(jwksOf(t, jwkOf("old", &ecKey.PublicKey)))
	v, err := NewFileVerifier(VerifierConfig{Clock: clock}, KeyFiles{KeySet: path})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	v.SetLogger(slog.New(slog.NewTextHandler(logs, nil)))
	// Tokens are checked against the test's clock.
	mk := func(key any, kid string) string {
		return sign(t, jwt.SigningMethodES256, key, kid, jwt.MapClaims{"sub": "alice", "exp": clock().Add(time.Hour).Unix()})
	}
	if _, err := v.Verify(mk(ecKey, "old")); err != nil {
		t.Fatalf("old key: %v", err)
	}
	write(jwksOf(t, jwkOf("new", &ecKey2.PublicKey), jwkOf("rsa", &rsaKey.PublicKey)))
	if _, err := v.Verify(mk(ecKey2, "new")); err == nil {
		t.Fatal("the new key was read before the reload interval")
	}
	advance(DefaultReloadInterval + time.Second)
	if _, err := v.Verify(mk(ecKey2, "new")); err != nil {
		t.Fatalf("new key after the reload: %v", err)
	}
	if _, err := v.Verify(mk(ecKey, "old")); err == nil {
		t.Fatal("the old key still verifies after it left the set")
	}
	if got := v.Algorithms(); len(got) != 2 {
		t.Errorf("algorithms %v, want ES256 and RS256", got)
	}
	write([]byte(`{"keys":[]}`))
	advance(DefaultReloadInterval + time.Second)
	if _, err := v.Verify(mk(ecKey2, "new")); err != nil {
		t.Fatalf("a bad set replaced the keys: %v", err)
	}
	if !strings.Contains(logs.String(), "keys reloaded") || !strings.Contains(logs.String(), "do not load") {
		t.Errorf("logs:\n%s", logs)
	}
}
