package email

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of an email's text.
const (
	fullTextRunes    = 2000 // a notification shown in full (a reminder)
	excerptRunes     = 160  // a notification's excerpt in a digest
	excerptsPerTopic = 3    // excerpts per topic in a digest
	digestTopics     = 25   // topics listed in a digest, the rest counted
)

// topicUnread is one topic of a reminder: its unread count and its latest
// unread notifications.
type topicUnread struct {
	topic   string    // notification topic name (without "notifications:")
	readSeq uint64    // the user's cursor
	head    uint64    // the topic's last sequence number
	latest  []excerpt // newest first; may be fewer than unread (trimmed history)
}

// unread is head - readSeq.
func (t topicUnread) unread() uint64 {
	if t.head <= t.readSeq {
		return 0
	}
	return t.head - t.readSeq
}

// excerpt is one notification's text.
type excerpt struct {
	seq  uint64
	data []byte
}

// reminder is what one email says.
type reminder struct {
	user   string
	topics []topicUnread
	digest bool
	delay  time.Duration
	link   string
}

// isDigest reports whether topics call for a digest rather than the
// notifications in full: more topics, or more unread notifications, than
// digestAfter.
func isDigest(topics []topicUnread, digestAfter int) bool {
	if len(topics) > digestAfter {
		return true
	}
	var total uint64
	for _, t := range topics {
		total += t.unread()
	}
	return total > uint64(digestAfter)
}

// render returns the email's subject and text body.
func (r reminder) render() (subject, body string) {
	topics := append([]topicUnread(nil), r.topics...)
	var total uint64
	for _, t := range topics {
		total += t.unread()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Hello %s,\n\n", r.user)
	if r.digest {
		sort.SliceStable(topics, func(i, j int) bool {
			if topics[i].unread() != topics[j].unread() {
				return topics[i].unread() > topics[j].unread()
			}
			return topics[i].topic < topics[j].topic
		})
		subject = fmt.Sprintf("%s in %s", plural(total, "unread notification"), plural(uint64(len(topics)), "topic"))
		fmt.Fprintf(&b, "you have %s in %s:\n", plural(total, "unread notification"), plural(uint64(len(topics)), "topic"))
		for i, t := range topics {
			if i == digestTopics {
				more := len(topics) - i
				noun := "topics"
				if more == 1 {
					noun = "topic"
				}
				fmt.Fprintf(&b, "\n… and %d more %s.\n", more, noun)
				break
			}
			fmt.Fprintf(&b, "\n%s: %d unread\n", t.topic, t.unread())
			shown := 0
			for _, e := range t.latest {
				if shown == excerptsPerTopic {
					break
				}
				fmt.Fprintf(&b, "  #%d  %s\n", e.seq, oneLine(notificationText(e.data), excerptRunes))
				shown++
			}
			if more := t.unread() - uint64(shown); shown > 0 && more > 0 {
				fmt.Fprintf(&b, "  … and %d more\n", more)
			}
		}
	} else {
		sort.SliceStable(topics, func(i, j int) bool { return topics[i].topic < topics[j].topic })
		names := make([]string, len(topics))
		for i, t := range topics {
			names[i] = t.topic
		}
		if total == 1 {
			subject = "New notification in " + joinNames(names)
		} else {
			subject = fmt.Sprintf("%d new notifications in %s", total, joinNames(names))
		}
		fmt.Fprintf(&b, "you have %s:\n", plural(total, "unread notification"))
		for _, t := range topics {
			fmt.Fprintf(&b, "\n%s (%d unread)\n", t.topic, t.unread())
			for i := len(t.latest) - 1; i >= 0; i-- { // oldest first
				e := t.latest[i]
				fmt.Fprintf(&b, "\n  #%d\n%s\n", e.seq, indent(trimRunes(notificationText(e.data), fullTextRunes), "  "))
			}
		}
	}
	b.WriteString("\n")
	if r.link != "" {
		fmt.Fprintf(&b, "Read them at %s\n", r.link)
	}
	fmt.Fprintf(&b, "This reminder was sent because these notifications stayed unread for %s while you were away.\n", r.delay)
	return subject, b.String()
}

// plural writes n and noun, with an s when n is not 1.
func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// joinNames lists names: "a", "a and b", "a, b and c".
func joinNames(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// notificationText is the text of a notification's body: a JSON string
// unquoted, other JSON compacted, anything else as it is (valid UTF-8).
func notificationText(data []byte) string {
	trimmed := bytes.TrimSpace(data)
	if json.Valid(trimmed) {
		var s string
		if err := json.Unmarshal(trimmed, &s); err == nil {
			return s
		}
		var c bytes.Buffer
		if err := json.Compact(&c, trimmed); err == nil {
			return c.String()
		}
	}
	return strings.ToValidUTF8(string(data), "\uFFFD")
}

// trimRunes cuts s to at most n runes, ending it with "…" when cut, and
// drops control characters other than newline and tab.
func trimRunes(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

// oneLine trims s to n runes on one line (white space collapsed).
func oneLine(s string, n int) string {
	return trimRunes(strings.Join(strings.Fields(s), " "), n)
}

// indent prefixes each line of s.
func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}
