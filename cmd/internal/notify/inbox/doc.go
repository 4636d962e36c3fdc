// Package inbox is the real-time side of the ringcast notification system:
// the "inbox" Phoenix channel, served by the gateway (package
// pubsub/gateway, through its Options.Channels extension point) on the
// pubsub node, with the accounts, subscriptions and read cursors of
// package notify.
//
// # Wiring
//
//	ch := inbox.New(node, svc, nil) // svc: *notify.Service
//	gw := gateway.NewHandler(broker.New(node), &gateway.Options{
//		AuthenticateConn: inbox.AuthenticateConn(svc.Authenticate),
//		Channels:         ch.Routes(), // "inbox" and "inbox:*"
//	})
//	defer ch.Close() // after gw.Shutdown
//
// A client connects with its token (phoenix.js params: {token}, or
// authToken, which travels in the Sec-WebSocket-Protocol header) and joins
// "inbox" or "inbox:{its user id}". Anonymous clients are refused with the
// reason "unauthorized", another user's inbox with "forbidden".
//
// # Protocol
//
// Join payload (optional): the client's last positions, to be sent what
// it missed: {"positions":{"TOPIC":{"epoch":"E","seq":N}}}. phoenix.js
// sends it again on every rejoin when the channel's params are a function.
// The reply is the inbox:
//
//	{"unread":3,"topics":[{"name":"news","unread":3,"last_seq":7,"read_seq":4,"epoch":"E"}]}
//
// Pushes, each carrying the client's join_ref:
//
//	notification  {"topic":"news","seq":8,"epoch":"E","body":<the JSON the creator posted, verbatim>}
//	unread        {"unread":4,"topic":"news","topic_unread":4}   whenever a count changes
//	read          {"topic":"news","read_seq":8}                  a read on another device
//	subscribed    {"name","unread","last_seq","read_seq","epoch"} a subscription made elsewhere
//	unsubscribed  {"topic":"news"}
//	reset         {"topic":"news","epoch":"E","seq":N}           a position the store no longer serves
//
// Client events: "read" {"topic":T,"seq":N} marks T read up to N
// (Service.MarkRead; a cursor never moves back) and is answered with
// {"unread","topic","topic_unread","last_seq","read_seq"}; "read_all" {}
// marks everything read and is answered with the inbox. Errors are error
// replies with a reason: "not found" (not subscribed), "invalid request",
// "invalid payload: ...", "unavailable" (the database), "unknown event".
//
// # Exact counts without a query per notification
//
// A session reads the user's subscriptions and cursors once, at the join
// (one query), after subscribing to the user's control topic
// notify.UserTopic(user) so that no change committed afterwards is missed.
// It then subscribes, on the pubsub node, to notify.RingTopic(t) of each
// topic, starting right after the head the database returned
// (pubsub.Since), so that a notification committed between the query and
// the subscription is delivered too. From then on, unread = head − cursor
// per topic: the head rises with every delivered sequence number, the
// cursor with every read, on this device (the reply of MarkRead) or
// another (the control event read, on any gateway of the cluster). Only a
// mark-all, whose event carries no positions, reads the cursors again. No
// row is written per notification, and nothing but the cursor is written
// per read: this replaces the seed's two-phase commit between a
// persistence service and a counter service.
//
// A client that rejoins with positions is sent what it missed from the
// store (pubsub.Since with its position). A position the topic's store no
// longer serves (trimmed, another epoch, ahead of the topic), or more than
// Options.MaxReplay notifications behind, gets a reset event instead,
// before any notification of that topic; the client reads the history over
// HTTP if it wants it.
//
// Subscriptions made or ended over HTTP reach live sessions through the
// control events subscribed and unsubscribed: the session follows or drops
// the topic at once, from the cursor the subscription started with.
//
// # Online markers
//
// While a user has a live inbox session on this node, the node's marker
// (Service.SetOnline) is renewed every Options.OnlineRefresh (30 s) to
// expire Options.OnlineTTL (90 s) later; the last session's end clears it
// (Service.ClearOnline). One goroutine of the Channel writes them, so the
// last state of a user is what is written. Email reminders skip users who
// are online.
//
// # Bounds and failures
//
// A session follows at most Options.MaxTopics (1000) topics: a user with
// more is refused with "too many topics", and a session that would go past
// it by a new subscription ends with phx_error. Pushes go through the
// gateway's bounded per-connection queue: a client that does not keep up
// is disconnected as a slow consumer, never slowing anyone. A pubsub
// subscription that the node ends (its buffer overflowed, the node is
// closing) ends the session with phx_error: the Phoenix client rejoins
// with its positions and loses nothing. Bodies are passed through as raw
// JSON; a body that is not JSON (published to the ring topic by something
// other than package notify) is pushed as null.
//
// # Files
//
//   - inbox.go: Channel, Options, New, Close, Routes, AuthenticateConn and
//     the join.
//   - session.go: a session's subscriptions, counts, pushes, control events
//     and client events.
//   - presence.go: the online markers.
package inbox
