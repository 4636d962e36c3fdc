package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ringcast/ringcast/pubsub"
)

// Namespaces of the ringcast topics the notification system uses.
const (
	// RingPrefix starts the ringcast topic of every notification topic.
	// The binaries keep "notifications:*" durable.
	RingPrefix = "notifications:"
	// UserPrefix starts each user's control topic, memory-only
	// ("users:*").
	UserPrefix = "users:"
)

// RingTopic returns the ringcast topic that carries the notifications of
// the notification topic name: "notifications:"+name.
func RingTopic(name string) string { return RingPrefix + name }

// UserTopic returns the ringcast topic that carries the control events of
// user id: "users:"+id.
func UserTopic(id string) string { return UserPrefix + id }

// TopicFromRing returns the notification topic of a ringcast topic, and
// false when ring is not in the "notifications:" namespace.
func TopicFromRing(ring string) (string, bool) {
	name, ok := strings.CutPrefix(ring, RingPrefix)
	return name, ok && name != ""
}

// Types of control events.
const (
	// EventRead: the user has read Topic up to ReadSeq.
	EventRead = "read"
	// EventReadAll: the user has read everything of every topic.
	EventReadAll = "read_all"
	// EventSubscribed: the user subscribed to Topic, whose notifications
	// up to ReadSeq (its head then) count as read.
	EventSubscribed = "subscribed"
	// EventUnsubscribed: the user no longer subscribes to Topic (they
	// unsubscribed, or its creator deleted it).
	EventUnsubscribed = "unsubscribed"
)

// ControlEvent is a change of a user's read state or subscriptions,
// published on UserTopic(user) after the change has committed, so that
// every session of the user, on any gateway, learns it at once. On the
// wire (JSON):
//
//	{"type":"read","topic":T,"read_seq":S}
//	{"type":"read_all"}
//	{"type":"subscribed","topic":T,"read_seq":S}
//	{"type":"unsubscribed","topic":T}
type ControlEvent struct {
	Type    string
	Topic   string // all but EventReadAll
	ReadSeq uint64 // EventRead and EventSubscribed
}

// controlWire is ControlEvent's JSON form.
type controlWire struct {
	Type    string  `json:"type"`
	Topic   string  `json:"topic,omitempty"`
	ReadSeq *uint64 `json:"read_seq,omitempty"`
}

// MarshalJSON writes the event in the form its type has (see
// ControlEvent).
func (e ControlEvent) MarshalJSON() ([]byte, error) {
	w := controlWire{Type: e.Type}
	switch e.Type {
	case EventRead, EventSubscribed:
		seq := e.ReadSeq
		w.Topic, w.ReadSeq = e.Topic, &seq
	case EventUnsubscribed:
		w.Topic = e.Topic
	case EventReadAll:
	default:
		return nil, fmt.Errorf("notify: unknown control event type %q", e.Type)
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads an event and checks that it has the fields its type
// needs.
func (e *ControlEvent) UnmarshalJSON(data []byte) error {
	var w controlWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	switch w.Type {
	case EventRead, EventSubscribed:
		if w.Topic == "" || w.ReadSeq == nil {
			return fmt.Errorf("notify: control event %q without topic or read_seq", w.Type)
		}
		*e = ControlEvent{Type: w.Type, Topic: w.Topic, ReadSeq: *w.ReadSeq}
	case EventUnsubscribed:
		if w.Topic == "" {
			return fmt.Errorf("notify: control event %q without topic", w.Type)
		}
		*e = ControlEvent{Type: w.Type, Topic: w.Topic}
	case EventReadAll:
		*e = ControlEvent{Type: w.Type}
	default:
		return fmt.Errorf("notify: unknown control event type %q", w.Type)
	}
	return nil
}

// ParseControlEvent reads a control event as published on a user's topic.
func ParseControlEvent(data []byte) (ControlEvent, error) {
	var e ControlEvent
	err := json.Unmarshal(data, &e)
	return e, err
}

// TopicState is a user's read state of one subscribed topic. Unread is
// LastSeq − ReadSeq, exact.
type TopicState struct {
	Name    string `json:"name"`
	Unread  uint64 `json:"unread"`
	LastSeq uint64 `json:"last_seq"` // the topic's committed head
	ReadSeq uint64 `json:"read_seq"` // the user's cursor
}

// Inbox is a user's read state of every topic they subscribe to, ordered
// by name, and the sum of their unread counts.
type Inbox struct {
	Unread uint64       `json:"unread"`
	Topics []TopicState `json:"topics"`
}

// Publisher publishes to ringcast topics. It returns the message's place
// in the topic's order once the topic's owner has sequenced it (for a
// durable topic: committed it in the store). NodePublisher adapts a
// *pubsub.Node; tests use fakes.
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte) (epoch, seq uint64, err error)
}

// PublisherFunc is a function that is a Publisher.
type PublisherFunc func(ctx context.Context, topic string, data []byte) (epoch, seq uint64, err error)

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, topic string, data []byte) (uint64, uint64, error) {
	return f(ctx, topic, data)
}

// NodePublisher is the Publisher of a pubsub node: Node.Publish with the
// default acknowledgement (the owner has sequenced, and for a durable
// topic committed, the message).
func NodePublisher(n *pubsub.Node) Publisher {
	return PublisherFunc(func(ctx context.Context, topic string, data []byte) (uint64, uint64, error) {
		r, err := n.Publish(ctx, topic, data)
		return r.Epoch, r.Seq, err
	})
}

// publishError maps a Publisher's error to the package's sentinels.
func publishError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pubsub.ErrPayloadTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.Is(err, pubsub.ErrUnavailable), errors.Is(err, pubsub.ErrNoOwner),
		errors.Is(err, pubsub.ErrClosed), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("notify: publish: %w", err)
}
