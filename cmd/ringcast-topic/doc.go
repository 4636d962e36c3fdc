// Command ringcast-topic is a topic server of a ringcast cluster: a node
// with the "topics" role only. It owns a share of the topics (orders their
// messages, keeps their recent history, sends each message once to every
// node with subscribers) and serves no clients; clients connect to
// ringcast-ws gateways.
//
//	ringcast-topic --gossip 10.0.0.2:7946 --peer 10.0.0.2:7956 --join 10.0.0.1:7946
//
// # Configuration
//
// The flags are those of ringcast-ws without --listen and --roles, plus
// --http: an address for GET /healthz, GET /api/cluster,
// GET /api/topics/{topic}, GET /api/topics (the cluster's topics, also at
// /api/cluster/topics), GET /api/stats and the live status page GET
// /status (with GET /api/status) (off by default). Every flag has an environment
// variable; a flag wins over its variable; --help lists them all. Once
// serving, the process logs "ringcast-topic ready" with its gossip and peer
// addresses, its name, its store and, with --http, that address.
//
// # Durable topics
//
// The node keeps the topics it owns in the store --store names: a SQLite
// file (PATH or sqlite:PATH; default $XDG_STATE_HOME/ringcast/ringcast.db,
// else ~/.local/state/ringcast/ringcast.db; the servers of one host may
// share it), a PostgreSQL database (postgres://USER:PASSWORD@HOST:PORT/DB,
// the same for every node of the cluster), or memory (none). --durable
// says which topics are kept and for how long (default "*=durable"), and
// --store-timeout bounds opening the store and each call to it (default
// 5s). The store is opened before the node joins the cluster and closed
// after it has left; one that cannot be opened ends the process with exit
// status 1 and one line on stderr, and a file that is not a ringcast store
// is left unchanged. See package cli for the details.
//
// # Shutdown
//
// On SIGINT or SIGTERM the node hands its topics to the remaining topic
// servers and leaves the cluster within --shutdown-timeout; a second signal
// cuts this short. The exit status is 0 after a clean shutdown, 1 after a
// failure, 2 for a bad flag or variable.
//
// # Files
//
// doc.go is this text; main.go parses the configuration and runs the node
// through package cli, which holds everything the two binaries share.
package main
