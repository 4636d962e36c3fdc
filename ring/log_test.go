package ring

import (
	"log"
	"log/slog"
	"net"
	"strings"
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
	if !hasLine(rec, slog.LevelWarn, "Got ping for unexpected node x") {
		t.Fatal("warning not routed")
	}
	if !hasLine(rec, slog.LevelDebug, "Using dynamic bind port 7946") {
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

// memberlist's lines are logged one record each, never sampled here: the
// message is "memberlist", the kind and the text are attributes, so that a
// sampling handler can tell a flood of one kind from other lines.
func TestLogWriterKinds(t *testing.T) {
	rec := &recorder{}
	logger := log.New(&logWriter{logger: slog.New(rec)}, "", 0)
	const flood = 1000
	for i := range flood {
		logger.Printf("[ERR] memberlist: failed to receive: Unknown message type: %d from=127.0.0.1:%d", i%256, 1024+i)
	}
	logger.Printf("[WARN] memberlist: Refuting a suspect message (from: a)")
	recs := memberlistRecords(rec, slog.LevelError)
	if len(recs) != flood {
		t.Fatalf("%d error records for %d lines, want one each", len(recs), flood)
	}
	last := recs[flood-1]
	if last.kind != "failed to receive" || last.line != "failed to receive: Unknown message type: 231 from=127.0.0.1:2023" {
		t.Fatalf("last record: kind %q, line %q", last.kind, last.line)
	}
	warn := memberlistRecords(rec, slog.LevelWarn)
	if len(warn) != 1 || warn[0].kind != "Refuting a suspect message (from" || warn[0].line != "Refuting a suspect message (from: a)" {
		t.Fatalf("warning records: %+v", warn)
	}
}

// mlRecord is what a memberlist record carries.
type mlRecord struct {
	kind, line string
}

// memberlistRecords returns the memberlist records at level.
func memberlistRecords(h *recorder, level slog.Level) []mlRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var recs []mlRecord
	for _, r := range h.records {
		if r.Level != level || r.Message != "memberlist" {
			continue
		}
		var m mlRecord
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "kind":
				m.kind = a.Value.String()
			case "line":
				m.line = a.Value.String()
			}
			return true
		})
		recs = append(recs, m)
	}
	return recs
}

// hasLine reports whether memberlist logged line at level.
func hasLine(h *recorder, level slog.Level, line string) bool {
	for _, r := range memberlistRecords(h, level) {
		if r.line == line {
			return true
		}
	}
	return false
}

// Garbage sent to the gossip port is logged a record per packet, each with
// the same kind.
func TestGossipGarbageIsLoggedWithKind(t *testing.T) {
	rec := &recorder{}
	cfg := testConfig("a")
	cfg.Logger = slog.New(rec)
	r := newTestRing(t, cfg)
	conn, err := net.Dial("udp", r.GossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const garbage = 20
	deadline := time.Now().Add(20 * time.Second)
	for sent := 0; len(memberlistRecords(rec, slog.LevelError)) < garbage; sent++ {
		if time.Now().After(deadline) {
			t.Fatalf("memberlist logged %d records for %d garbage packets", len(memberlistRecords(rec, slog.LevelError)), sent)
		}
		// A packet without the cluster's label: one kind of line.
		if _, err := conn.Write([]byte{'j', 'u', 'n', 'k', byte(sent)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	recs := memberlistRecords(rec, slog.LevelError)
	for _, m := range recs {
		if m.kind != recs[0].kind || m.kind == "" || m.line == "" {
			t.Fatalf("garbage logged as %+v and %+v", recs[0], m)
		}
	}
	t.Logf("kind %q, line %q", recs[0].kind, recs[0].line)
}
