package ring

import (
	"context"
	"log/slog"
	"strings"
)

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// slog records at the matching level. memberlist writes through a
// *log.Logger, which serializes calls to Write.
//
// memberlist logs one line per bad packet or failed probe, with the
// packet's address and error in its text. So that a handler that samples
// records by message and kind can hold back a flood of them, each record's
// message is "memberlist", its "kind" attribute is the line's kind (see
// logKind) and its "line" attribute is memberlist's text.
type logWriter struct {
	logger *slog.Logger
}

// maxLogKind bounds the length of a line's kind.
const maxLogKind = 64

// Write logs one line. It never fails.
func (w *logWriter) Write(p []byte) (int, error) {
	ctx := context.Background()
	level, line := parseLogLine(string(p))
	if w.logger.Enabled(ctx, level) {
		w.logger.Log(ctx, level, "memberlist", "kind", logKind(line), "line", line)
	}
	return len(p), nil
}

// logKind returns what identifies the kind of a memberlist message: its text
// up to the first colon or " from=", where the variable details (errors,
// addresses) begin, at most maxLogKind bytes, with each run of digits (a
// message type, a count) made "#".
func logKind(msg string) string {
	if i := strings.IndexByte(msg, ':'); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, " from="); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > maxLogKind {
		msg = msg[:maxLogKind]
	}
	var b strings.Builder
	b.Grow(len(msg))
	digits := false
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= '0' && c <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteByte(c)
	}
	return b.String()
}

// parseLogLine splits a memberlist log line into its level and message.
// Lines without a known "[LEVEL]" prefix are logged at Info.
func parseLogLine(line string) (slog.Level, string) {
	line = strings.TrimRight(line, "\r\n")
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if tag, msg, ok := strings.Cut(rest, "]"); ok {
			if l, known := logLevels[strings.ToUpper(tag)]; known {
				level = l
				line = strings.TrimLeft(msg, " ")
			}
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if level == slog.LevelWarn && strings.HasPrefix(line, "Failed to join ") {
		// One line per address tried: the Ring logs each failed join
		// attempt itself, once.
		level = slog.LevelDebug
	}
	return level, line
}

// logLevels maps memberlist's level tags to slog levels.
var logLevels = map[string]slog.Level{
	"TRACE":   slog.LevelDebug,
	"DEBUG":   slog.LevelDebug,
	"INFO":    slog.LevelInfo,
	"WARN":    slog.LevelWarn,
	"WARNING": slog.LevelWarn,
	"ERR":     slog.LevelError,
	"ERROR":   slog.LevelError,
}
