package gateway

import (
	"net"
	"sync"
	"testing"
	"time"
)

// countingConn records the writes that reach the socket.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

func TestCorkConnBatchesWrites(t *testing.T) {
	under := &countingConn{}
	cc := &corkConn{Conn: under, timeout: time.Second}

	if _, err := cc.Write([]byte("direct")); err != nil {
		t.Fatal(err)
	}
	cc.cork()
	for _, s := range []string{"a", "bb", "ccc"} {
		if n, err := cc.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("corked write: %d %v", n, err)
		}
	}
	if len(under.writes) != 1 {
		t.Fatalf("%d writes reached the socket while corked", len(under.writes))
	}
	if _, err := cc.uncork(); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.uncork(); err != nil { // nothing collected: no write
		t.Fatal(err)
	}
	if _, err := cc.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	want := []string{"direct", "abbccc", "after"}
	if len(under.writes) != len(want) {
		t.Fatalf("writes %q, want %q", under.writes, want)
	}
	for i, w := range want {
		if string(under.writes[i]) != w {
			t.Fatalf("writes %q, want %q", under.writes, want)
		}
	}
}

func TestCorkConnWriteTimeout(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	defer server.Close()
	cc := &corkConn{Conn: server, timeout: 50 * time.Millisecond}
	cc.cork()
	_, _ = cc.Write([]byte("nobody reads this"))
	start := time.Now()
	_, err := cc.uncork()
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("uncork to a peer that does not read: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("write timeout took %v", d)
	}
}
