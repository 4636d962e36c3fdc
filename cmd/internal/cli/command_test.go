package cli

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// env returns a getenv over vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// testCommand is a command with the flags of ringcast-ws.
func testCommand() (*Command, *string, *[]string, *string) {
	c := NewCommand("ringcast-test", "Intro line.")
	listen := c.Addr("listen", "RINGCAST_LISTEN", "127.0.0.1:4000", false, "listen address")
	roles := c.Roles("roles", "RINGCAST_ROLES", "gateway,topics", "roles")
	admin := c.Addr("http", "RINGCAST_HTTP", "", true, "admin address")
	return c, listen, roles, admin
}

func TestParseDefaults(t *testing.T) {
	c, listen, roles, admin := testCommand()
	if err := c.Parse(nil, env(nil)); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Common{
		Gossip:          "127.0.0.1:0",
		Peer:            "127.0.0.1:0",
		Cluster:         "ringcast",
		LogFormat:       LogText,
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: DefaultShutdownTimeout,

		FailureDetection: FailureDetectionLAN,
		Replication:      2,
		HistorySize:      256,
		HistoryTTL:       5 * time.Minute,
		IdleTopicTTL:     5 * time.Minute,
		MaxPayload:       1 << 20,
	}
	if !equalCommon(c.Common, want) {
		t.Fatalf("defaults = %+v, want %+v", c.Common, want)
	}
	if *listen != "127.0.0.1:4000" || !slices.Equal(*roles, []string{"gateway", "topics"}) || *admin != "" {
		t.Fatalf("listen %q roles %q http %q", *listen, *roles, *admin)
	}
}

func equalCommon(a, b Common) bool {
	return a.NodeName == b.NodeName && a.Gossip == b.Gossip && a.Peer == b.Peer &&
		slices.Equal(a.Join, b.Join) && a.Cluster == b.Cluster && a.Secret == b.Secret &&
		a.LogFormat == b.LogFormat && a.LogLevel == b.LogLevel && a.ShutdownTimeout == b.ShutdownTimeout &&
		a.FailureDetection == b.FailureDetection && a.Replication == b.Replication &&
		a.HistorySize == b.HistorySize && a.HistoryTTL == b.HistoryTTL && a.IdleTopicTTL == b.IdleTopicTTL &&
		a.MaxPayload == b.MaxPayload
}

func TestParseEnvironment(t *testing.T) {
	c, listen, roles, admin := testCommand()
	vars := map[string]string{
		"RINGCAST_NAME":             "from-env",
		"RINGCAST_GOSSIP":           "0.0.0.0:7946",
		"RINGCAST_PEER":             ":7956",
		"RINGCAST_JOIN":             " 10.0.0.1:7946, ,10.0.0.2:7946,10.0.0.1:7946",
		"RINGCAST_CLUSTER":          "prod",
		"RINGCAST_SECRET":           "s3cret",
		"RINGCAST_LOG_FORMAT":       "JSON",
		"RINGCAST_LOG_LEVEL":        "debug",
		"RINGCAST_SHUTDOWN_TIMEOUT": "3s",
		"RINGCAST_LISTEN":           "127.0.0.1:0",
		"RINGCAST_ROLES":            "gateway",
		"RINGCAST_HTTP":             "127.0.0.1:9090",

		"RINGCAST_FAILURE_DETECTION": "Fast",
		"RINGCAST_REPLICATION":       "3",
		"RINGCAST_HISTORY_SIZE":      "-1",
		"RINGCAST_HISTORY_TTL":       "90s",
		"RINGCAST_IDLE_TOPIC_TTL":    "1h",
		"RINGCAST_MAX_PAYLOAD":       "64KiB",
	}
	if err := c.Parse(nil, env(vars)); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Common{
		NodeName:        "from-env",
		Gossip:          "0.0.0.0:7946",
		Peer:            ":7956",
		Join:            []string{"10.0.0.1:7946", "10.0.0.2:7946"},
		Cluster:         "prod",
		Secret:          "s3cret",
		LogFormat:       LogJSON,
		LogLevel:        slog.LevelDebug,
		ShutdownTimeout: 3 * time.Second,

		FailureDetection: FailureDetectionFast,
		Replication:      3,
		HistorySize:      -1,
		HistoryTTL:       90 * time.Second,
		IdleTopicTTL:     time.Hour,
		MaxPayload:       64 << 10,
	}
	if !equalCommon(c.Common, want) {
		t.Fatalf("from the environment: %+v, want %+v", c.Common, want)
	}
	if *listen != "127.0.0.1:0" || !slices.Equal(*roles, []string{"gateway"}) || *admin != "127.0.0.1:9090" {
		t.Fatalf("listen %q roles %q http %q", *listen, *roles, *admin)
	}
}

