package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/ring"
)

// DefaultShutdownTimeout bounds a graceful shutdown unless
// --shutdown-timeout says otherwise.
const DefaultShutdownTimeout = 10 * time.Second

// Bounds of the delivery flags. Replication and payload follow what
// pubsub.New accepts; the smallest payload leaves room for an HTTP publish's
// envelope.
const (
	MaxReplication    = 16
	MaxHistorySize    = 1 << 20
	MinMaxPayload     = 1 << 10
	MaxMaxPayload     = 64 << 20
	DefaultMaxPayload = pubsub.DefaultMaxPayload
)

// Common holds the values of the flags every ringcast binary has.
type Common struct {
	NodeName        string        // --name
	Gossip          string        // --gossip
	Peer            string        // --peer
	Join            []string      // --join
	Cluster         string        // --cluster
	Secret          string        // --secret
	LogFormat       string        // --log-format
	LogLevel        slog.Level    // --log-level
	ShutdownTimeout time.Duration // --shutdown-timeout

	FailureDetection string        // --failure-detection: FailureDetectionLAN or FailureDetectionFast
	Replication      int           // --replication: copies of each topic, owner included
	HistorySize      int           // --history-size: messages kept per topic; 0 or -1 keeps none
	HistoryTTL       time.Duration // --history-ttl
	IdleTopicTTL     time.Duration // --idle-topic-ttl
	MaxPayload       int           // --max-payload, in bytes

	Store        StoreSpec           // --store: where durable topics are kept
	Durable      []pubsub.Durability // --durable: which topics are durable, and for how long
	StoreTimeout time.Duration       // --store-timeout: bound of one store call

	Presence        []pubsub.PresenceRule // --presence: which topics track who is on them
	QueueAckTimeout time.Duration         // --queue-ack-timeout: redelivery of a durable queue group's messages

	ProtectedMode bool         // --protected-mode: without a secret or peer TLS, only loopback peers; without client auth, only loopback clients
	PeerTLS       PeerTLSFiles // --peer-tls-ca, --peer-tls-cert, --peer-tls-key
}

// option is one flag and the environment variable behind it.
type option struct {
	name  string
	env   string
	usage string
	def   string // default as shown in --help; "" shows none
	value flag.Value
}

// Command is one ringcast binary's command line: the common flags plus its
// own. Declare its own flags before calling Parse or Main. A Command is
// used by one goroutine; the values it parsed may be read from any once
// parsing is done.
type Command struct {
	// Common holds the parsed common flags.
	Common Common

	name    string
	intro   string
	fs      *flag.FlagSet
	options []*option
	common  int                 // options[:common] are the common flags
	getenv  func(string) string // what Parse read the environment with
	notify  *NotifyFlags        // the notification system's flags, if DeclareNotify was called
	peerTLS *peerTLS            // loaded --peer-tls-* files, if set
	access  *AccessFlags        // client authentication's flags, if DeclareAccess was called
	metrics *MetricsFlags       // --pprof and --pprof-allow-remote
}

