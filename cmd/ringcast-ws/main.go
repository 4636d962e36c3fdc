package main

import (
	"context"
	"errors"
	"net/http"
	"os"

	"github.com/ringcast/ringcast/cmd/internal/cli"
	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

const intro = `ringcast-ws is the WebSocket gateway of a ringcast cluster. It joins the
cluster as a node and serves, on --listen:

  /socket/websocket   Phoenix Channels V2 clients (phoenix.js 1.8, websocat:
                      ws://HOST:PORT/socket/websocket?vsn=2.0.0)
  POST /api/publish?topic=T[&event=E][&ack=none|owner|replicated]
                      publish the JSON body to topic T as event E
                      (default "message"); answers {"topic":T,"seq":N,
                      "epoch":"E"} once the topic's owner (ack=owner, the
                      default) or the owner and its replicas
                      (ack=replicated) hold it, or 202 {"topic":T} at once
                      (ack=none)
  GET /api/cluster    members, their roles, addresses and share of the ring
  GET /api/topics/T   topic T's owner, epoch and last sequence number
  GET /api/cluster/topics?prefix=P&limit=N&cursor=C
                      the cluster's topics in name order, a page at a time
                      (also GET /api/topics without the notification system)
  GET /api/stats      this node's counters: topics, messages, links to
                      peers, and the gateway's connections and frames
  GET /healthz        200 "ok" while serving; 503 while no member owns topics or while shutting down
  GET /status         a live status page: members, the ring, counters, configuration
  GET /api/status     what it shows, as JSON

and, while the notification system runs (below), its HTTP API, JSON with
"Authorization: Bearer TOKEN" on every call but the first two:

  POST /api/users {"id","email","password"}       create an account (201)
  POST /api/tokens {"id","password"}              log in: {"token","expires_at"}
  DELETE /api/tokens/current                      revoke the token
  POST /api/topics {"name","description"}         create a topic: the caller is its creator
  GET /api/topics[?mine=1&subscribed=1]           list topics
  GET, DELETE /api/topics/NAME                    with a token, the notification topic
                                                  NAME; deleted by its creator only
  POST /api/topics/NAME/notifications             notify its subscribers of the JSON
                                                  body: {"seq":N,"epoch":"E"}; creator only
  GET /api/topics/NAME/notifications?after=&before=&limit=
                                                  the history, from the store
  GET /api/topics/NAME/notifications/SEQ/receipts {"subscribers":n,"read":k}; creator only
  GET, PUT, DELETE /api/topics/NAME/subscription  the caller's subscription
  POST /api/topics/NAME/read {"seq":N}            read up to N
  POST /api/read                                  mark everything read
  GET /api/inbox                                  {"unread":total,"topics":[...]}
  GET /                                           a web page over all of it (phoenix.js, embedded)

and, on /socket/websocket, the channel "inbox" for clients connected with a
token (?token=T, or phoenix.js authToken): every new notification of the
user's topics, "unread" counts, and "read" {topic, seq} pushed on one
device reaching the others.

With the default roles it also owns a share of the topics; --roles gateway
makes a pure gateway that leaves topics to ringcast-topic servers.

Topics are durable by default: the node that owns a topic commits each
message to a store before it acknowledges or delivers it, and the topic goes
on (same epoch, next sequence number) after its owner fails or the whole
cluster restarts. --store is a SQLite file (default
$XDG_STATE_HOME/ringcast/ringcast.db, else
~/.local/state/ringcast/ringcast.db), a postgres:// URL (one database for
every node of a cluster), or memory (no store). --durable chooses which
topics are kept and for how long. A pure gateway owns no topics, and opens
the store only for the notification system. A store that cannot be opened
ends the process at start (exit 1); a store that goes down later makes
publishes to durable topics answer 503 while memory-only topics go on.

Each topic is held by --replication members; a publish acknowledged with
ack=replicated survives the loss of any one of them. When a topic's owner
fails, the next member takes the topic over once the failure is detected:
within a few seconds with --failure-detection lan, well under a second with
fast (loopback and test clusters). Clients that reconnect resume with a
join payload {"since": seq, "epoch": "E"} from the topic's history
(--history-size, --history-ttl).

The notification system runs whenever --store is a database (off with
--store memory or --notify=false), in the store's own database, on pure
gateways too: accounts and tokens (or JWTs, with --jwt-secret), topics that
their creators own, kept as the durable topics "notifications:NAME", and
read state as one cursor per user and topic, so unread counts are exact.
With --smtp and --smtp-from, a subscriber who left a notification unread
for --email-delay with no live connection is emailed (--smtp-user,
--smtp-password, --smtp-tls), through an outbox in the store, with retries
and a circuit breaker. Topics "notifications:*" and "users:*" are reserved:
no client joins them and POST /api/publish refuses them (403). With
--anonymous=false, clients without a token may join no topic at all.

Protected mode (--protected-mode, on by default) serves clients of this
host only while no client authentication is configured. Requests naming a
Host other than an IP address, localhost, the --listen host or one of
--allowed-hosts are refused (DNS rebinding); web pages of other origins may
connect and call the API only if --allowed-origins (older name --origins)
lists them. Connections per address, joins and publishes per connection
and per user, and API requests per address are rate-limited
(--max-conns-per-addr, --client-publish-rate, --client-join-rate,
--user-publish-rate, --user-join-rate, --api-rate). --tls-cert and
--tls-key serve HTTPS and WSS, and pick up renewed files without a restart.

Clients authenticate with a token: the notification system's, or a JWT
(sub = user id, exp required) signed with --jwt-secret (HS256), the key of
--jwt-public-key (RS256 or ES256) or a key of --jwks (by kid), with or
without the notification system. --config FILE (TOML, see
examples/ringcast.toml) sets per namespace (a topic's prefix before its
first ":") who may subscribe (anyone, authenticated, or claim: the JWT's
"channels" claim grants the topic), who may publish (clients,
authenticated, claim, api: only POST /api/publish with an API key), whether
joins with since may read history, and whether clients without a token are
admitted at all. A refused join or publish gets a Phoenix error reply with
a reason ("unauthorized", "forbidden: ...", "history not allowed"); the
socket stays open. POST /api/publish takes an API key (--api-key, better
RINGCAST_API_KEY) as "Authorization: Bearer KEY" or "X-API-Key: KEY", or a
client's token, and answers 401 or 403 when the namespace's rules refuse.
Without --config every topic is open to every client, as before.

SIGINT or SIGTERM closes clients, hands the node's topics over and leaves
the cluster within --shutdown-timeout; a second signal cuts that short. The
exit status is 0 after a clean shutdown, 1 after a failure, 2 for bad flags.`

func main() {
	cmd := cli.NewCommand("ringcast-ws", intro)
	listen := cmd.Addr("listen", "RINGCAST_LISTEN", "127.0.0.1:4000", false,
		"HTTP address for WebSocket clients, the API and /healthz; port 0 picks a free port")
	roles := cmd.Roles("roles", "RINGCAST_ROLES", pubsub.RoleGateway+","+pubsub.RoleTopics,
		`node roles, comma-separated: "gateway" serves clients, "topics" also owns topics`)
	guard := cmd.DeclareGuard(true)
	tlsFlags := cmd.DeclareTLS()
	nf := cmd.DeclareNotify()
	cmd.DeclareAccess()
	os.Exit(cmd.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, func(e *cli.Env) error {
		return run(e, *listen, *roles, guard, tlsFlags, cmd.Common, nf.Anonymous, cmd.ClientAuthConfigured())
	}))
}

