package ring

import (
	"log"
	"log/slog"
	"testing"
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