// NewCommand returns a Command named name (the binary's name, which prefixes
// its error messages and its ready line) with the common flags declared.
// intro is printed at the top of --help.
func NewCommand(name, intro string) *Command {
	c := &Command{name: name, intro: strings.TrimSpace(intro)}
	c.fs = flag.NewFlagSet(name, flag.ContinueOnError)
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {}
	c.Common = Common{
		Cluster:         ring.DefaultClusterName,
		Gossip:          "127.0.0.1:0",
		Peer:            "127.0.0.1:0",
		LogFormat:       LogText,
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: DefaultShutdownTimeout,

		FailureDetection: FailureDetectionLAN,
		Replication:      pubsub.DefaultReplicationFactor,
		HistorySize:      pubsub.DefaultHistorySize,
		HistoryTTL:       pubsub.DefaultHistoryTTL,
		IdleTopicTTL:     pubsub.DefaultIdleTopicTTL,
		MaxPayload:       DefaultMaxPayload,

		StoreTimeout: pubsub.DefaultStoreTimeout,

		QueueAckTimeout: pubsub.DefaultQueueAckTimeout,
	}
	cm := &c.Common
	if err := (durabilityValue{&cm.Durable}).Set(DefaultDurable); err != nil {
		panic(err)
	}
	c.Var(stringValue{&cm.NodeName}, "name", "RINGCAST_NAME",
		"node name, unique in the cluster (default: host name and a random suffix)")
	c.Var(addrValue{p: &cm.Gossip}, "gossip", "RINGCAST_GOSSIP",
		"gossip (membership) address, host:port; port 0 picks a free port")
	c.Var(addrValue{p: &cm.Peer}, "peer", "RINGCAST_PEER",
		"node-to-node link address, host:port; port 0 picks a free port")
	c.Var(listValue{p: &cm.Join}, "join", "RINGCAST_JOIN",
		"comma-separated gossip addresses (host:port; a host name stands for all its addresses) of members to join, retried until one answers and rejoined when lost; empty starts a new cluster")
	c.Var(stringValue{&cm.Cluster}, "cluster", "RINGCAST_CLUSTER",
		"cluster name; nodes of other clusters are refused")
	c.Var(stringValue{&cm.Secret}, "secret", "RINGCAST_SECRET",
		"shared secret that authenticates peer links and encrypts gossip; the same on every node (prefer the variable: flags show in ps)")
	c.Var(formatValue{&cm.LogFormat}, "log-format", "RINGCAST_LOG_FORMAT",
		"log format on stderr: text or json")
	c.Var(levelValue{&cm.LogLevel}, "log-level", "RINGCAST_LOG_LEVEL",
		"lowest level logged: debug, info, warn or error")
	c.Var(durationValue{&cm.ShutdownTimeout}, "shutdown-timeout", "RINGCAST_SHUTDOWN_TIMEOUT",
		"time allowed, after SIGINT or SIGTERM, to close clients, hand topics off and leave")
	c.Var(detectionValue{&cm.FailureDetection}, "failure-detection", "RINGCAST_FAILURE_DETECTION",
		`how soon a member that stops without leaving is declared dead and its topics taken over: "lan" (a few seconds) or "fast" (under a second; more gossip, for loopback and test clusters)`)
	c.Var(intValue{p: &cm.Replication, min: 1, max: MaxReplication}, "replication", "RINGCAST_REPLICATION",
		"copies of each topic's sequence and history, the owner included (1 to 16; 1 turns replication off); the same on every node")
	c.Var(intValue{p: &cm.HistorySize, min: -1, max: MaxHistorySize}, "history-size", "RINGCAST_HISTORY_SIZE",
		"recent messages each topic keeps for clients that resume and for failover (up to 1048576; 0 or -1 keeps none)")
	c.Var(durationValue{&cm.HistoryTTL}, "history-ttl", "RINGCAST_HISTORY_TTL",
		"age at which a message leaves its topic's history")
	c.Var(durationValue{&cm.IdleTopicTTL}, "idle-topic-ttl", "RINGCAST_IDLE_TOPIC_TTL",
		"how long a topic with no subscribers and an empty history is kept after its last use; forgotten, it starts a new epoch if used again")
	c.Var(sizeValue{p: &cm.MaxPayload, min: MinMaxPayload, max: MaxMaxPayload}, "max-payload", "RINGCAST_MAX_PAYLOAD",
		"largest message, in bytes or with a KiB or MiB suffix (1KiB to 64MiB); the same on every node")
	c.Var(storeValue{&cm.Store}, "store", "RINGCAST_STORE",
		`database beneath durable topics, opened at start (a process that cannot open it exits 1): a SQLite file (PATH or sqlite:PATH; the processes of one host may share it), postgres://USER:PASSWORD@HOST:PORT/DB or postgresql://... (one database for every node of the cluster; prefer the variable for a password: flags show in ps), or "memory" for none; a node with the gateway role only opens none`)
	c.options[len(c.options)-1].def = defaultStoreHelp
	c.Var(durabilityValue{&cm.Durable}, "durable", "RINGCAST_DURABLE",
		`which topics the store keeps, and how long: rules separated by ";", each PATTERN=durable|memory [age=DURATION] [count=N], PATTERN a topic, a prefix ending in "*", or "*"; a topic follows its most specific rule and no rule means memory-only (e.g. "notifications:*=durable age=720h count=100000; cursor:*=memory; *=durable"); the same on every node`)
	c.Var(durationValue{&cm.StoreTimeout}, "store-timeout", "RINGCAST_STORE_TIMEOUT",
		"bound of one call to the store, and of opening it; a publish to a durable topic the store does not commit in time fails (HTTP 503)")
	c.Var(presenceValue{&cm.Presence}, "presence", "RINGCAST_PRESENCE",
		`which topics track presence (Phoenix presence_state and presence_diff, keyed by the token's user or the join's {"presence": {"key": ...}}): rules separated by ";", each PATTERN [entries=N] [metas=N], PATTERN a topic, a prefix ending in "*", or "*"; entries bounds a topic's set (default 100000), metas a key's connections (default 100); empty: none; the same on every node (e.g. "rooms:*; lobby entries=1000 metas=10")`)
	c.Var(durationValue{&cm.QueueAckTimeout}, "queue-ack-timeout", "RINGCAST_QUEUE_ACK_TIMEOUT",
		`how long a message of a durable topic waits for the acknowledgement of the queue group member it was given (a client joined with {"queue": "workers"}) before it goes to another member`)
	c.declarePeerFlags()
	c.metrics = c.declareMetrics()
	c.common = len(c.options)
	return c
}

