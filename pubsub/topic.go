package pubsub

import "github.com/ringcast/ringcast/pubsub/topics"

// MaxTopicLen is the longest topic name, in bytes.
const MaxTopicLen = topics.MaxLen

// ValidateTopic reports whether topic is a valid topic name: non-empty, at
// most MaxTopicLen bytes, valid UTF-8, and free of control characters. The
// error wraps ErrInvalidTopic and says which rule failed. It is
// [topics.Validate].
func ValidateTopic(topic string) error { return topics.Validate(topic) }
