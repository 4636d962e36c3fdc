// Command ringcast-bench is a load generator for running ringcast clusters.
// It opens WebSocket connections to one or more gateways (ringcast-ws),
// speaks Phoenix Channels V2 JSON to them, joins topics, publishes at a
// fixed rate, and reports throughput, publish-to-receipt latency, errors,
// and lost and duplicated messages.
//
// # Usage
//
//	ringcast-bench [flags]
//	ringcast-bench -urls ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0,ws://127.0.0.1:4001/socket/websocket?vsn=2.0.0 \
//	    -conns 2000 -topics 20 -rate 5000 -duration 30s
//
// Connection i goes to gateway i mod len(urls) and joins topic i mod
// topics; the first connections of each topic publish to it (-publishers,
// one per topic by default), sharing -rate between them. Every payload is
// a JSON object carrying the publisher's id, its counter and the send time
// ({"p":3,"n":42,"t":1732300000000000000,"x":"..."}), so each receiver can
// tell lost, duplicated and reordered messages apart, and time them.
//
// A progress line is rewritten once per second on standard error; the
// summary goes to standard output. SIGINT or SIGTERM stops publishing,
// waits for the messages in flight (-drain) and prints the summary; a
// second signal ends the process at once. The exit status is 0 when
// nothing was lost, duplicated or refused, 1 otherwise, 2 for bad flags.
//
// # Limits
//
// Everything is bounded: at most 100,000 connections, 1,000,000
// publishes per second, a 24 h duration and 1 MiB payloads; each
// publisher has at most 1,000 publishes awaiting their reply. Targets must
// be loopback addresses unless -allow-remote is given. Many connections
// need a raised open-file limit (ulimit -n), one descriptor each.
//
// ringcast-ws bounds the connections of one client address (256) and the
// publishes of one connection (100 a second): to load a gateway past them
// from one machine, start it with --max-conns-per-addr 0
// --client-publish-rate off.
//
// # Files
//
//   - main.go: flags, signals and the exit status.
//   - config.go: Config, its bounds and its checks.
//   - loadgen.go: a run: connections, publishers, readers, heartbeats and
//     the drain.
//   - phoenix.go: the Phoenix messages written and parsed.
//   - report.go: the Summary and the progress line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: it parses args, runs the load until the duration
// ends or a signal arrives, and prints the summary. It returns the exit
// status.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "ringcast-bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	sum, err := Run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "ringcast-bench:", err)
		if sum.Connected == 0 {
			return 1
		}
	}
	fmt.Fprint(stdout, sum.String())
	if err != nil || !sum.Clean() {
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("ringcast-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: ringcast-bench [flags]\n\nLoad generator for ringcast gateways (Phoenix Channels V2 over WebSocket).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var cfg Config
	urls := fs.String("urls", DefaultURL, "gateway URLs, comma-separated; connections are spread over them")
	fs.IntVar(&cfg.Conns, "conns", 100, "WebSocket connections (1-100000)")
	fs.IntVar(&cfg.Topics, "topics", 10, "topics; connection i joins topic i mod topics")
	fs.IntVar(&cfg.Publishers, "publishers", 0, "connections that publish (default: one per topic)")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "publishes per second, all publishers together")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to publish")
	fs.IntVar(&cfg.PayloadSize, "payload", 128, "bytes of each published JSON object (at least 64)")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "how long to wait for the last messages after publishing stops")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "deadline of each dial, join and publish reply")
	fs.StringVar(&cfg.TopicPrefix, "topic-prefix", "bench:", "prefix of the topic names")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow gateways that are not on a loopback address")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no progress line")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for u := range strings.SplitSeq(*urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cfg.URLs = append(cfg.URLs, u)
		}
	}
	return cfg, cfg.validate()
}
