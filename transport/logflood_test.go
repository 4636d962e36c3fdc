package transport

import (
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// A flood of garbage connections to the peer port logs a bounded number of
// lines, and the line that follows the flood says how many were dropped.
func TestRefusedConnectionFloodIsSampled(t *testing.T) {
	const flood = 1000
	logs := &logCapture{}
	tr := start(t, testConfig("b", nopHandler(), logs))
	clock := &fakeClock{now: time.Unix(1000, 0)}
	tr.logs.setClock(clock.Now)
	kind := refusalKind(ErrHandshake, "")

	garbage := func() {
		c, err := net.Dial("tcp", tr.Addr())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: ringcast\r\n\r\n"))
		// Wait for the listener's refusal (or its close), so that at
		// most a few connections are open at once.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 512))
	}
	var wg sync.WaitGroup
	work := make(chan struct{})
	for range 16 {
		wg.Go(func() {
			for range work {
				garbage()
			}
		})
	}
	for range flood {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := func() int {
		tr.logs.mu.Lock()
		defer tr.logs.mu.Unlock()
		if k := tr.logs.kinds[kind]; k != nil {
			return k.logged + k.suppressed
		}
		return 0
	}
	waitFor(t, 10*time.Second, func() bool { return seen() == flood })
	if n := refusedLines(logs); n != logSampleBurst {
		t.Fatalf("%d lines for %d refused connections, want %d", n, flood, logSampleBurst)
	}

	clock.advance(logSampleInterval)
	garbage()
	waitFor(t, 10*time.Second, func() bool { return refusedLines(logs) == logSampleBurst+1 })
	logs.mu.Lock()
	last := logs.recs[len(logs.recs)-1]
	logs.mu.Unlock()
	want := flood - logSampleBurst
	if last.attrs["suppressed"].Int64() != int64(want) || !strings.Contains(last.msg, "more like it in the last 10s") {
		t.Fatalf("last line %q suppressed=%v, want %d suppressed", last.msg, last.attrs["suppressed"], want)
	}
}

func refusedLines(logs *logCapture) int {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	n := 0
	for _, r := range logs.recs {
		if r.level == slog.LevelWarn && strings.HasPrefix(r.msg, "transport: refused inbound connection") {
			n++
		}
	}
	return n
}
