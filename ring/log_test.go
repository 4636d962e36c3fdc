package ring

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	cases := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", slog.LevelDebug, "Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Marking b as failed\n", slog.LevelInfo, "Marking b as failed"},
		{"[WARN] memberlist: Refuting a suspect message\n", slog.LevelWarn, "Refuting a suspect message"},
		{"[ERR] memberlist: Failed to send ping\n", slog.LevelError, "Failed to send ping"},
		{"[ERROR] something broke\r\n", slog.LevelError, "something broke"},
		{"[TRACE] memberlist: detail", slog.LevelDebug, "detail"},
		{"no level at all\n", slog.LevelInfo, "no level at all"},
		{"[ODD] memberlist: unknown tag\n", slog.LevelInfo, "[ODD] memberlist: unknown tag"},
		{"[unterminated\n", slog.LevelInfo, "[unterminated"},
		{"", slog.LevelInfo, ""},
	}
	for _, tc := range cases {
		level, msg := parseLogLine(tc.line)
		if level != tc.level || msg != tc.msg {
			t.Errorf("parseLogLine(%q) = %v %q, want %v %q", tc.line, level, msg, tc.level, tc.msg)
		}
	}
}

func TestLogWriterLevels(t *testing.T) {
	rec := &recorder{}
	logger := log.New(&logWriter{logger: slog.New(rec)}, "", 0)
	logger.Printf("[WARN] memberlist: Got ping for unexpected node %s", "x")
	logger.Printf("[DEBUG] memberlist: Using dynamic bind port %d", 7946)
	if !rec.has(slog.LevelWarn, "Got ping for unexpected node x", "") {
		t.Fatal("warning not routed")
	}
	if !rec.has(slog.LevelDebug, "Using dynamic bind port 7946", "") {
		t.Fatal("debug line not routed")
	}

	// A disabled level is dropped before the handler is reached: this
	// handler would panic on its nil writer if it were asked to write.
	h := slog.NewTextHandler(nil, &slog.HandlerOptions{Level: slog.LevelError})
	w := &logWriter{logger: slog.New(h)}
	line := []byte("[DEBUG] memberlist: hidden\n")
	if n, err := w.Write(line); err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v", n, err)
	}
}

func TestLogKind(t *testing.T) {
	cases := map[string]string{
		"failed to receive: Unknown message type: 255 from=127.0.0.1:1": "failed to receive",
		"Got invalid checksum for UDP packet: 1, 2":                     "Got invalid checksum for UDP packet",
		"UDP msg type (9) not supported from=127.0.0.1:2":               "UDP msg type (#) not supported",
		"UDP msg type (255) not supported from=127.0.0.1:2":             "UDP msg type (#) not supported",
		"Refuting a suspect message":                                    "Refuting a suspect message",
		strings.Repeat("x", 100):                                        strings.Repeat("x", maxLogKind),
	}
	for msg, want := range cases {
		if got := logKind(msg); got != want {
			t.Errorf("logKind(%q) = %q, want %q", msg, got, want)
		}
	}
}

// A flood of bad-packet lines from memberlist logs a few lines; the line
// after the interval says how many were dropped. Other kinds and levels
// below Warn are not held back by the flood.
func TestLogWriterSamplesFloods(t *testing.T) {
	rec := &recorder{}
	clock := &fakeClock{now: time.Unix(1000, 0)}
	w := &logWriter{logger: slog.New(rec), sampler: newLogSampler(10*time.Second, logSampleBurst, clock.Now)}
	logger := log.New(w, "", 0)
	for i := range 1000 {
		logger.Printf("[ERR] memberlist: failed to receive: Unknown message type: %d from=127.0.0.1:%d", i%256, 1024+i)
		clock.advance(time.Millisecond)
	}
	logger.Printf("[WARN] memberlist: Refuting a suspect message (from: a)")
	logger.Printf("[DEBUG] memberlist: Stream connection from=127.0.0.1:1")
	if n := levelCount(rec, slog.LevelError); n != logSampleBurst {
		t.Fatalf("%d error lines for 1000 bad packets, want %d", n, logSampleBurst)
	}
	if !rec.has(slog.LevelWarn, "Refuting a suspect message (from: a)", "") || !rec.has(slog.LevelDebug, "Stream connection from=127.0.0.1:1", "") {
		t.Fatal("other lines held back by the flood")
	}
	clock.advance(10 * time.Second)
	logger.Printf("[ERR] memberlist: failed to receive: EOF from=127.0.0.1:9")
	want := fmt.Sprintf("failed to receive: EOF from=127.0.0.1:9 (and %d more like it in the last 11s)", 1000-logSampleBurst)
	if !rec.has(slog.LevelError, want, "") {
		t.Fatalf("no line %q", want)
	}
}

func levelCount(h *recorder, level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Level == level {
			n++
		}
	}
	return n
}

// Garbage sent to the gossip port is logged a few lines at a time, not a
// line per packet.
func TestGossipGarbageFloodIsSampled(t *testing.T) {
	h := &lineCounter{recorder: &recorder{}}
	cfg := testConfig("a")
	cfg.Logger = slog.New(h)
	r := newTestRing(t, cfg)
	conn, err := net.Dial("udp", r.GossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const flood = 1000
	// Keep at most 50 packets in flight, so that the socket's buffer
	// does not drop them; send more if some are lost anyway.
	sent := int64(0)
	deadline := time.Now().Add(20 * time.Second)
	for h.lines() < flood {
		if time.Now().After(deadline) {
			t.Fatalf("memberlist logged %d of %d garbage packets", h.lines(), flood)
		}
		for ; sent < h.lines()+50; sent++ {
			// A packet without the cluster's label: one kind of line.
			if _, err := conn.Write([]byte{'j', 'u', 'n', 'k', byte(sent)}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Millisecond)
	}
	if n := levelCount(h.recorder, slog.LevelError); n != logSampleBurst {
		t.Fatalf("%d lines logged for %d garbage packets, want %d", n, h.lines(), logSampleBurst)
	}
}

// lineCounter counts the error lines memberlist writes, logged or not: the
// log writer asks whether a level is enabled once per line, and slog asks
// once more for each record it logs.
type lineCounter struct {
	*recorder
	errors atomic.Int64
}

func (h *lineCounter) Enabled(_ context.Context, level slog.Level) bool {
	if level == slog.LevelError {
		h.errors.Add(1)
	}
	return true
}

func (h *lineCounter) lines() int64 {
	return h.errors.Load() - int64(levelCount(h.recorder, slog.LevelError))
}

func (h *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lineCounter) WithGroup(string) slog.Handler      { return h }