func TestFlagWinsOverEnvironment(t *testing.T) {
	c, listen, roles, _ := testCommand()
	vars := map[string]string{
		"RINGCAST_NAME":   "from-env",
		"RINGCAST_JOIN":   "10.0.0.1:7946",
		"RINGCAST_LISTEN": "bad address from env", // not read: the flag is given
		"RINGCAST_ROLES":  "topics",
	}
	args := []string{"--name", "from-flag", "--join=", "-listen", "127.0.0.1:4001", "--roles=gateway"}
	if err := c.Parse(args, env(vars)); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Common.NodeName != "from-flag" || len(c.Common.Join) != 0 || *listen != "127.0.0.1:4001" || !slices.Equal(*roles, []string{"gateway"}) {
		t.Fatalf("name %q join %q listen %q roles %q: the flags did not win", c.Common.NodeName, c.Common.Join, *listen, *roles)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		vars map[string]string
		want string // in the error
	}{
		{args: []string{"--bogus"}, want: "flag provided but not defined: -bogus"},
		{args: []string{"--gossip", "nope"}, want: `invalid value "nope" for flag -gossip`},
		{args: []string{"--peer", "127.0.0.1:99999"}, want: "-peer"},
		{args: []string{"--listen", ""}, want: "-listen"},
		{args: []string{"--http", "127.0.0.1"}, want: "-http"},
		{args: []string{"--roles", "gateway,owner"}, want: `unknown role "owner"`},
		{args: []string{"--roles", " , "}, want: "at least one role"},
		{args: []string{"--log-format", "xml"}, want: `unknown log format "xml"`},
		{args: []string{"--log-level", "loud"}, want: `unknown log level "loud"`},
		{args: []string{"--shutdown-timeout", "0s"}, want: "not positive"},
		{args: []string{"--shutdown-timeout", "soon"}, want: "-shutdown-timeout"},
		{args: []string{"extra"}, want: `unexpected argument "extra"`},
		{vars: map[string]string{"RINGCAST_GOSSIP": "nope"}, want: `invalid value "nope" for RINGCAST_GOSSIP`},
		{vars: map[string]string{"RINGCAST_SHUTDOWN_TIMEOUT": "-1s"}, want: "RINGCAST_SHUTDOWN_TIMEOUT"},
		{vars: map[string]string{"RINGCAST_ROLES": "admin"}, want: "RINGCAST_ROLES"},
		{args: []string{"--failure-detection", "wan"}, want: `unknown failure detection "wan" (want lan or fast)`},
		{vars: map[string]string{"RINGCAST_FAILURE_DETECTION": "slow"}, want: `invalid value "slow" for RINGCAST_FAILURE_DETECTION`},
		{args: []string{"--replication", "0"}, want: "out of range: want 1 to 16"},
		{args: []string{"--replication", "17"}, want: "out of range: want 1 to 16"},
		{args: []string{"--replication", "two"}, want: "not an integer"},
		{vars: map[string]string{"RINGCAST_REPLICATION": "99999999999999999999"}, want: "RINGCAST_REPLICATION: out of range"},
		{args: []string{"--history-size", "-2"}, want: "out of range: want -1 to 1048576"},
		{args: []string{"--history-size", "1048577"}, want: "out of range"},
		{args: []string{"--history-ttl", "0s"}, want: "not positive"},
		{vars: map[string]string{"RINGCAST_HISTORY_TTL": "5"}, want: "RINGCAST_HISTORY_TTL"},
		{args: []string{"--idle-topic-ttl", "-1s"}, want: "not positive"},
		{vars: map[string]string{"RINGCAST_IDLE_TOPIC_TTL": "soon"}, want: "RINGCAST_IDLE_TOPIC_TTL: want a duration"},
		{args: []string{"--max-payload", "1023"}, want: "out of range: want 1KiB to 64MiB"},
		{args: []string{"--max-payload", "65MiB"}, want: "out of range: want 1KiB to 64MiB"},
		{args: []string{"--max-payload", "1GiB"}, want: "want a number of bytes"},
		{args: []string{"--max-payload", "-1KiB"}, want: "out of range"},
		{args: []string{"--max-payload", "99999999999999999999MiB"}, want: "out of range"},
		{vars: map[string]string{"RINGCAST_MAX_PAYLOAD": "lots"}, want: "RINGCAST_MAX_PAYLOAD: want a number of bytes"},
	} {
		c, _, _, _ := testCommand()
		err := c.Parse(tc.args, env(tc.vars))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q, %v) = %v, want an error containing %q", tc.args, tc.vars, err, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		c, _, _, _ := testCommand()
		if err := c.Parse([]string{arg}, env(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("Parse(%s) = %v, want flag.ErrHelp", arg, err)
		}
	}
	c, _, _, _ := testCommand()
	var b bytes.Buffer
	c.Usage(&b)
	out := b.String()
	if !strings.HasPrefix(out, "Usage: ringcast-test [flags]\n\nIntro line.\n") {
		t.Fatalf("usage does not start with the intro:\n%s", out)
	}
	for _, o := range c.options {
		if !strings.Contains(out, "  --"+o.name+" ") || !strings.Contains(out, "env "+o.env) {
			t.Errorf("usage lacks --%s or %s:\n%s", o.name, o.env, out)
		}
	}
	if len(c.options) != 29 {
		t.Fatalf("%d flags, want the 26 common ones and 3 of the test command", len(c.options))
	}
	for _, def := range []string{"default 127.0.0.1:4000", "default gateway,topics", "default 10s", "default ringcast", "default text", "default info",
		"--failure-detection lan|fast\n", "default lan)", "--replication n\n", "default 2)", "--history-size n\n", "default 256)",
		"--history-ttl duration\n", "--idle-topic-ttl duration\n", "default 5m0s)", "--max-payload bytes\n", "default 1MiB)",
		"--store store\n", "default " + defaultStoreHelp + ")", "--durable rules\n", "default *=durable)", "--store-timeout duration\n", "default 5s)", "--protected-mode true|false\n", "default true)",
		"--presence rules\n", "--queue-ack-timeout duration\n", "default 30s)",
		"--pprof true|false\n", "--pprof-allow-remote true|false\n", "(env RINGCAST_PPROF, default false)"} {
		if !strings.Contains(out, def) {
			t.Errorf("usage lacks %q", def)
		}
	}
}

