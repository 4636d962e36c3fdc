package pubsub

import (
	"fmt"
	"slices"
	"time"

	"github.com/ringcast/ringcast/pubsub/store"
)

// Store is the database beneath durable topics; see Config.Store and
// package store.
type Store = store.Store

// Durability says whether the topics a pattern matches are kept in
// Config.Store, and for how long.
//
// Pattern is an exact topic name ("orders"), a prefix followed by "*"
// ("notifications:*", every topic of that namespace), or "*" (every
// topic). A topic follows its most specific rule: an exact name before any
// pattern, a longer prefix before a shorter one. A topic no rule matches
// is memory-only.
type Durability struct {
	Pattern string

	// Memory makes the matched topics memory-only: they never touch the
	// store (cursors, typing indicators, presence pings).
	Memory bool

	// MaxAge and MaxCount bound what the store keeps of each matched topic:
	// messages older than MaxAge, and all but the newest MaxCount, are
	// deleted in the background. Zero: no bound.
	MaxAge   time.Duration
	MaxCount uint64
}

// durabilityRules are a node's Durability rules, ordered for matching:
// exact names first, then patterns by decreasing prefix length.
type durabilityRules []Durability

func newDurabilityRules(rules []Durability) (durabilityRules, error) {
	out := slices.Clone(rules)
	seen := make(map[string]bool, len(out))
	for _, r := range out {
		p := r.Pattern
		if err := checkPattern("Durability", p); err != nil {
			return nil, err
		}
		switch {
		case r.MaxAge < 0:
			return nil, fmt.Errorf("%w: Durability pattern %q: negative MaxAge", ErrInvalidConfig, p)
		case r.Memory && (r.MaxAge != 0 || r.MaxCount != 0):
			return nil, fmt.Errorf("%w: Durability pattern %q: a memory-only rule has no store retention", ErrInvalidConfig, p)
		case seen[p]:
			return nil, fmt.Errorf("%w: Durability pattern %q given twice", ErrInvalidConfig, p)
		}
		seen[p] = true
	}
	slices.SortStableFunc(out, func(a, b Durability) int { return comparePatterns(a.Pattern, b.Pattern) })
	return out, nil
}

// match returns the rule topic follows, or nil (memory-only).
func (rs durabilityRules) match(topic string) *Durability {
	for i := range rs {
		if patternMatches(rs[i].Pattern, topic) {
			return &rs[i]
		}
	}
	return nil
}

// durable returns the rule of a topic kept in the store, or nil for a
// memory-only topic.
func (rs durabilityRules) durable(topic string) *Durability {
	if r := rs.match(topic); r != nil && !r.Memory {
		return r
	}
	return nil
}
