package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
)

// The adapter tracks presence for the topics the node's Config.Presence
// names.
var _ gateway.Presencer = (*nodeBroker)(nil)

// PresenceEnabled implements gateway.Presencer: the node's
// Config.Presence rules decide.
func (b *nodeBroker) PresenceEnabled(topic string) bool { return b.node.PresenceEnabled(topic) }

// Track implements gateway.Presencer with pubsub.Node.Track. A refusal for
// the rule's bounds wraps gateway.ErrPresenceLimit as well as
// pubsub.ErrPresenceLimit.
func (b *nodeBroker) Track(ctx context.Context, topic, key string, data json.RawMessage) (string, func(), error) {
	t, err := b.node.Track(ctx, topic, key, data)
	if errors.Is(err, pubsub.ErrPresenceLimit) {
		return "", nil, fmt.Errorf("%w: %w", gateway.ErrPresenceLimit, err)
	}
	if err != nil {
		return "", nil, err
	}
	return t.Ref(), t.Untrack, nil
}

// WatchPresence implements gateway.Presencer with pubsub.Node.WatchPresence:
// the set is handed to fn before it returns, then a goroutine of the
// watch hands on each change until stop.
func (b *nodeBroker) WatchPresence(ctx context.Context, topic string, fn func(gateway.PresenceDiff)) (func(), error) {
	w, err := b.node.WatchPresence(ctx, topic)
	if err != nil {
		return nil, err
	}
	first, err := w.Next(ctx)
	if err != nil {
		w.Stop()
		return nil, err
	}
	fn(convertDiff(first))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			d, err := w.Next(context.Background())
			if err != nil {
				return // stopped, or the node closed
			}
			fn(convertDiff(d))
		}
	}()
	return func() {
		w.Stop()
		wg.Wait()
	}, nil
}

func convertDiff(d pubsub.PresenceDiff) gateway.PresenceDiff {
	return gateway.PresenceDiff{Sync: d.Sync, Joins: convertSet(d.Joins), Leaves: convertSet(d.Leaves)}
}

func convertSet(p pubsub.Presence) map[string][]gateway.PresenceMeta {
	if len(p) == 0 {
		return nil
	}
	out := make(map[string][]gateway.PresenceMeta, len(p))
	for key, metas := range p {
		l := make([]gateway.PresenceMeta, len(metas))
		for i, m := range metas {
			l[i] = gateway.PresenceMeta{Ref: m.Ref, Data: m.Data}
		}
		out[key] = l
	}
	return out
}
