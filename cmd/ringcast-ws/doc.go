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
//     any one node); with ack=none it answers 202 {"topic":T} at once.
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
// json, as JSON; once serving, the
// process logs "ringcast-ws ready" with its listen, gossip and peer
// addresses and its name.
//
// # Shutdown
//
// On SIGINT or SIGTERM /healthz turns 503, the HTTP server stops accepting
// and WebSocket clients are closed with 1001 (going away), then the node
// hands its topics off and leaves the cluster, all within
// --shutdown-timeout. A second signal cuts this short. The exit status is 0
// after a clean shutdown, 1 after a failure (such as a busy port), 2 for a
// bad flag or variable.
//
// # Files
//
// doc.go is this text; main.go parses the configuration and runs the
// gateway through package cli, which holds everything the two binaries
// share.
package main
