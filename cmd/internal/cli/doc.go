// Package cli holds what the ringcast binaries (ringcast-ws, ringcast-topic)
// share: flags backed by environment variables, logging, node set-up, the
// HTTP API, and the signal-driven lifecycle with graceful shutdown.
//
// # Flags and environment
//
// A [Command] declares flags, each with an environment variable. A flag
// given on the command line wins over its variable; a variable wins over the
// default. Every value is checked while parsing, so a bad flag or variable
// ends the program with exit status 2 and one line on stderr before anything
// starts. --help prints the intro, every flag, its variable and its default
// on stdout and exits 0.
//
// # Delivery and failover
//
// Every binary has the same delivery flags, which become the node's
// pubsub.Config: --replication (copies of each topic, owner included),
// --history-size and --history-ttl (what a topic keeps for clients that
// resume and for failover), --idle-topic-ttl (how long a topic nobody uses
// is remembered), --max-payload, and --failure-detection. With
// "lan" (the default) a member that stops without leaving is declared dead
// within a few seconds; "fast" (pubsub.FastGossip) takes well under a second
// on loopback, and is meant for local and test clusters. Once an owner is
// declared dead, the next member on the ring takes its topics over from the
// replicas and publishes succeed again.
//
// # Lifecycle
//
// [Command.Main] parses the flags, builds the logger (text or JSON on
// stderr) and calls the program's run function with an [Env]. The run
// function opens its listeners first (so a busy port fails before the node
// joins the cluster), starts the node with [Env.StartNode] and hands
// everything to [Env.Serve]. Serve logs "<command> ready" with the actual
// addresses, then waits for SIGINT or SIGTERM. On the first signal it marks
// the process unhealthy (/healthz answers 503), stops accepting HTTP
// requests and closes WebSocket clients (both at once), then shuts the node
// down (topic hand-off, then leave), all within --shutdown-timeout. A second
// signal cuts the remaining steps short. The exit status is 0 when every
// step succeeded, 1 otherwise.
//
// # HTTP API
//
// [API] serves /healthz, GET /api/cluster, GET /api/topics/{topic} and, for
// gateways, POST /api/publish, whose ack parameter (none, owner, replicated)
// chooses what the answer waits for. Responses are JSON; errors are
// {"error": "..."} with a 4xx or 5xx status.
//
// # Concurrency
//
// A Command is configured and parsed by one goroutine. An Env belongs to the
// run function. An API is safe for concurrent use.
//
// # Files
//
//   - command.go: [Command], the common flags, --help, [Command.Main], the
//     logger and the node's pubsub.Config.
//   - values.go: the flag.Value types that parse and check each flag.
//   - serve.go: [Env], the listeners and the signal-driven lifecycle.
//   - api.go: the HTTP API.
package cli
