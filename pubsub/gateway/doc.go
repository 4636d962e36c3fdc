// Package gateway is ringcast's client-facing gateway: an [http.Handler]
// that speaks the Phoenix Channels V2 protocol over WebSocket, so that the
// official Phoenix JavaScript client (1.8) and plain tools such as websocat
// can join topics and publish to them. Behind it is a [Broker]: a ringcast
// pubsub node in production (see package broker below this one), a
// [MemoryBroker] in tests and single-process programs. The package does not
// import the node: topic names, positions and [HistoryGoneError] come from
// package topics, which the node shares.
//
// # Protocol
//
// The handler serves whatever path it is mounted on (the ringcast binaries
// use /socket/websocket). The query parameter vsn must be 2.0.0 or absent;
// anything else is refused with 400 before the upgrade. If the client offers
// the subprotocol "phoenix" it is selected.
//
// Text messages are JSON arrays [join_ref, ref, topic, event, payload]:
//
//	["1","1","topics:matrix","phx_join",{}]
//	  -> ["1","1","topics:matrix","phx_reply",{"status":"ok","response":{}}]
//	["1","2","topics:matrix","publish",["event",{"message":"hi"}]]
//	  -> ["1","2","topics:matrix","phx_reply",{"status":"ok","response":{}}]
//	  -> ["1",null,"topics:matrix","event",{"message":"hi"}]   (to every joined client)
//	[null,"3","phoenix","heartbeat",{}]
//	  -> [null,"3","phoenix","phx_reply",{"status":"ok","response":{}}]
//	["1","4","topics:matrix","phx_leave",{}]
//	  -> ["1","4","topics:matrix","phx_reply",{"status":"ok","response":{}}]
//	  -> ["1","1","topics:matrix","phx_close",{}]
//
// A join is answered ok only once the broker subscription works cluster-wide.
// Joining a joined topic replaces the join: phx_close for the old join_ref,
// then the reply. Leaving a topic not joined is answered ok. Every broadcast
// carries the receiver's own join_ref. The publisher gets its reply before its
// own broadcast. A publish body must be a JSON object and is re-emitted byte
// for byte; events starting with "phx_" are reserved. When the broker ends a
// subscription, every client joined there gets [jr,jr,topic,"phx_error",{}]
// and may join again.
//
// A join payload of {"meta": true} opts in to sequence metadata: that
// client's text broadcasts carry a sixth element {"seq":n,"epoch":e} (Phoenix
// clients ignore extra elements) and its publish replies carry {"seq":n}.
//
// A join payload of {"queue": "workers"} makes the channel a member of the
// topic's queue group "workers": each message goes to one member of the
// group, across every gateway of the cluster, instead of to every client
// (the NATS queue workers' and Kafka consumer groups' pattern). Plain
// joins of the topic still receive every message. The channel gets a broker
// subscription of its own ([QueueBroker]); a group name is 1 to 255 bytes
// of UTF-8 without control characters, and a queue join takes no since.
// Joining the topic again with or without a queue replaces the join and its
// subscription.
//
// Errors are replies {"status":"error","response":{"reason":"..."}} and never
// close the socket (a Phoenix client would reconnect in a loop): "unmatched
// topic" for a topic not joined, "unknown event", "too many topics",
// "join timeout", "subscribe failed", "publish failed", "unauthorized",
// "invalid topic: ...",
// "malformed JSON", "text message is not valid UTF-8" and others naming the
// problem. A message whose ref cannot be recovered is answered on the topic
// "phoenix" without refs. Topics and events are 1 to 255 bytes of UTF-8
// without control characters ([ValidateTopic], [ValidateEvent]); refs are at
// most 255 bytes.
//
// Binary messages use the V2 binary serializer, every string behind a one-byte
// length and the payload up to the end:
//
//	push, client to server: 0, jr_len, ref_len, topic_len, event_len, jr, ref, topic, event, payload
//	push, server to client: 0, jr_len, topic_len, event_len, jr, topic, event, payload
//	reply:                  1, jr_len, ref_len, topic_len, status_len, jr, ref, topic, status, payload
//	broadcast:              2, topic_len, event_len, topic, event, payload
//
// The gateway sends no broadcast (kind 2) messages: its broadcasts are server
// pushes carrying the receiver's join_ref, as Phoenix clients drop messages
// addressed to another join.
//
// A binary push of the event "publish" publishes its payload as binary data
// under the event "publish", and "publish:NAME" under the event NAME. Every
// joined client receives it as a server push carrying its own join_ref
// (binary broadcasts carry no metadata). A binary push is answered with a
// binary reply whose payload is the JSON response. Other events work in
// binary as in text.
//
// # Presence
//
// When the broker tracks presence for a topic (it implements [Presencer]:
// a ringcast node with Config.Presence rules through package broker, a
// [MemoryBroker] after EnablePresence), a join is answered, after its
// reply, with the topic's presence set, and then every change, in
// Phoenix.Presence's format, so that phoenix.js's Presence class (onSync,
// onJoin, onLeave) works unchanged:
//
//	["1","1","room:1","phx_join",{"presence":{"key":"alice","meta":{"status":"away"}}}]
//	  -> ["1","1","room:1","phx_reply",{"status":"ok","response":{}}]
//	  -> ["1",null,"room:1","presence_state",{"alice":{"metas":[{"phx_ref":"Fq..1","status":"away"}]}}]
//	  -> ["1",null,"room:1","presence_diff",{"joins":{"bob":{"metas":[{"phx_ref":"x..2"}]}},"leaves":{}}]
//
// A connection is tracked under its user ([Identity].User) when it has
// one, else under the key its join payload gives ({"presence": {"key":
// "alice"}}); an authenticated connection that gives another key is
// refused. A connection with neither receives the set without being in
// it. The optional meta is a JSON object of at most [MaxPresenceMeta]
// bytes, without phx_ref (the gateway sets it); each join is one meta,
// so a user's connections are the metas of its key. A leave, a closed
// connection, and the failure of the gateway's node take the meta away.
// A join that replaces a join receives the set again under its new
// join_ref. A set that is full is answered "presence limit reached".
// The gateway follows each topic's set once, whatever the number of its
// clients, and encodes each diff once.
//
// # Authentication
//
// A client's token is the one of the subprotocol
// "base64url.bearer.phx.<token>", as phoenix.js sends its authToken option,
// or else the query parameter token (phoenix.js params: {token}). Before the
// upgrade, [Options].AuthenticateConn turns it into the connection's
// [Identity], or refuses the upgrade with 401 (403 if the error wraps
// [ErrForbidden]); the older [Options].Authenticate does the same for
// connections that stay anonymous. A client without a token is anonymous
// unless the hook refuses it. Anonymous clients may join the broker's
// topics (websocat joining topics:matrix) unless [Options].DenyAnonymous is
// set: their joins then get the reason "unauthorized".
//
// [Options].Authorize, if set, decides each join of a broker topic
// ([ActionSubscribe], then [ActionHistory] for a join that resumes with
// since) and each publish ([ActionPublish]), given the connection's
// [Identity], address and upgrade headers ([Request]). A refusal is an
// error reply whose reason is the [RefusalError]'s (see [Refuse]) or
// "unauthorized"; the socket stays open, and [Stats].Denied counts it.
//
// # Browser safety
//
// Before the upgrade the Handler checks the Host header: IP addresses,
// "localhost" and the patterns of [Options].AllowedHosts and
// [Options].OriginPatterns pass ([HostAllowed]); any other name is refused
// with 403. A page of a DNS-rebinding attack names the attacker's host in
// both Host and Origin, which a same-origin check alone would accept. Then
// it checks the Origin header of browsers: the request's own host and the
// patterns of [Options].OriginPatterns pass ([OriginAllowed]); requests
// without Origin (websocat, servers) are not browsers and pass.
//
// # Channels
//
// [Options].Channels routes topics ("inbox", or a prefix "inbox:*") to
// server-side [Channel] implementations instead of the broker, as Phoenix
// routes topics to channel modules. A join of such a topic calls
// [Channel].Join with a [Session], the channel's handle to that one client:
//
//	ch := gateway.ChannelFunc(func(ctx context.Context, s *gateway.Session, topic string, p json.RawMessage) (json.RawMessage, error) {
//		if s.Identity().Anonymous() {
//			return nil, gateway.Reason("unauthorized")
//		}
//		s.HandleIn(func(ctx context.Context, event string, p json.RawMessage) (json.RawMessage, error) {
//			return p, nil // the reply of every event the client pushes
//		})
//		context.AfterFunc(s.Context(), func() { /* the join ended */ })
//		return json.RawMessage(`{"hello":"` + s.Identity().User + `"}`), nil
//	})
//	gw := gateway.NewHandler(b, &gateway.Options{Channels: map[string]gateway.Channel{"echo": ch}})
//
//	["1","1","echo","phx_join",{}]   -> ["1","1","echo","phx_reply",{"status":"ok","response":{"hello":"alice"}}]
//	["1","2","echo","ping",{"n":1}]  -> ["1","2","echo","phx_reply",{"status":"ok","response":{"n":1}}]
//	s.Push("news", {"x":1})          -> ["1",null,"echo","news",{"x":1}]
//
// A join refused by an error is an error reply, never a closed socket: the
// reason is the error's [Reason], or "join timeout" or "join failed" (the
// error is logged, not sent). Joins, leaves and client events of one
// connection run one at a time, in order, on a goroutine of the
// connection (never its reader: heartbeats are answered meanwhile); a
// client event goes to the session's [EventHandler] (Phoenix's handle_in),
// whose result is the reply. [Session.Push] may be called from any
// goroutine and never blocks: the message goes into the connection's
// bounded outbound queue, carries the join's join_ref, and a client whose
// queue overflows is closed as a slow consumer like any other. Pushes made
// while Join runs follow its reply. The session's context ends when the
// join does, with a cause telling why: [ErrLeft] (phx_leave, answered
// with the reply and phx_close), [ErrRejoined] (a join of the same topic
// replaces the old one: phx_close for the old join_ref), [ErrDisconnected]
// (the connection closed), or the error given to [Session.End], which ends
// the join from the server side with phx_close (nil: the Phoenix client
// stays away) or phx_error (the Phoenix client rejoins). Channel joins
// count against MaxTopicsPerConn. The package knows nothing of what a
// channel serves: the inbox of the ringcast notification system is one
// (package cmd/internal/notify/inbox).
//
// # Limits
//
// Each limit is an [Options] field:
//   - MaxMessageSize (1 MiB): a larger client message closes the connection
//     with 1009 (message too big).
//   - MaxTopicsPerConn (100): joins beyond it get "too many topics".
//   - OutboundQueueBytes (1 MiB): one bounded queue per connection, drained
//     by a writer goroutine that writes everything queued in one batch. A
//     client whose queue overflows is closed with 1013 (try again later) and
//     reason "slow consumer"; it never slows other clients or the broker.
//     What the socket holds that the client has not acknowledged counts
//     against the same limit (on Linux; elsewhere the socket's send buffer
//     is kept small): a client that stopped reading, having acknowledged
//     nothing for 250 ms, is cut at the limit rather than once the kernel's
//     buffers fill and WriteTimeout passes.
//   - IdleTimeout (60 s): a client that sends nothing for that long (Phoenix
//     heartbeats count) is closed with 1008 and reason "idle timeout".
//   - WriteTimeout (10 s): bounds each batch written to a client.
//   - JoinTimeout, PublishTimeout, EventTimeout (10 s each); EventTimeout
//     bounds a channel's handling of one client event.
//   - MaxConnsPerAddr (256): connections open at once from one client IP;
//     one more is answered 429 before the upgrade.
//   - PublishRate/PublishBurst (100/s, 200) and JoinRate/JoinBurst (20/s,
//     100) per connection, UserPublishRate/UserPublishBurst (500/s, 1000)
//     and UserJoinRate/UserJoinBurst (100/s, 500) shared by the
//     connections of one user: token buckets. A join or publish past them
//     gets the error reply "rate limited" and the socket stays open; a
//     connection refused past 1,000 times at once, then 100 times a
//     second, is flooding and is closed with 1008 and reason "rate
//     limited: too many refused messages".
//
// Every refusal is counted in [Stats] by reason (refused_host,
// refused_origin, refused_conn_limit, denied, rate_limited_joins,
// rate_limited_publishes, flood_closed) and logged, sampled: a flood is a
// few lines.
//
// Each broadcast is encoded once per gateway and shared by all receivers; only
// the join_ref in front of it is written per receiver. The gateway holds one
// broker subscription per topic, whatever the number of local clients: the
// first join subscribes (concurrent first joins share the Subscribe in
// flight) and the last leave unsubscribes.
//
// # Broker contract
//
// [Broker.Subscribe] returns once the subscription works cluster-wide; its
// deliver callback is called in order, never concurrently with itself, and
// must not block; its closed callback is called at most once, when the broker
// ends the subscription itself, and not after unsubscribe. Broker data is an
// envelope made by [EncodeEnvelope]: an event name and either raw JSON or
// binary bytes. The gateway never calls the broker while holding a lock.
//
// # Lifecycle
//
// ServeHTTP returns once the connection is upgraded; the connection is then
// served by goroutines of the Handler: a reader for as long as it lives, and
// a writer and a worker only while it has something to write or to do, so an
// idle connection costs one goroutine and a few KiB. The Handler tracks its
// connections, as http.Server.Shutdown does not close upgraded ones:
// [Handler.Shutdown] closes them all with 1001 (going away) and waits for
// their goroutines; [Handler.Close] does the same with a deadline.
// [Handler.Stats] reports connection, topic, frame, error and slow-consumer
// counters.
//
// # Files
//
//   - handler.go: the Handler, the upgrade, connection tracking and Stats.
//   - conn.go: a connection's lifecycle, its read loop and its worker.
//   - channel.go: join (and recovery), leave and publish, and their replies.
//   - writer.go: the bounded outbound queue and the batching writer.
//   - cork.go: the hijacked connection, corked so that a batch is one write.
//   - frame.go: parsing and encoding of text and binary messages.
//   - hub.go: the shared broker subscriptions and the fan-out to members.
//   - session.go: server-side channels, their sessions and routing.
//   - recover.go: the Recoverer interface and resuming joins.
//   - presence.go: the Presencer interface, presence_state and
//     presence_diff; memory_presence.go: the MemoryBroker's presence.
//   - queue.go: the QueueBroker interface and queue group joins.
//   - authorize.go: the Authorize hook's Request and refusals.
//   - hosts.go: the Host and Origin checks.
//   - ratelimit.go: the rate limits of joins and publishes.
//   - broker.go, memory.go, options.go: the Broker interface and envelopes,
//     the in-memory broker, and Options.
package gateway
