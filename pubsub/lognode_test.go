package pubsub

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// topKeys returns the values of every top-level key of a JSON object, a
// key repeated as often as it appears (encoding/json would keep the last).
func topKeys(t *testing.T, line string) map[string][]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(line))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %q", line)
	}
	out := map[string][]any{}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out[k.(string)] = append(out[k.(string)], v)
	}
	return out
}

// TestEveryLineNamesTheNodeOnce runs a two-node cluster at the debug
// level and checks that every line, the node's, its links' and its
// membership's (memberlist's included), carries "node" exactly once.
func TestEveryLineNamesTheNodeOnce(t *testing.T) {
	logs := map[string]*lockedBuffer{}
	c := startCluster(t, 2, func(cfg *Config) {
		b := &lockedBuffer{}
		logs[cfg.NodeName] = b
		cfg.Logger = slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := ctxT(t, 10*time.Second)
	sub, err := c.nodes[1].Subscribe(ctx, "lines")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[0].Publish(ctx, "lines", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Next(ctx); err != nil {
		t.Fatal(err)
	}
	c.closeAll()
	for name, b := range logs {
		components := map[any]int{}
		lines := 0
		for line := range strings.Lines(b.String()) {
			lines++
			keys := topKeys(t, line)
			if got := keys["node"]; len(got) != 1 || got[0] != name {
				t.Fatalf("node %s logged %q: node %v, want once %q", name, strings.TrimSpace(line), got, name)
			}
			for _, comp := range keys["component"] {
				components[comp]++
			}
		}
		if lines < 5 || components["ring"] == 0 || components["memberlist"] == 0 {
			t.Fatalf("node %s: %d lines, by component %v: want the node's, the ring's and memberlist's", name, lines, components)
		}
	}
}
