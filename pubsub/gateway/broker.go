package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/ringcast/ringcast/pubsub/topics"
)

// Message is one publication as the broker delivers it.
//
// Data is an envelope made by [EncodeEnvelope]. The broker may share Data
// between every subscription it delivers the message to: nobody may modify it.
type Message struct {
	Topic string
	Epoch uint64
	Seq   uint64
	Data  []byte
}

// Broker is the pub/sub system behind the gateway (a ringcast pubsub.Node in
// production, a [MemoryBroker] in tests and single-process programs).
//
// The gateway holds at most one subscription per topic: it subscribes when the
// first local client joins a topic and unsubscribes when the last one leaves.
// All methods may be called concurrently.
type Broker interface {
	// Subscribe returns only once the subscription works cluster-wide: every
	// message published after Subscribe returned is delivered.
	//
	// deliver is called for each message, sequentially and in order for this
	// subscription, never concurrently with itself; it must not block (the
	// gateway only enqueues). closed is called at most once if the broker ends
	// the subscription itself (slow consumer, node shutdown); it is not called
	// after unsubscribe. Neither callback calls back into the broker.
	Subscribe(ctx context.Context, topic string, deliver func(Message), closed func(error)) (unsubscribe func() error, err error)

	// Publish publishes data and returns the sequence number the topic owner
	// assigned.
	Publish(ctx context.Context, topic string, data []byte) (seq uint64, err error)
}

// Limits of topic and event names. They come from the Phoenix V2 binary
// frames, which carry every string behind a one-byte length.
const (
	MaxTopicLen = topics.MaxLen
	MaxEventLen = 255
)

var (
	// ErrInvalidTopic is returned by ValidateTopic. It is topics.ErrInvalid,
	// the error a ringcast node returns for the same names.
	ErrInvalidTopic = topics.ErrInvalid
	// ErrInvalidEvent is returned by ValidateEvent.
	ErrInvalidEvent = errors.New("gateway: invalid event")
	// ErrMalformedEnvelope is returned by DecodeEnvelope for data that is not an envelope.
	ErrMalformedEnvelope = errors.New("gateway: malformed envelope")
)

// ValidateTopic reports whether topic may be joined and published to: it must
// be 1 to MaxTopicLen bytes of valid UTF-8 without control characters. The
// error wraps ErrInvalidTopic and says which rule failed. It is
// [topics.Validate].
func ValidateTopic(topic string) error { return topics.Validate(topic) }

// ValidateEvent reports whether event may be published: the same rules as
// ValidateTopic, with MaxEventLen. The error wraps ErrInvalidEvent.
func ValidateEvent(event string) error {
	if reason := topics.NameProblem(event, MaxEventLen); reason != "" {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, reason)
	}
	return nil
}

// Envelope layout: one byte version<<4 | kind, one byte event length, the
// event, then the payload up to the end.
const (
	envelopeVersion    = 1
	envelopeKindJSON   = 0
	envelopeKindBinary = 1
	envelopeHeaderLen  = 2
)

// EncodeEnvelope returns the broker data for one publication: the event name,
// and either the raw JSON bytes of the payload (binary false) or binary bytes
// (binary true). JSON payloads are kept as the exact bytes given, so clients
// receive them byte for byte. The gateway does not validate JSON payloads at
// this point; it checks them once per gateway when they are delivered and
// drops invalid ones.
//
// event must be 1 to MaxEventLen bytes; EncodeEnvelope returns nil otherwise
// (check with ValidateEvent first). The result does not alias payload.
func EncodeEnvelope(event string, payload []byte, binary bool) []byte {
	if len(event) == 0 || len(event) > MaxEventLen {
		return nil
	}
	kind := byte(envelopeKindJSON)
	if binary {
		kind = envelopeKindBinary
	}
	b := make([]byte, envelopeHeaderLen+len(event)+len(payload))
	b[0] = envelopeVersion<<4 | kind
	b[1] = byte(len(event))
	n := copy(b[envelopeHeaderLen:], event)
	copy(b[envelopeHeaderLen+n:], payload)
	return b
}

// DecodeEnvelope splits data made by EncodeEnvelope. payload aliases data.
// Errors wrap ErrMalformedEnvelope.
func DecodeEnvelope(data []byte) (event string, payload []byte, binary bool, err error) {
	if len(data) < envelopeHeaderLen {
		return "", nil, false, fmt.Errorf("%w: %d bytes, shorter than the header", ErrMalformedEnvelope, len(data))
	}
	if v := data[0] >> 4; v != envelopeVersion {
		return "", nil, false, fmt.Errorf("%w: unknown version %d", ErrMalformedEnvelope, v)
	}
	switch data[0] & 0x0f {
	case envelopeKindJSON:
	case envelopeKindBinary:
		binary = true
	default:
		return "", nil, false, fmt.Errorf("%w: unknown kind %d", ErrMalformedEnvelope, data[0]&0x0f)
	}
	n := int(data[1])
	if n == 0 {
		return "", nil, false, fmt.Errorf("%w: empty event", ErrMalformedEnvelope)
	}
	if len(data) < envelopeHeaderLen+n {
		return "", nil, false, fmt.Errorf("%w: event length %d exceeds the data", ErrMalformedEnvelope, n)
	}
	event = string(data[envelopeHeaderLen : envelopeHeaderLen+n])
	return event, data[envelopeHeaderLen+n:], binary, nil
}
