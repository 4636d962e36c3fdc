package pubsub

import (
	"fmt"
	"strings"
)

// Topic patterns, as Durability and PresenceRule write them: an exact
// topic name, a prefix followed by '*' ("rooms:*", a namespace), or "*".

// checkPattern refuses a pattern that is empty, has a '*' anywhere but at
// its end, or names an invalid topic. kind names the rule in the error
// ("Durability", "Presence").
func checkPattern(kind, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: %s pattern is empty", ErrInvalidConfig, kind)
	case strings.Contains(strings.TrimSuffix(p, "*"), "*"):
		return fmt.Errorf("%w: %s pattern %q: '*' may only end a pattern", ErrInvalidConfig, kind, p)
	case !strings.HasSuffix(p, "*") && ValidateTopic(p) != nil:
		return fmt.Errorf("%w: %s pattern %q is not a valid topic name", ErrInvalidConfig, kind, p)
	}
	return nil
}

// comparePatterns orders patterns for matching: exact names first, then
// prefixes by decreasing length, so that the first match is the most
// specific.
func comparePatterns(a, b string) int {
	aw, bw := strings.HasSuffix(a, "*"), strings.HasSuffix(b, "*")
	switch {
	case aw != bw && !aw:
		return -1
	case aw != bw:
		return 1
	}
	return len(b) - len(a)
}

// patternMatches reports whether topic follows pattern p.
func patternMatches(p, topic string) bool {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return strings.HasPrefix(topic, prefix)
	}
	return p == topic
}
