// Command ringcast-ws is the WebSocket gateway of a ringcast cluster: a node
// that serves Phoenix Channels V2 clients (the official phoenix.js client,
// websocat) and an HTTP API, and, unless --roles says otherwise, also owns
// a share of the topics. With a store it is also a complete notification
// system: accounts, topics their creators own, an inbox with exact unread
// counts, and email reminders.
//
//	ringcast-ws --listen 127.0.0.1:4000 --roles gateway --join 10.0.0.1:7946
//
// # Endpoints
//
// On --listen (default 127.0.0.1:4000):
//
//   - /socket/websocket: Phoenix clients (ws://HOST:PORT/socket/websocket?vsn=2.0.0).
//   - POST /api/publish?topic=T[&event=E][&ack=A]: publishes the JSON body
//     to every client joined to T, on every gateway, as event E (default
//     "message"). It answers {"topic":T,"seq":N,"epoch":"E"} once the
//     topic's owner holds the message (ack=owner, the default) or the owner
//     and its replicas do (ack=replicated: the message survives the loss of
//     any one node); for a durable topic both mean the store committed it.
//     With ack=none it answers 202 {"topic":T} at once. A durable topic
//     whose store is down answers 503.
//   - GET /api/cluster, GET /api/topics/{topic}, GET /healthz.
//   - GET /api/cluster/topics?prefix=P&limit=N&cursor=C: the cluster's
//     topics in name order, a page at a time, each owner answering for its
//     share. Without the notification system it is also GET /api/topics;
//     with it, GET /api/topics lists a user's notification topics.
//   - GET /api/stats: the node's counters (topics owned, replica copies,
//     forgotten topics, messages, links to each peer), the gateway's
//     (connections, joins, frames) and the notification system's (inbox
//     sessions; email reminders pending, the outbox by state, retries,
//     the circuit breaker, the last error), as JSON.
//   - The notification system's API (below), under
//     /api/users, /api/tokens, /api/topics/NAME/..., /api/read and
//     /api/inbox, and the "inbox" channel on /socket/websocket.
//   - GET /: the notification system's web page (package
//     cmd/internal/notify/web), while the system runs.
//   - GET /status: a live status page of the node and its view of the
//     cluster; GET /api/status: what it shows, as JSON.
//
// # Configuration
//
// Every flag has an environment variable (RINGCAST_LISTEN for --listen, and
// so on); a flag wins over its variable. --replication, --history-size,
// --history-ttl, --idle-topic-ttl and --max-payload set what the node keeps
// and accepts; --failure-detection fast declares a failed member dead in
// under a second (loopback and test clusters) instead of a few seconds.
// --help lists them all. Logs go to stderr as text or, with --log-format
// json, as JSON; once serving, the process logs "ringcast-ws ready" with
// its listen, gossip and peer addresses, its name and its store.
//
// # Security
//
// The listener is guarded (cli.Guard) before anything else:
//
//	--protected-mode BOOL           (default true) while no client authentication is
//	                                configured, serve clients of this host only: others get
//	                                403 "protected mode: ..." (write --protected-mode=false)
//	--allowed-hosts LIST            names clients reach the server under, besides IP
//	                                addresses, localhost and the --listen host; another Host
//	                                is refused with 403 (DNS rebinding); "*" allows any
//	--allowed-origins LIST          host patterns of the web pages of other origins that may
//	                                connect and call the API (CORS); --origins, its older
//	                                name, still works, and both lists count
//	--max-conns-per-addr N          WebSocket connections per client IP (default 256; 429)
//	--client-publish-rate R[:B]     publishes per connection (default 100:200)
//	--client-join-rate R[:B]        joins per connection (default 20:100)
//	--user-publish-rate R[:B]       publishes of all the connections of a user (default 500:1000)
//	--user-join-rate R[:B]          joins of all the connections of a user (default 100:500)
//	--api-rate R[:B]                API requests per client IP (default 1000:2000; 429 with
//	                                Retry-After)
//	--tls-cert FILE, --tls-key FILE serve HTTPS and WSS; renewed files are picked up within
//	                                a second, without a restart
//
// A join or publish past its rate gets the error reply "rate limited" and
// the socket stays open; a connection that goes on sending far past its
// rate (1,000 refusals at once, then 100 a second) is closed with 1008
// "rate limited: too many refused messages". An unsafe API request (POST,
// PUT, DELETE) without an Authorization header from a page of another site
// (Sec-Fetch-Site cross-site, or an Origin neither this server's nor
// allowed) is refused with 403, and a browser's body that is not
// application/json with 415; curl and servers, which send no Origin, are
// not affected. Bodies past --max-payload (and some room) are refused with
// 413. Every refusal is counted in GET /api/stats ("guard", and the
// gateway's refused_host, refused_origin, refused_conn_limit, denied,
// rate_limited_joins, rate_limited_publishes, flood_closed) and logged,
// sampled.
//
// # Durable topics
//
// With the default roles the node owns topics and keeps them in a store,
// opened at start and closed after the node has shut down:
//
//	--store PATH | sqlite:PATH      a SQLite file (default
//	                                $XDG_STATE_HOME/ringcast/ringcast.db, else
//	                                ~/.local/state/ringcast/ringcast.db)
//	--store postgres://USER:PASSWORD@HOST:PORT/DB
//	                                a PostgreSQL database, the same for every node
//	--store memory                  none: every topic in memory only
//	--durable RULES                 which topics are kept, and how long
//	                                (default "*=durable": all, for ever), e.g.
//	                                "notifications:*=durable age=720h count=100000; cursor:*=memory; *=durable"
//	--store-timeout DURATION        bound of opening the store and of each call (default 5s)
//
// An acknowledged publish to a durable topic (ack=owner or ack=replicated)
// is committed in the store. With --roles gateway the node owns no topics,
// and opens the store only for the notification system (so with
// --notify=false, none, whatever --store says). A store that cannot be opened
// (a file that is not a ringcast store, left unchanged; a database that
// does not answer) ends the process with exit status 1 and one line on
// stderr. The ready line names the store (a URL's password shows as
// xxxxx); prefer RINGCAST_STORE to the flag for a URL with a password.
//
// # Notification system
//
// Whenever the store is a database (the default SQLite file or
// PostgreSQL; not with --store memory or --notify=false), the gateway
// serves the notification system of package cmd/internal/notify, in the
// store's own database (tables notify_*), on pure gateways too. Its HTTP
// API is JSON, with "Authorization: Bearer TOKEN" on every call but the
// first two:
//
//	POST   /api/users {"id","email","password"}            201; 409 id taken
//	POST   /api/tokens {"id","password"}                   200 {"token","expires_at"}
//	DELETE /api/tokens/current                             204
//	POST   /api/topics {"name","description"}              201; the caller is the creator
//	GET    /api/topics?mine=1&subscribed=1&limit=&cursor=  200 {"topics":[…],"next"}
//	GET    /api/topics/NAME                                200 (without a token: the ringcast topic)
//	DELETE /api/topics/NAME                                204; creator only (403)
//	POST   /api/topics/NAME/notifications (any JSON)       201 {"seq":N,"epoch":"E"}; creator only (403), 404
//	GET    /api/topics/NAME/notifications?after=&before=&limit=
//	GET    /api/topics/NAME/notifications/SEQ/receipts     200 {"subscribers":n,"read":k}; creator only
//	GET, PUT, DELETE /api/topics/NAME/subscription
//	POST   /api/topics/NAME/read {"seq":N}                 200; the cursor never moves back
//	POST   /api/read                                       200 inbox, everything read
//	GET    /api/inbox                                      200 {"unread":total,"topics":[…]}
//
// Clients connected with a token (the query parameter token, or the
// Sec-WebSocket-Protocol bearer phoenix.js sends for authToken) join the
// channel "inbox": every new notification of the user's topics, "unread"
// events with exact counts, and "read" {topic, seq} pushed on one device
// reaching the user's others (package cmd/internal/notify/inbox). A
// notification topic NAME is the durable topic "notifications:NAME"; each
// user's memory-only control topic is "users:ID". No client joins these
// directly (the reason says so) and POST /api/publish refuses them (403).
//
//	--notify BOOL                   serve it (default true)
//	--jwt-secret SECRET             also accept HS256 JWTs (sub = user id, exp required) as tokens
//	--anonymous BOOL                clients without a token may join open topics (default true)
//	--smtp HOST:PORT                email subscribers who left a notification unread
//	--smtp-from ADDRESS             the sender; required with --smtp
//	--smtp-user, --smtp-password    AUTH PLAIN, over TLS or to a loopback server only
//	--smtp-tls auto|require|tls|none
//	--email-delay DURATION          how long a notification may stay unread first (default 10m)
//
// Email goes through a durable outbox in the store (package
// cmd/internal/notify/email): one email per user for what is due, a
// digest when much is, a per-user cap, retries with exponential backoff
// and jitter, a circuit breaker per SMTP server, and nothing sent twice
// after a restart (a crash between the server's acceptance and the
// outbox's record resends once, with the same Message-ID). Prefer the
// variables RINGCAST_JWT_SECRET and RINGCAST_SMTP_PASSWORD to the flags,
// which ps shows.
//
// # Shutdown
//
// On SIGINT or SIGTERM /healthz turns 503, the HTTP server stops accepting
// and WebSocket clients are closed with 1001 (going away), ending their
// inbox sessions, then the node hands its topics off and leaves the
// cluster, all within --shutdown-timeout. The email sender then lets the
// sends in flight finish and records the reminders it holds, and the store
// is closed. A second signal cuts this short. The exit status is 0 after a
// clean shutdown, 1 after a failure (such as a busy port), 2 for a bad flag
// or variable.
//
// # Files
//
// doc.go is this text; main.go parses the configuration and runs the
// gateway through package cli, which holds everything the two binaries
// share.
package main
