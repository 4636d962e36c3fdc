package pubsub

import (
	"fmt"
	"strconv"
	"strings"
)

// Presence rules as text, for flags and environment variables. A spec is
// a list of rules separated by ';':
//
//	rooms:* entries=10000 metas=20; lobby; *
//
// Each rule is a PATTERN (PresenceRule.Pattern: a topic name, a prefix
// followed by '*', or '*'; it holds no space and no ';') followed by
// options separated by spaces: entries=N sets MaxEntries and metas=N sets
// MaxMetasPerKey. Blank rules are ignored; option names are
// case-insensitive.

// ParsePresence reads PresenceRules from spec (see the syntax above), in
// the order written, and checks them as New does. Every error wraps
// ErrInvalidConfig and names the rule by its number and text. An empty
// spec holds no rule: no topic tracks presence.
func ParsePresence(spec string) ([]PresenceRule, error) {
	out := []PresenceRule{}
	n := 0
	for _, text := range strings.Split(spec, ";") {
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		n++
		r, err := parsePresenceRule(text)
		if err == nil {
			_, err = newPresenceRules(append(out, r))
		}
		if err != nil {
			return nil, fmt.Errorf("%w: presence rule %d (%q): %s", ErrInvalidConfig, n, text, ruleReason(err))
		}
		out = append(out, r)
	}
	return out, nil
}

func parsePresenceRule(text string) (PresenceRule, error) {
	fields := strings.Fields(text)
	r := PresenceRule{Pattern: fields[0]}
	if strings.Contains(r.Pattern, "=") {
		return r, fmt.Errorf("%q is an option where a pattern is expected", r.Pattern)
	}
	for _, f := range fields[1:] {
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			return r, fmt.Errorf("%q is not NAME=VALUE", f)
		}
		v, err := strconv.Atoi(value)
		if err != nil || v <= 0 {
			return r, fmt.Errorf("%s=%q: want a whole number above 0", name, value)
		}
		switch strings.ToLower(name) {
		case "entries":
			r.MaxEntries = v
		case "metas":
			r.MaxMetasPerKey = v
		default:
			return r, fmt.Errorf("unknown option %q (entries or metas)", name)
		}
	}
	return r, nil
}

// FormatPresence writes rules in ParsePresence's syntax.
func FormatPresence(rules []PresenceRule) string {
	parts := make([]string, 0, len(rules))
	for _, r := range rules {
		s := r.Pattern
		if r.MaxEntries > 0 {
			s += " entries=" + strconv.Itoa(r.MaxEntries)
		}
		if r.MaxMetasPerKey > 0 {
			s += " metas=" + strconv.Itoa(r.MaxMetasPerKey)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
