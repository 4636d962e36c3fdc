// Command ringcast-ws is the WebSocket gateway of a ringcast cluster: a node
// that serves Phoenix Channels V2 clients (the official phoenix.js client,
// websocat) and an HTTP API, and, unless --roles says otherwise, also owns
// a share of the topics.
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
//   - GET /api/stats: the node's counters (topics owned, replica copies,
//     forgotten topics, messages, links to each peer) and the gateway's
//     (connections, joins, frames), as JSON.
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
// is committed in the store. With --roles gateway the node owns no topics
// and opens no store, whatever --store says. A store that cannot be opened
// (a file that is not a ringcast store, left unchanged; a database that
// does not answer) ends the process with exit status 1 and one line on
// stderr. The ready line names the store (a URL's password shows as
// xxxxx); prefer RINGCAST_STORE to the flag for a URL with a password.
//
// # Shutdown
//
// On SIGINT or SIGTERM /healthz turns 503, the HTTP server stops accepting
// and WebSocket clients are closed with 1001 (going away), then the node
// hands its topics off and leaves the cluster, all within
// --shutdown-timeout, and the store is closed. A second signal cuts this short. The exit status is 0
// after a clean shutdown, 1 after a failure (such as a busy port), 2 for a
// bad flag or variable.
//
// # Files
//
// doc.go is this text; main.go parses the configuration and runs the
// gateway through package cli, which holds everything the two binaries
// share.
package main
