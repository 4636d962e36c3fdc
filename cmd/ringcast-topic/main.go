package main

import (
	"net"
	"net/http"
	"os"

	"github.com/ringcast/ringcast/cmd/internal/cli"
	"github.com/ringcast/ringcast/pubsub"
)

const intro = `ringcast-topic is a topic server of a ringcast cluster: it owns a share of
the topics (orders their messages, keeps their recent history, and sends
each message once to every node with subscribers) and serves no clients.
Clients connect to ringcast-ws gateways.

Topics are durable by default: each message is committed to the store
before it is acknowledged or delivered, and a topic goes on (same epoch,
next sequence number) after its owner fails or the whole cluster restarts.
--store is a SQLite file (default $XDG_STATE_HOME/ringcast/ringcast.db, else
~/.local/state/ringcast/ringcast.db; the servers of one host may share it),
a postgres:// URL (one database for every node of a cluster), or memory (no
store). --durable chooses which topics are kept and for how long. A store
that cannot be opened ends the process at start (exit 1); a store that goes
down later makes publishes to durable topics fail (HTTP 503 at the gateway)
while memory-only topics go on.

With --http it also serves, on that address:

  GET /api/cluster    members, their roles, addresses and share of the ring
  GET /api/topics/T   topic T's owner, epoch and last sequence number
  GET /api/topics?prefix=P&limit=N&cursor=C
                      the cluster's topics in name order, a page at a time,
                      each owner answering for its share (also at
                      /api/cluster/topics)
  GET /api/stats      this node's counters: topics, messages, links to peers
  GET /healthz        200 "ok" while serving; 503 while no member owns topics or while shutting down
  GET /status         a live status page: members, the ring, counters, configuration
  GET /api/status     what it shows, as JSON

SIGINT or SIGTERM hands the node's topics over to the remaining servers and
leaves the cluster within --shutdown-timeout; a second signal cuts that
short. The exit status is 0 after a clean shutdown, 1 after a failure, 2 for
bad flags.`

func main() {
	cmd := cli.NewCommand("ringcast-topic", intro)
	admin := cmd.Addr("http", "RINGCAST_HTTP", "", true,
		"HTTP address for /healthz and the read-only API; empty (the default) serves none")
	guard := cmd.DeclareGuard(false)
	os.Exit(cmd.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, func(e *cli.Env) error {
		return run(e, *admin, guard, cmd.Common.ProtectedMode)
	}))
}

func run(e *cli.Env, admin string, guard *cli.GuardFlags, protected bool) error {
	var ln net.Listener
	if admin != "" {
		var err error
		if ln, err = cli.Listen(admin); err != nil {
			return err
		}
	}
	node, err := e.StartNode([]string{pubsub.RoleTopics})
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return err
	}
	s := cli.Service{Node: node}
	if ln != nil {
		mux := http.NewServeMux()
		// This binary serves no client that could authenticate: protected
		// mode applies whenever it is on.
		front := guard.Guard(mux, admin, protected, false, 0, e.Log)
		s.API = cli.NewAPI(node, cli.APIConfig{Logger: e.Log, Guard: front.Stats})
		s.API.Register(mux)
		e.RegisterMetrics(mux, cli.Metrics{Node: node, Guard: front.Stats})
		e.RegisterStatus(mux, cli.StatusConfig{API: s.API, Addrs: map[string]string{"http": ln.Addr().String()}})
		s.Servers = []*cli.Server{cli.NewServer("http", ln, front, e.Log)}
	}
	return e.Serve(s)
}
