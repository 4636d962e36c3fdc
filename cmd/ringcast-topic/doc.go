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
// GET /api/topics/{topic} and GET /api/stats (off by default). Every flag has an environment
// variable; a flag wins over its variable; --help lists them all. Once
// serving, the process logs "ringcast-topic ready" with its gossip and peer
// addresses, its name and, with --http, that address.
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
