package pubsub

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParsePresence(t *testing.T) {
	for spec, want := range map[string][]PresenceRule{
		"":                                   {},
		" ; ":                                {},
		"*":                                  {{Pattern: "*"}},
		"rooms:* entries=10 metas=2; lobby;": {{Pattern: "rooms:*", MaxEntries: 10, MaxMetasPerKey: 2}, {Pattern: "lobby"}},
		"lobby METAS=3":                      {{Pattern: "lobby", MaxMetasPerKey: 3}},
	} {
		got, err := ParsePresence(spec)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParsePresence(%q) = %+v, %v; want %+v", spec, got, err, want)
			continue
		}
		again, err := ParsePresence(FormatPresence(got))
		if err != nil || !slices.Equal(again, got) {
			t.Errorf("FormatPresence(%+v) = %q, read back as %+v, %v", got, FormatPresence(got), again, err)
		}
	}
	for spec, reason := range map[string]string{
		"rooms:* entries=0":     "above 0",
		"rooms:* entries=x":     "above 0",
		"rooms:* size=3":        `unknown option "size"`,
		"rooms:* entries":       "NAME=VALUE",
		"a*b":                   "'*' may only end",
		"lobby; rooms:*; lobby": "given twice",
		"entries=3":             "where a pattern is expected",
		"bad\x00topic":          "not a valid topic name",
	} {
		_, err := ParsePresence(spec)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), reason) || !strings.Contains(err.Error(), "presence rule") {
			t.Errorf("ParsePresence(%q) = %v, want ErrInvalidConfig naming the rule and %q", spec, err, reason)
		}
	}
}