// frameOverhead is what a client's publish frame holds besides the payload:
// refs, topic and event (each at most 255 bytes) and the JSON around them.
const frameOverhead = 4 << 10

func run(e *cli.Env, listen string, roles []string, guard *cli.GuardFlags, tlsFlags *cli.TLSFlags, common cli.Common, anonymous, clientAuth bool) error {
	maxPayload := common.MaxPayload
	tcp, err := cli.Listen(listen)
	if err != nil {
		return err
	}
	ln, err := tlsFlags.Listener(tcp, e.Log)
	if err != nil {
		_ = tcp.Close()
		return err
	}
	node, err := e.StartNode(roles)
	if err != nil {
		_ = ln.Close()
		return err
	}
	nt, err := e.StartNotify(node)
	if err != nil {
		_ = ln.Close()
		return errors.Join(err, node.Close())
	}
	opts := &gateway.Options{
		MaxMessageSize: int64(maxPayload + frameOverhead),
		Logger:         e.Log,
	}
	guard.GatewayOptions(opts, listen)
	nt.GatewayOptions(opts, anonymous)
	ac := e.Access(nt)
	ac.GatewayOptions(opts)
	gw := gateway.NewHandler(broker.New(node), opts)
	cfg := cli.APIConfig{Publish: true, Gateway: gw, MaxPayload: maxPayload, Logger: e.Log, DenyAnonymous: !anonymous}
	ac.APIConfig(&cfg)
	svc := cli.Service{
		Node:  node,
		Drain: []func(ctx context.Context) error{gw.Shutdown},
	}
	if nt != nil {
		cfg.Reserved = cli.NotifyPrefixes()
		cfg.Authenticate = nt.Service.Authenticate
		cfg.Notify = nt.Stats
		svc.Drain = []func(ctx context.Context) error{func(ctx context.Context) error {
			return errors.Join(gw.Shutdown(ctx), nt.Drain(ctx))
		}}
		svc.Close = []func() error{nt.Close}
	}
	mux := http.NewServeMux()
	// Client authentication configured (a JWT key, --config, an API key or
	// --anonymous=false) lifts protected mode's loopback-only rule.
	front := guard.Guard(mux, listen, common.ProtectedMode, clientAuth, maxPayload, e.Log)
	cfg.Guard = front.Stats
	api := cli.NewAPI(node, cfg)
	mux.Handle("/socket/websocket", gw)
	api.Register(mux)
	e.RegisterMetrics(mux, cli.Metrics{Node: node, Gateway: gw, Notify: nt, Guard: front.Stats})
	e.RegisterStatus(mux, cli.StatusConfig{API: api, Addrs: map[string]string{"listen": ln.Addr().String()}, TLS: tlsFlags.Cert != ""})
	if nt != nil {
		nt.Register(mux, api)
	}
	svc.Servers = []*cli.Server{cli.NewServer("listen", ln, front, e.Log)}
	svc.API = api
	return e.Serve(svc)
}
