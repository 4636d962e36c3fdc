package pubsub

import (
	"errors"

	"github.com/ringcast/ringcast/pubsub/topics"
)

// Sentinel errors. Errors returned by Node methods wrap one of these (test
// with errors.Is); the text after the sentinel adds the detail.
var (
	// ErrClosed is returned by every call on a Node that has been closed or
	// shut down, and ends the subscriptions it still had.
	ErrClosed = errors.New("pubsub: node closed")

	// ErrInvalidTopic is returned for an empty topic, a topic longer than
	// MaxTopicLen bytes, or one that is not valid UTF-8 or holds control
	// characters.
	ErrInvalidTopic = topics.ErrInvalid

	// ErrPayloadTooLarge is returned when a payload exceeds Config.MaxPayload.
	ErrPayloadTooLarge = errors.New("pubsub: payload too large")

	// ErrInvalidConfig is returned by New for a configuration it cannot run.
	ErrInvalidConfig = errors.New("pubsub: invalid config")

	// ErrNoOwner is returned when no member of the cluster owns topics, or a
	// request could not reach the topic's owner after the allowed forwards.
	ErrNoOwner = errors.New("pubsub: no owner for topic")

	// ErrUnavailable is returned when the owner could not be reached in time
	// or its link refused the request (queue full, peer gone).
	ErrUnavailable = errors.New("pubsub: owner unavailable")

	// ErrQueueFull is returned, together with ErrUnavailable, when the link
	// to the member a request must go through already holds as much as it
	// may queue: back-pressure. The request was not sent; try again later.
	ErrQueueFull = errors.New("pubsub: peer link queue full")

	// ErrStoreUnavailable is returned, together with ErrUnavailable, for a
	// publish to a durable topic that the store did not commit: the
	// database could not be reached or written (down, full, too slow), or
	// the topic's owner lost its claim in the store and no other owner
	// took the publish in time. Nothing was acknowledged; memory-only
	// topics are not affected. Retry later.
	ErrStoreUnavailable error = storeUnavailableError{}

	// ErrSlowConsumer ends a subscription whose buffer overflowed under the
	// default overflow policy. Messages buffered before the overflow are still
	// returned by Next first.
	ErrSlowConsumer = errors.New("pubsub: slow consumer")

	// ErrUnsubscribed is returned by Next after Unsubscribe.
	ErrUnsubscribed = errors.New("pubsub: unsubscribed")

	// ErrHistoryGone is returned by Subscribe with Since when the topic's
	// history no longer reaches back to the requested position. The error
	// is a *HistoryGoneError.
	ErrHistoryGone = topics.ErrHistoryGone
)

// HistoryGoneError says why a recovery with Since could not be served and
// where the topic is now, so that a client can resynchronise.
type HistoryGoneError = topics.HistoryGoneError

// Codes carried in acknowledgement frames between nodes. They map to the
// sentinels above so that a caller sees the same error whether the owner was
// local or remote.
const (
	codeOK uint8 = iota
	codeInvalidTopic
	codePayloadTooLarge
	codeNoOwner
	codeClosed
	codeUnavailable
	codeStoreUnavailable
)

// storeUnavailableError is ErrStoreUnavailable: it is also ErrUnavailable.
type storeUnavailableError struct{}

func (storeUnavailableError) Error() string   { return "pubsub: store unavailable" }
func (storeUnavailableError) Is(t error) bool { return t == ErrUnavailable }

func errorCode(err error) uint8 {
	switch {
	case err == nil:
		return codeOK
	case errors.Is(err, ErrInvalidTopic):
		return codeInvalidTopic
	case errors.Is(err, ErrPayloadTooLarge):
		return codePayloadTooLarge
	case errors.Is(err, ErrNoOwner):
		return codeNoOwner
	case errors.Is(err, ErrClosed):
		return codeClosed
	case errors.Is(err, ErrStoreUnavailable):
		return codeStoreUnavailable
	default:
		return codeUnavailable
	}
}

func codeError(code uint8, msg string) error {
	var base error
	switch code {
	case codeOK:
		return nil
	case codeInvalidTopic:
		base = ErrInvalidTopic
	case codePayloadTooLarge:
		base = ErrPayloadTooLarge
	case codeNoOwner:
		base = ErrNoOwner
	case codeClosed:
		base = ErrClosed
	case codeStoreUnavailable:
		base = ErrStoreUnavailable
	default:
		base = ErrUnavailable
	}
	if msg == "" || msg == base.Error() {
		return base
	}
	return &remoteError{base: base, msg: msg}
}

// remoteError carries the owner's message while matching the sentinel.
type remoteError struct {
	base error
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.base }
