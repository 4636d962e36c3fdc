// Package topics holds what every part of ringcast says the same way about
// a topic: which names are valid, a position in a topic's order, and the
// error that a topic's history no longer reaches back to a position.
//
// Package pubsub (the node) and package gateway (the WebSocket gateway)
// both use it; it imports nothing of ringcast's, so the gateway can serve
// another broker without importing the node.
package topics

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxLen is the longest topic name, in bytes. It is also the Phoenix V2
// binary frame's limit: every string there has a one-byte length.
const MaxLen = 255

// ErrInvalid is wrapped by Validate's errors. pubsub.ErrInvalidTopic is the
// same value.
var ErrInvalid = errors.New("pubsub: invalid topic")

// Validate reports whether name is a valid topic name: 1 to MaxLen bytes of
// valid UTF-8 without control characters (C0, DEL or C1). The error wraps
// ErrInvalid and says which rule failed.
func Validate(name string) error {
	if reason := NameProblem(name, MaxLen); reason != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, reason)
	}
	return nil
}

// NameProblem returns why s is not a valid name of at most max bytes (a
// topic, or a gateway event name), or "" when it is valid. The reasons are
// short phrases clients see: "empty", "longer than 255 bytes", "control
// character", "not valid UTF-8".
func NameProblem(s string, max int) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > max:
		return fmt.Sprintf("longer than %d bytes", max)
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b < 0x20 || b == 0x7f {
				return "control character"
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return "not valid UTF-8"
		}
		if r >= 0x80 && r <= 0x9f {
			return "control character"
		}
		i += size
	}
	return ""
}

// Position is a place in a topic's order: the topic's epoch (which changes
// only when its state was lost and it started over) and a sequence number
// that grows by one per message within the epoch.
type Position struct {
	Epoch uint64
	Seq   uint64
}

// ErrHistoryGone is wrapped when a topic's history no longer reaches back
// to a requested position. The error is then a *HistoryGoneError.
var ErrHistoryGone = errors.New("pubsub: history no longer reaches back that far")

// HistoryGoneError says why a recovery could not be served and where the
// topic is now, so that a client can start over from there.
type HistoryGoneError struct {
	Topic     string
	Requested Position // what the subscriber asked to resume after
	Current   Position // the topic's current epoch and last sequence number
	Oldest    uint64   // the oldest sequence number history still holds (0: unknown)
}

func (e *HistoryGoneError) Error() string {
	if e.Requested.Epoch != 0 && e.Requested.Epoch != e.Current.Epoch {
		return fmt.Sprintf("pubsub: history of %q was reset: epoch %d is now %d", e.Topic, e.Requested.Epoch, e.Current.Epoch)
	}
	if e.Requested.Seq > e.Current.Seq {
		return fmt.Sprintf("pubsub: %q has not reached seq %d; the topic is at epoch %d seq %d", e.Topic, e.Requested.Seq, e.Current.Epoch, e.Current.Seq)
	}
	if e.Oldest == 0 {
		return fmt.Sprintf("pubsub: history of %q does not reach back to seq %d; the topic is at epoch %d seq %d", e.Topic, e.Requested.Seq, e.Current.Epoch, e.Current.Seq)
	}
	return fmt.Sprintf("pubsub: history of %q starts at seq %d, after %d was requested", e.Topic, e.Oldest, e.Requested.Seq)
}

// Unwrap makes errors.Is(err, ErrHistoryGone) hold.
func (e *HistoryGoneError) Unwrap() error { return ErrHistoryGone }
