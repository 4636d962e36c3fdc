package ring

import (
	"context"
	"log/slog"
	"strings"
)

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// slog records at the matching level. memberlist writes through a
// *log.Logger, which serializes calls to Write.
type logWriter struct {
	logger *slog.Logger
}

// Write logs one line. It never fails.
func (w *logWriter) Write(p []byte) (int, error) {
	level, msg := parseLogLine(string(p))
	if w.logger.Enabled(context.Background(), level) {
		w.logger.Log(context.Background(), level, msg)
	}
	return len(p), nil
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
