package pubsub

import (
	"fmt"
	"unicode/utf8"
)

// MaxTopicLen is the longest topic name, in bytes.
const MaxTopicLen = 255

// ValidateTopic reports whether topic is a valid topic name: non-empty, at
// most MaxTopicLen bytes, valid UTF-8, and free of control characters. The
// error wraps ErrInvalidTopic.
func ValidateTopic(topic string) error {
	if topic == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	}
	if len(topic) > MaxTopicLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidTopic, len(topic), MaxTopicLen)
	}
	for i := 0; i < len(topic); {
		c := topic[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return fmt.Errorf("%w: control character at byte %d", ErrInvalidTopic, i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(topic[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrInvalidTopic, i)
		}
		if r >= 0x80 && r <= 0x9f {
			return fmt.Errorf("%w: control character at byte %d", ErrInvalidTopic, i)
		}
		i += size
	}
	return nil
}
