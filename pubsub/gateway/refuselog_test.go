package gateway

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ringcast/ringcast/pubsub/internal/logsample"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A client retrying with a bad token is refused every time, and logged a
// few times only.
func TestRefusedUpgradeFloodIsSampled(t *testing.T) {
	var out syncBuffer
	g := newGateway(t, NewMemoryBroker(), &Options{
		Authenticate: func(*http.Request, string) error { return errors.New("bad token") },
		Logger:       slog.New(slog.NewTextHandler(&out, nil)),
	})
	client := httpClient()
	const flood = 200
	for range flood {
		resp, err := client.Get(g.srv.URL + socketPath)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	}
	if s := g.h.Stats(); s.Refused != flood {
		t.Fatalf("Refused = %d, want %d", s.Refused, flood)
	}
	if n := strings.Count(out.String(), "authentication refused"); n != logsample.DefaultBurst {
		t.Fatalf("%d lines for %d refused upgrades, want %d:\n%s", n, flood, logsample.DefaultBurst, out.String())
	}
}
