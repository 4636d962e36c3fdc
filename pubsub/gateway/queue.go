package gateway

import (
	"context"
	"errors"

	"github.com/ringcast/ringcast/pubsub/topics"
)

// QueueBroker is implemented by a Broker that has queue groups (package
// broker's, over a ringcast node): each message of a topic goes to one
// member of a group, cluster-wide, instead of to every subscriber.
//
// A join whose payload names a group ({"queue": "workers"}) makes the
// channel a member of that group: it gets a broker subscription of its
// own, made with SubscribeQueue, and receives only the messages the broker
// hands to it. With a broker that does not implement QueueBroker such a
// join is refused with the reason "queue groups not supported".
type QueueBroker interface {
	// SubscribeQueue is Subscribe for one member of the queue group group:
	// the same contract, except that deliver receives only the messages
	// the broker gives this member.
	SubscribeQueue(ctx context.Context, topic, group string, deliver func(Message), closed func(error)) (unsubscribe func() error, err error)
}

// MaxQueueGroupLen is the longest queue group name a join may give.
const MaxQueueGroupLen = 255

const (
	reasonNoQueue    = "queue groups not supported"
	reasonQueueGroup = "queue must be a group name of 1 to 255 bytes of UTF-8 without control characters"
	reasonQueueSince = "a queue member cannot resume with since"
)

var errQueueUnsupported = errors.New("gateway: the broker has no queue groups")

// validQueueGroup reports whether a join's queue group name is valid.
func validQueueGroup(group string) bool {
	return topics.NameProblem(group, MaxQueueGroupLen) == ""
}

// joinQueue joins j as a member of a queue group, with a broker
// subscription of its own (joinPrivate).
func (hb *hub) joinQueue(ctx context.Context, j *join, group string, reply outItem) error {
	qb, ok := hb.h.broker.(QueueBroker)
	if !ok {
		return errQueueUnsupported
	}
	timedOut := false
	subscribed, err := hb.joinPrivate(ctx, j, func(ctx context.Context, t *topicSub) (func() error, outItem, error) {
		unsub, err := qb.SubscribeQueue(ctx, j.topic, group, t.deliver, t.closed)
		timedOut = ctx.Err() != nil
		return unsub, reply, err
	})
	if err != nil && !subscribed {
		hb.h.stats.subscribeErrors.Add(1)
		if timedOut {
			return errJoinTimeout
		}
	}
	return err
}
