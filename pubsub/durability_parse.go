package pubsub

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Durability rules as text, for flags, environment variables and
// configuration files. A spec is a list of rules separated by ';':
//
//	notifications:*=durable age=720h count=100000; cursor:*=memory; *=durable
//
// Each rule is PATTERN=MODE followed by options separated by spaces:
//
//   - PATTERN is what Durability.Pattern holds: a topic name, a prefix
//     followed by '*', or '*'. A pattern holding a space, ';', '=' or '"'
//     is written as a Go string literal: "room 1"=memory.
//   - MODE is durable (kept in the store) or memory (memory-only).
//   - age=DURATION (a Go duration such as 720h or 90m) sets MaxAge and
//     count=N sets MaxCount; only durable rules take them.
//
// Blank rules (a trailing ';') are ignored, and so is space around ';' and
// '='. Mode and option names are case-insensitive.

// Durability modes as ParseDurability reads and FormatDurability writes
// them.
const (
	DurabilityDurable = "durable"
	DurabilityMemory  = "memory"
)

// ParseDurability reads Durability rules from spec (see the syntax above),
// in the order written. It checks each rule as New does: every error wraps
// ErrInvalidConfig and names the rule, by its number and text. An empty or
// blank spec holds no rule, which makes every topic memory-only.
func ParseDurability(spec string) ([]Durability, error) {
	p := durabilityParser{s: spec}
	out := []Durability{}
	for n := 1; ; n++ {
		p.skipSpace()
		if p.done() {
			break
		}
		if p.peek() == ';' {
			p.i++
			n--
			continue
		}
		start := p.i
		r, err := p.rule()
		if err == nil {
			_, err = newDurabilityRules([]Durability{r})
		}
		if err != nil {
			p.toRuleEnd()
			text := strings.TrimSpace(spec[start:p.i])
			return nil, fmt.Errorf("%w: durability rule %d (%q): %s", ErrInvalidConfig, n, text, ruleReason(err))
		}
		for _, prev := range out {
			if prev.Pattern == r.Pattern {
				return nil, fmt.Errorf("%w: durability rule %d (%q): pattern %q given twice",
					ErrInvalidConfig, n, strings.TrimSpace(spec[start:p.i]), r.Pattern)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// ruleReason is err's text without the ErrInvalidConfig prefix, which the
// caller adds once.
func ruleReason(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, ErrInvalidConfig.Error()+": ")
	return s
}

// FormatDurability writes rules in the syntax ParseDurability reads, in
// their order, with a pattern quoted only when it has to be. What it
// writes for rules ParseDurability returned parses back to the same rules.
func FormatDurability(rules []Durability) string {
	var b strings.Builder
	for i, r := range rules {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(formatPattern(r.Pattern))
		b.WriteByte('=')
		if r.Memory {
			b.WriteString(DurabilityMemory)
		} else {
			b.WriteString(DurabilityDurable)
		}
		if r.MaxAge != 0 {
			b.WriteString(" age=")
			b.WriteString(formatAge(r.MaxAge))
		}
		if r.MaxCount != 0 {
			b.WriteString(" count=")
			b.WriteString(strconv.FormatUint(r.MaxCount, 10))
		}
	}
	return b.String()
}

// formatPattern quotes a pattern that would not read back unquoted.
func formatPattern(p string) string {
	if p == "" || !utf8.ValidString(p) || strings.ContainsFunc(p, func(r rune) bool {
		return r == ';' || r == '=' || r == '"' || unicode.IsSpace(r) || !unicode.IsPrint(r)
	}) {
		return strconv.Quote(p)
	}
	return p
}

// formatAge writes d as time.Duration does, without trailing zero units:
// 720h, 1h30m, 90s.
func formatAge(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// durabilityParser reads a spec left to right.
type durabilityParser struct {
	s string
	i int
}

func (p *durabilityParser) done() bool { return p.i >= len(p.s) }
func (p *durabilityParser) peek() byte { return p.s[p.i] }

// skipSpace skips white space (Unicode's).
func (p *durabilityParser) skipSpace() {
	for !p.done() {
		r, size := utf8.DecodeRuneInString(p.s[p.i:])
		if !unicode.IsSpace(r) {
			return
		}
		p.i += size
	}
}

// word reads up to white space or one of the stop bytes.
func (p *durabilityParser) word(stops string) string {
	start := p.i
	for !p.done() {
		r, size := utf8.DecodeRuneInString(p.s[p.i:])
		if unicode.IsSpace(r) || (r < utf8.RuneSelf && strings.IndexByte(stops, byte(r)) >= 0) {
			break
		}
		p.i += size
	}
	return p.s[start:p.i]
}

// toRuleEnd moves past what is left of the current rule, for the error
// message, stepping over quoted strings.
func (p *durabilityParser) toRuleEnd() {
	for !p.done() && p.peek() != ';' {
		if p.peek() == '"' {
			if q, err := strconv.QuotedPrefix(p.s[p.i:]); err == nil {
				p.i += len(q)
				continue
			}
		}
		p.i++
	}
}

// rule reads one rule, up to ';' or the end.
func (p *durabilityParser) rule() (Durability, error) {
	var r Durability
	if p.peek() == '"' {
		q, err := strconv.QuotedPrefix(p.s[p.i:])
		if err != nil {
			return r, fmt.Errorf("unterminated or malformed quoted pattern")
		}
		p.i += len(q)
		r.Pattern, _ = strconv.Unquote(q)
	} else {
		r.Pattern = p.word("=;\"")
	}
	if r.Pattern == "" {
		return r, fmt.Errorf("no pattern: want PATTERN=durable or PATTERN=memory")
	}
	p.skipSpace()
	if p.done() || p.peek() != '=' {
		return r, fmt.Errorf("no mode: want %s=durable or %s=memory", formatPattern(r.Pattern), formatPattern(r.Pattern))
	}
	p.i++
	p.skipSpace()
	switch mode := p.word(";"); strings.ToLower(mode) {
	case DurabilityDurable:
	case DurabilityMemory:
		r.Memory = true
	case "":
		return r, fmt.Errorf("no mode after '=': want durable or memory")
	default:
		return r, fmt.Errorf("unknown mode %q: want durable or memory", mode)
	}
	var sawAge, sawCount bool
	for {
		p.skipSpace()
		if p.done() || p.peek() == ';' {
			return r, nil
		}
		opt := p.word(";")
		key, val, ok := strings.Cut(opt, "=")
		if !ok {
			return r, fmt.Errorf("option %q: want age=DURATION or count=N", opt)
		}
		switch strings.ToLower(key) {
		case "age":
			if sawAge {
				return r, fmt.Errorf("age given twice")
			}
			sawAge = true
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return r, fmt.Errorf("age %q: want a positive duration such as 720h or 90m", val)
			}
			r.MaxAge = d
		case "count":
			if sawCount {
				return r, fmt.Errorf("count given twice")
			}
			sawCount = true
			c, err := strconv.ParseUint(val, 10, 64)
			if err != nil || c == 0 {
				return r, fmt.Errorf("count %q: want a positive whole number of messages", val)
			}
			r.MaxCount = c
		default:
			return r, fmt.Errorf("unknown option %q: want age=DURATION or count=N", key)
		}
		if r.Memory {
			return r, fmt.Errorf("a memory rule keeps nothing in the store, so it takes no %s", strings.ToLower(key))
		}
	}
}
