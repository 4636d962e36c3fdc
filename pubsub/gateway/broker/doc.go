// Package broker connects ringcast's WebSocket gateway to a ringcast cluster:
// [New] adapts a [pubsub.Node] to the [gateway.Broker] interface, so that
// a [gateway.Handler] serves clients from the node's topics.
//
//	node, err := pubsub.New(pubsub.Config{Roles: []string{pubsub.RoleGateway}, Seeds: seeds})
//	...
//	gw := gateway.NewHandler(broker.New(node), nil)
//	mux.Handle("/socket/websocket", gw)
//
// # Mapping
//
// Broker.Subscribe becomes [pubsub.Node.SubscribeFunc]: it returns once the
// topic's owner accepted the subscription, and each message is handed to the
// gateway on one of the node's dispatcher workers, in order, as a
// [gateway.Message] carrying the topic, epoch, sequence number and data
// (shared, never copied). The gateway keeps one subscription per topic
// whatever the number of its clients, so a node carries one subscription per
// topic per gateway and fans out to its clients itself.
//
// When the node ends a subscription (slow consumer, node closing), the
// gateway's closed callback receives the node's error ([pubsub.ErrSlowConsumer],
// [pubsub.ErrClosed]); it is never called once unsubscribe has returned.
//
// Broker.Publish becomes [pubsub.Node.Publish] with the default
// acknowledgement: it returns the sequence number the topic's owner assigned.
//
// # Recovery
//
// The Broker also implements [gateway.Recoverer], so a client that
// reconnects can join with {"since": seq, "epoch": "e"} and resume where it
// left off. SubscribeSince becomes SubscribeFunc with [pubsub.Since]: the
// messages after that position still in the owner's history come first,
// then live ones. When history no longer reaches back, the error is the
// node's [pubsub.HistoryGoneError] with the topic's current position,
// passed on as it is ([gateway.HistoryGoneError] is the same type), and the
// gateway starts the client over from there.
//
// # Presence
//
// The Broker implements [gateway.Presencer] with the node's presence
// (Config.Presence decides which topics track it): Track becomes
// [pubsub.Node.Track], and the gateway's watch of a topic
// [pubsub.Node.WatchPresence], whose diffs a goroutine of the watch hands
// on until the gateway stops it. A set that is full is an error wrapping
// both [gateway.ErrPresenceLimit] and [pubsub.ErrPresenceLimit].
//
// # Queue groups
//
// The Broker implements [gateway.QueueBroker] too: a client that joins
// with {"queue": "workers"} becomes one member of the topic's queue group
// "workers" through [pubsub.Node.SubscribeQueueFunc], with a node
// subscription of its own, so that each message reaches one member of the
// group across every gateway and node of the cluster. On a durable topic a
// message counts as acknowledged once the gateway has queued it for the
// client; a client that disconnects before reading it does not get it
// again.
//
// # Concurrency
//
// The Broker returned by New is safe for concurrent use and lives as long as
// the node: it holds no goroutine or resource of its own, but for one
// goroutine per presence watch, which stop ends. Shut the gateway
// down before the node so that clients are told the gateway is going away
// rather than seeing their channels fail.
package broker
