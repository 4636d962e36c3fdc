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
// # Durable topics
//
// A node that owns topics keeps them in a store (pubsub.Config.Store), which
// --store names:
//
//   - unset: a SQLite file at $XDG_STATE_HOME/ringcast/ringcast.db, or
//     $HOME/.local/state/ringcast/ringcast.db without XDG_STATE_HOME
//     ([DefaultStorePath]); with neither variable the process refuses to
//     start and says to give --store. The directory is created (0700).
//   - PATH or sqlite:PATH: that SQLite file. The processes of one host may
//     share it.
//   - postgres://USER:PASSWORD@HOST:PORT/DB or postgresql://...: a
//     PostgreSQL database, the same for every node of a cluster. Give a
//     password through RINGCAST_STORE (or PGPASSWORD, or a .pgpass file)
//     rather than the flag, which ps shows. Logs and errors show the URL
//     with the password replaced by xxxxx.
//   - memory: no store; every topic lives in memory only.
//
// A node with the gateway role only (ringcast-ws --roles gateway) owns no
// topics and opens no store, whatever --store says: its ready line says
// store="none (gateway role only)".
//
// --durable says which topics the store keeps (pubsub.ParseDurability):
// rules separated by ";", each PATTERN=durable|memory [age=DURATION]
// [count=N]. The default, "*=durable", keeps every topic for ever; for
// example "notifications:*=durable age=720h count=100000; cursor:*=memory;
// *=durable" keeps a month and at most 100,000 messages of each
// notifications topic, keeps cursor topics in memory only, and everything
// else for ever. Every node of a cluster must have the same rules.
// --store-timeout bounds opening the store and each call to it.
//
// [Env.StartNode] opens the store before the node starts, and Serve closes
// it after the node has shut down, so that everything the node
// acknowledged is committed. A store that cannot be opened (a file that is
// not a ringcast store, which is left unchanged; a schema newer than the
// build; a database that does not answer within --store-timeout) ends the
// process with exit status 1 and one line on stderr, before the node
// joins the cluster. The "store opened" line and the ready line say which
// store (and the --durable rules) the node uses.
//
// # Lifecycle
//
// [Command.Main] parses the flags, builds the logger (text or JSON on
// stderr) and calls the program's run function with an [Env]. The run
// function opens its listeners first (so a busy port fails before the node
// joins the cluster), starts the node with [Env.StartNode] (which opens the
// store first) and hands everything to [Env.Serve]. Serve logs
// "<command> ready" with the actual addresses and the store, then waits
// for SIGINT or SIGTERM. On the first signal it marks the process
// unhealthy (/healthz answers 503), stops accepting HTTP requests and
// closes WebSocket clients (both at once), then shuts the node down (topic
// hand-off, then leave), all within --shutdown-timeout, and closes the
// store. A second signal cuts the remaining steps short. The exit status is
// 0 when every step succeeded, 1 otherwise.
//
// # HTTP API
//
// [API] serves /healthz, GET /api/cluster, GET /api/topics/{topic}, the
// cluster's topic listing at GET /api/cluster/topics?prefix=&limit=&cursor=
// (also at GET /api/topics where the notification system, which owns that
// path on ringcast-ws, is not mounted) and, for
// gateways, POST /api/publish, whose ack parameter (none, owner, replicated)
// chooses what the answer waits for (for a durable topic, owner and
// replicated both wait until the store committed the message; a store that
// is down answers 503). Responses are JSON; errors are
// {"error": "..."} with a 4xx or 5xx status.
//
// # Guard
//
// A [Guard] stands in front of each binary's HTTP listener: protected mode
// (--protected-mode: without client authentication, clients of this host
// only), the Host check against DNS rebinding (--allowed-hosts), refusal
// of cross-site unsafe requests without a token and of browser bodies that
// are not JSON, CORS for --allowed-origins, a rate per client IP on /api/
// (--api-rate) and a bound on bodies (413). [GuardFlags] declares its flags
// and the WebSocket gateway's limits; [TLSFlags] and [CertReloader] serve
// TLS with certificates renewed in place.
//
// # Client authentication
//
// [Command.DeclareAccess] adds --config (per-namespace permissions, a TOML
// file), --jwt-public-key and --jwks (RS256 and ES256 client JWTs, beside
// --jwt-secret's HS256), --jwt-audience, --jwt-issuer and --api-key; Parse
// reads their files and refuses a bad one (exit status 2, the file and
// line in the message). [Env.Access] turns them into an [Access]: the
// gateway's AuthenticateConn and Authorize hooks, and the authorization
// of POST /api/publish (401 or 403). [Command.ClientAuthConfigured] tells
// whether any of them, or --anonymous=false, is set. Package access holds
// the format and the decisions.
//
// # Metrics and profiles
//
// [Env.RegisterMetrics] serves GET /metrics in the Prometheus exposition
// format ([NewMetricsHandler]): the node's and the gateway's metrics
// (package pubsub/metrics), the notification system's email outbox and
// sender (ringcast_email_*), and the Go runtime's and the process's
// (go_*, process_*), from a registry of its own. With --pprof it also
// serves net/http/pprof under /debug/pprof/ ([PprofHandler]) on the same
// listener: to loopback clients only (others get 403) unless
// --pprof-allow-remote.
//
// # Status page
//
// [Env.RegisterStatus] serves GET /status, a page (HTML, script and style
// embedded from the status directory, no CDN, under
// [StatusContentSecurityPolicy]) that polls GET /api/status ([Status])
// every second and draws, without reloading: the members with roles, state
// and ring share, the ring, topic counts, rates, link health, and the
// node's version and configuration ([StatusSettings]: never the secret,
// the store's password shown as xxxxx). A member that leaves the node's
// view is listed as gone for 10 minutes. The status is computed at most
// every 500 ms, whoever asks.
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
//   - store.go: --store and --durable, and opening the store.
//   - api.go: the HTTP API.
//   - guard.go, guardflags.go: the Guard, and its flags and the gateway's
//     limits.
//   - peer.go: --protected-mode and the peer TLS flags.
//   - tls.go: --tls-cert, --tls-key and certificate reloading.
//   - notify.go: the notification system's flags and wiring.
//   - access.go: client authentication's flags and wiring.
//   - metrics.go: /metrics, --pprof and the email collector.
//   - status.go, status/: the status page and GET /api/status.
package cli