func TestMainExitStatus(t *testing.T) {
	run := func(err error) func(*Env) error {
		return func(e *Env) error {
			e.Log.Info("running")
			return err
		}
	}
	for _, tc := range []struct {
		name           string
		args           []string
		runErr         error
		code           int
		stdout, stderr string // substrings; "" wants nothing written
	}{
		{name: "help", args: []string{"--help"}, code: 0, stdout: "--shutdown-timeout duration"},
		{name: "bad flag", args: []string{"--nope"}, code: 2, stderr: "ringcast-test: flag provided but not defined: -nope (see ringcast-test --help)\n"},
		{name: "run fails", args: []string{"--log-level", "error"}, runErr: errors.Join(errors.New("listen 127.0.0.1:4000: address already in use"), errors.New("second")),
			code: 1, stderr: "ringcast-test: listen 127.0.0.1:4000: address already in use; second\n"},
		{name: "run succeeds", args: []string{"--log-format", "json"}, code: 0, stderr: `"msg":"running"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, _, _ := testCommand()
			var stdout, stderr bytes.Buffer
			code := c.Main(tc.args, env(nil), &stdout, &stderr, run(tc.runErr))
			if code != tc.code {
				t.Fatalf("exit status %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			check := func(what, got, want string) {
				if want == "" && got != "" || !strings.Contains(got, want) {
					t.Errorf("%s = %q, want it to contain %q", what, got, want)
				}
				if want != "" && strings.HasSuffix(want, "\n") && got != want {
					t.Errorf("%s = %q, want exactly %q", what, got, want)
				}
			}
			check("stdout", stdout.String(), tc.stdout)
			check("stderr", stderr.String(), tc.stderr)
		})
	}
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	if l2, err := Listen(addr); err == nil {
		l2.Close()
		t.Fatalf("Listen on a busy port succeeded")
	} else if got, want := err.Error(), "listen "+addr+": address already in use"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
}

func TestNodeConfig(t *testing.T) {
	c, _, _, _ := testCommand()
	args := []string{"--name", "n1", "--gossip", "127.0.0.1:7946", "--peer", "127.0.0.1:7956",
		"--join", "127.0.0.1:7947", "--cluster", "c1", "--secret", "0123456789abcdef"}
	if err := c.Parse(args, env(nil)); err != nil {
		t.Fatal(err)
	}
	roles := []string{"gateway"}
	cfg := c.NodeConfig(roles, nil)
	roles[0] = "changed"
	if cfg.NodeName != "n1" || cfg.GossipAddr != "127.0.0.1:7946" || cfg.PeerAddr != "127.0.0.1:7956" ||
		!slices.Equal(cfg.Seeds, []string{"127.0.0.1:7947"}) || cfg.ClusterName != "c1" ||
		string(cfg.Secret) != "0123456789abcdef" || !slices.Equal(cfg.Roles, []string{"gateway"}) {
		t.Fatalf("NodeConfig = %+v", cfg)
	}
	c2, _, _, _ := testCommand()
	if err := c2.Parse(nil, env(nil)); err != nil {
		t.Fatal(err)
	}
	cfg = c2.NodeConfig(nil, nil)
	if cfg.Secret != nil || cfg.Seeds != nil {
		t.Fatalf("NodeConfig without secret or seeds = %+v", cfg)
	}
	// The defaults are the library's: LAN gossip timings, 2 copies, 256
	// messages for 5 minutes, 1 MiB.
	if cfg.Gossip != (pubsub.GossipConfig{}) || cfg.ReplicationFactor != pubsub.DefaultReplicationFactor ||
		cfg.HistorySize != pubsub.DefaultHistorySize || cfg.HistoryTTL != pubsub.DefaultHistoryTTL || cfg.MaxPayload != pubsub.DefaultMaxPayload ||
		cfg.IdleTopicTTL != pubsub.DefaultIdleTopicTTL {
		t.Fatalf("default delivery settings = %+v", cfg)
	}
}

func TestNodeConfigDelivery(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		gossip  pubsub.GossipConfig
		rf      int
		history int
		ttl     time.Duration
		payload int
		idle    time.Duration
	}{
		{args: []string{"--failure-detection", "fast", "--replication", "3", "--history-size", "10", "--history-ttl", "1m", "--max-payload", "4096", "--idle-topic-ttl", "90s"},
			gossip: pubsub.FastGossip(), rf: 3, history: 10, ttl: time.Minute, payload: 4096, idle: 90 * time.Second},
		{args: []string{"--failure-detection", "lan", "--replication", "1", "--history-size", "-1", "--max-payload", "2MiB"},
			rf: 1, history: -1, ttl: pubsub.DefaultHistoryTTL, payload: 2 << 20, idle: pubsub.DefaultIdleTopicTTL},
		// 0 keeps no history; pubsub would read it as its default.
		{args: []string{"--history-size", "0"}, rf: 2, history: -1, ttl: pubsub.DefaultHistoryTTL, payload: pubsub.DefaultMaxPayload, idle: pubsub.DefaultIdleTopicTTL},
	} {
		c, _, _, _ := testCommand()
		if err := c.Parse(tc.args, env(nil)); err != nil {
			t.Fatalf("Parse(%q): %v", tc.args, err)
		}
		cfg := c.NodeConfig(nil, nil)
		if cfg.Gossip != tc.gossip || cfg.ReplicationFactor != tc.rf || cfg.HistorySize != tc.history ||
			cfg.HistoryTTL != tc.ttl || cfg.MaxPayload != tc.payload || cfg.IdleTopicTTL != tc.idle {
			t.Errorf("%q: NodeConfig gossip %+v, replication %d, history %d for %v, max payload %d, idle topics %v; want %+v, %d, %d, %v, %d, %v",
				tc.args, cfg.Gossip, cfg.ReplicationFactor, cfg.HistorySize, cfg.HistoryTTL, cfg.MaxPayload, cfg.IdleTopicTTL,
				tc.gossip, tc.rf, tc.history, tc.ttl, tc.payload, tc.idle)
		}
	}
	if pubsub.FastGossip() == (pubsub.GossipConfig{}) {
		t.Fatal("pubsub.FastGossip is the zero GossipConfig: fast and lan would be the same")
	}
}

// TestNodeConfigPresence: --presence and --queue-ack-timeout reach the
// node's configuration; a bad rule is refused naming it.
func TestNodeConfigPresence(t *testing.T) {
	c, _, _, _ := testCommand()
	if err := c.Parse(nil, env(nil)); err != nil {
		t.Fatal(err)
	}
	if cfg := c.NodeConfig(nil, nil); len(cfg.Presence) != 0 || cfg.QueueAckTimeout != pubsub.DefaultQueueAckTimeout {
		t.Fatalf("defaults: presence %v, queue ack timeout %v", cfg.Presence, cfg.QueueAckTimeout)
	}
	c, _, _, _ = testCommand()
	if err := c.Parse([]string{"--presence", "rooms:* entries=50 metas=2; lobby", "--queue-ack-timeout", "5s"}, env(nil)); err != nil {
		t.Fatal(err)
	}
	cfg := c.NodeConfig(nil, nil)
	want := []pubsub.PresenceRule{{Pattern: "rooms:*", MaxEntries: 50, MaxMetasPerKey: 2}, {Pattern: "lobby"}}
	if !slices.Equal(cfg.Presence, want) || cfg.QueueAckTimeout != 5*time.Second {
		t.Fatalf("presence %+v, queue ack timeout %v; want %+v, 5s", cfg.Presence, cfg.QueueAckTimeout, want)
	}
	for _, bad := range []string{"rooms:* entries=0", "rooms:* size=3", "a*b", "rooms:*; rooms:*"} {
		c, _, _, _ := testCommand()
		err := c.Parse([]string{"--presence", bad}, env(nil))
		if err == nil || !strings.Contains(err.Error(), "presence rule") {
			t.Errorf("--presence %q: %v, want an error naming the rule", bad, err)
		}
	}
}

func TestSizeValue(t *testing.T) {
	for in, want := range map[string]int{
		"65536": 65536, "1024": 1024, "2048B": 2048, "64KiB": 64 << 10, " 64 kib ": 64 << 10,
		"1MiB": 1 << 20, "1mib": 1 << 20, "64MiB": 64 << 20, "1KiB": 1024,
	} {
		var n int
		if err := (sizeValue{p: &n, min: MinMaxPayload, max: MaxMaxPayload}).Set(in); err != nil || n != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
	for n, want := range map[int]string{1 << 20: "1MiB", 3 << 10: "3KiB", 1500: "1500", 0: "0"} {
		if got := (sizeValue{p: &n}).String(); got != want {
			t.Errorf("String of %d = %q, want %q", n, got, want)
		}
	}
}