// Var declares a flag --name backed by the environment variable env. The
// value's String at declaration time is shown as the default.
func (c *Command) Var(value flag.Value, name, env, usage string) {
	c.fs.Var(value, name, usage)
	c.options = append(c.options, &option{name: name, env: env, usage: usage, def: value.String(), value: value})
}

// String declares a string flag with its variable and default.
func (c *Command) String(name, env, def, usage string) *string {
	p := new(string)
	*p = def
	c.Var(stringValue{p}, name, env, usage)
	return p
}

// Addr declares a host:port flag. With optional, an empty value is allowed
// (meaning off).
func (c *Command) Addr(name, env, def string, optional bool, usage string) *string {
	p := new(string)
	*p = def
	c.Var(addrValue{p: p, optional: optional}, name, env, usage)
	return p
}

// List declares a comma-separated list flag.
func (c *Command) List(name, env, def, usage string) *[]string {
	p := new([]string)
	v := listValue{p: p}
	if err := v.Set(def); err != nil {
		panic(err)
	}
	c.Var(v, name, env, usage)
	return p
}

// Roles declares a flag listing node roles (gateway, topics): a non-empty,
// comma-separated list.
func (c *Command) Roles(name, env, def, usage string) *[]string {
	p := new([]string)
	v := rolesValue{listValue{p: p}}
	if err := v.Set(def); err != nil {
		panic(err)
	}
	c.Var(v, name, env, usage)
	return p
}

// Parse reads the command line and then, for every flag not given there,
// its environment variable (looked up with getenv). It returns flag.ErrHelp
// for -h, -help or --help, and a one-line error for anything else wrong.
func (c *Command) Parse(args []string, getenv func(string) string) error {
	c.getenv = getenv
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errors.New(redactURLs(err.Error()))
	}
	if c.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", c.fs.Arg(0))
	}
	given := make(map[string]bool)
	c.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, o := range c.options {
		if given[o.name] || o.env == "" {
			continue
		}
		v, ok := lookup(getenv, o.env)
		if !ok {
			continue
		}
		if err := o.value.Set(v); err != nil {
			return errors.New(redactURLs(fmt.Sprintf("invalid value %q for %s: %v", v, o.env, err)))
		}
	}
	if err := c.checkPeerFlags(); err != nil {
		return err
	}
	if c.access != nil {
		return c.access.load(c.notify)
	}
	return nil
}

// userinfoPassword matches the password of a URL's user information.
var userinfoPassword = regexp.MustCompile(`(://[^:/?#@\s"]*:)[^@\s"]*@`)

// redactURLs hides the passwords of the URLs in a message, which may quote
// a bad --store value.
func redactURLs(msg string) string {
	return userinfoPassword.ReplaceAllString(msg, "${1}xxxxx@")
}

// lookup treats an empty variable as unset.
func lookup(getenv func(string) string, env string) (string, bool) {
	if getenv == nil {
		return "", false
	}
	v := getenv(env)
	return v, v != ""
}

// Usage writes the --help text: the intro, then every flag with its
// variable and default.
func (c *Command) Usage(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [flags]\n\n", c.name)
	if c.intro != "" {
		b.WriteString(c.intro)
		b.WriteString("\n\n")
	}
	b.WriteString("Flags (a flag wins over its environment variable):\n")
	// The command's own flags first, then the common ones.
	for _, o := range append(slices.Clone(c.options[c.common:]), c.options[:c.common]...) {
		fmt.Fprintf(&b, "  --%s %s\n", o.name, argName(o.value))
		fmt.Fprintf(&b, "        %s\n", o.usage)
		extra := "env " + o.env
		if o.def != "" {
			extra += ", default " + o.def
		}
		fmt.Fprintf(&b, "        (%s)\n", extra)
	}
	_, _ = io.WriteString(w, b.String())
}

