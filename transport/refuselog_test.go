package transport

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// Garbage connections to the peer port are logged one line each (the
// transport does not sample its logs: package pubsub wraps its logger in a
// sampling handler), and each line carries the refusal's kind.
func TestRefusedConnectionsAreLoggedWithKind(t *testing.T) {
	const garbage = 20
	logs := &logCapture{}
	tr := start(t, testConfig("b", nopHandler(), logs))
	for range garbage {
		c, err := net.Dial("tcp", tr.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: ringcast\r\n\r\n"))
		// The listener logs the refusal before it closes the connection.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err := c.Read(make([]byte, 512)); err != nil {
				break
			}
		}
		_ = c.Close()
	}
	waitFor(t, 10*time.Second, func() bool { return len(refusedLines(logs)) == garbage })
	want := refusalKind(ErrHandshake, "")
	for _, r := range refusedLines(logs) {
		if kind := r.attrs["kind"].String(); kind != want {
			t.Fatalf("refusal logged with kind %q, want %q", kind, want)
		}
		if _, ok := r.attrs["suppressed"]; ok {
			t.Fatalf("refusal logged with a suppressed count: %v", r.attrs)
		}
	}
}

func TestRefusalKind(t *testing.T) {
	cases := []struct {
		err  error
		peer string
		want string
	}{
		{ErrHandshake, "", ErrHandshake.Error() + "/"},
		{ErrAuth, "a", ErrAuth.Error() + "/a"},
		{ErrVersionMismatch, "a", ErrVersionMismatch.Error() + "/a"},
		{net.ErrClosed, "b", "refused/b"},
	}
	for _, tc := range cases {
		if got := refusalKind(tc.err, tc.peer); got != tc.want {
			t.Errorf("refusalKind(%v, %q) = %q, want %q", tc.err, tc.peer, got, tc.want)
		}
	}
}

// refusedLines returns the records of refused inbound connections.
func refusedLines(logs *logCapture) []logRecord {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	var recs []logRecord
	for _, r := range logs.recs {
		if r.level == slog.LevelWarn && strings.HasPrefix(r.msg, "transport: refused inbound connection") {
			recs = append(recs, r)
		}
	}
	return recs
}