// argName names a flag's value in --help.
func argName(v flag.Value) string {
	switch v.(type) {
	case addrValue:
		return "host:port"
	case rolesValue:
		return "roles"
	case listValue:
		return "list"
	case durationValue:
		return "duration"
	case formatValue:
		return "text|json"
	case levelValue:
		return "level"
	case detectionValue:
		return "lan|fast"
	case intValue:
		return "n"
	case sizeValue:
		return "bytes"
	case storeValue:
		return "store"
	case durabilityValue, presenceValue:
		return "rules"
	case boolValue:
		return "true|false"
	case rateValue:
		return "rate[:burst]"
	default:
		return "string"
	}
}

// Main runs the command: it parses args and the environment, sets up
// logging on stderr and signal handling, and calls run. It returns the exit
// status: 0 on success or --help, 2 for a bad flag or variable, 1 when run
// fails. Errors are written to stderr as one line prefixed with the
// command's name.
func (c *Command) Main(args []string, getenv func(string) string, stdout, stderr io.Writer, run func(*Env) error) int {
	if err := c.Parse(args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.Usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "%s: %s (see %s --help)\n", c.name, oneLine(err), c.name)
		return 2
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	e := c.newEnv(stderr, c.Common.LogFormat, sigs)
	if len(c.Common.Secret) > 0 && len(c.Common.Secret) < minSecretLen {
		e.Log.Warn("the shared secret is short; use at least 16 random bytes", "bytes", len(c.Common.Secret))
	}
	err := run(e)
	// Serve closed the store after the node; this closes it when run
	// returned before Serve.
	if cerr := e.closeStore(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", c.name, oneLine(err))
		return 1
	}
	return 0
}

const minSecretLen = 16

// oneLine keeps an error message on one line (errors.Join separates with
// newlines).
func oneLine(err error) string {
	var parts []string
	for line := range strings.Lines(err.Error()) {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, "; ")
}

// NewLogger returns a logger writing to w in format (LogText or LogJSON) at
// level and above.
func NewLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// newEnv returns the Env of a run whose logs go to w in format (LogText or
// LogJSON). Every line carries the node's name once: the process's own
// lines through Env.Log, the node's through the name pubsub adds to them.
// A node without --node-name is named here, so that both show one name.
func (c *Command) newEnv(w io.Writer, format string, sigs <-chan os.Signal) *Env {
	if c.Common.NodeName == "" {
		c.Common.NodeName = ring.NewNodeName()
	}
	base := NewLogger(w, format, c.Common.LogLevel)
	return &Env{Log: base.With("node", c.Common.NodeName), nodeLog: base, cmd: c, signals: sigs}
}

// NodeConfig returns the pubsub configuration the common flags describe, for
// a node with roles, logging to log.
func (c *Command) NodeConfig(roles []string, log *slog.Logger) pubsub.Config {
	cfg := pubsub.Config{
		NodeName:    c.Common.NodeName,
		ClusterName: c.Common.Cluster,
		GossipAddr:  c.Common.Gossip,
		PeerAddr:    c.Common.Peer,
		Seeds:       append([]string(nil), c.Common.Join...),
		Roles:       append([]string(nil), roles...),
		Logger:      log,
	}
	if c.Common.Secret != "" {
		cfg.Secret = []byte(c.Common.Secret)
	}
	if c.Common.FailureDetection == FailureDetectionFast {
		cfg.Gossip = pubsub.FastGossip()
	}
	cfg.ReplicationFactor = c.Common.Replication
	cfg.HistorySize = c.Common.HistorySize
	if cfg.HistorySize == 0 {
		cfg.HistorySize = -1 // pubsub reads 0 as its default
	}
	cfg.HistoryTTL = c.Common.HistoryTTL
	cfg.IdleTopicTTL = c.Common.IdleTopicTTL
	cfg.MaxPayload = c.Common.MaxPayload
	cfg.Presence = append([]pubsub.PresenceRule(nil), c.Common.Presence...)
	cfg.QueueAckTimeout = c.Common.QueueAckTimeout
	c.peerConfig(&cfg, log)
	return cfg
}
