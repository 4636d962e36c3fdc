// Command peers runs ringcast's workloads W1-W3 (see package
// github.com/ringcast/ringcast/bench) against ringcast, NATS and Redis in
// one run, with the same flow control for all three, and prints one table
// with each peer's ratio to ringcast. It writes the results as CSV and
// JSON; chart.sh renders the CSV into a PNG with gnuplot.
//
// It is a module of its own so that the NATS and Redis clients never
// enter ringcast's go.mod.
//
// # Systems
//
//   - ringcast: in-process nodes on 127.0.0.1, fast gossip with a
//     tolerant failure detector, AckNone publishes (retried while a link's
//     queue is full), SubscribeFunc subscribers; the defaults otherwise,
//     so every topic keeps history at its owner and a replica.
//   - ringcast-r1: the same with ReplicationFactor 1 (no replica), the
//     delivery semantics of NATS core and Redis pub/sub.
//   - nats: an embedded nats-server cluster in this process (servers
//     connected by routes on 127.0.0.1, random ports), one nats.go
//     connection per server; each subscriber is a subscription.
//   - redis: one redis-server process (Debian's), started and stopped by
//     its PID, reached over a unix socket; a node is a set of client
//     connections, each subscriber gets its own copy from the server (its
//     own connection when it shares a topic), publishes are pipelined.
//   - redis-local: the same server, but one copy per node handed to the
//     node's subscribers in turn by the connection's reader, without a
//     buffer per subscriber: the upper bound of a node-local fan-out.
//
// # Flow control
//
// The publisher never has more than 256 messages outstanding to its
// slowest subscriber (W1, W2) or 4,096 deliveries outstanding in all
// (W3). A system whose subscribers make no progress for the stall timeout
// ends the run early; deliveries still missing at the drain deadline are
// reported as lost, not waited for.
//
// # Usage
//
//	go run . -duration 3s -rounds 5 -out results
//	./chart.sh results/results.csv results/results.png
//
// With -rounds N every workload runs N times on every system, the systems
// taking turns at going first; the table and results.csv give medians
// with the range of deliveries/s, runs.json every run. Runs on a shared
// machine differ by tens of percent: compare medians of several rounds.
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command's flags.
type options struct {
	settings
	rounds    int
	systems   []string
	workloads []string
	out       string
}

var allSystems = []factory{
	{"ringcast", startRingcast},
	{"ringcast-r1", startRingcastR1},
	{"nats", startNATS},
	{"redis", startRedis},
	{"redis-local", startRedisLocal},
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "publishing time of each measured run")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "publishing time before each measured run")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "deadline for the last deliveries of a run; later ones count as lost")
	fs.DurationVar(&o.stall, "stall", 3*time.Second, "a window that does not open for that long ends the run")
	fs.DurationVar(&o.setup, "setup", 60*time.Second, "deadline for subscribing and probing")
	fs.IntVar(&o.rounds, "rounds", 1, "times to run every workload on every system; results are the medians")
	systems := fs.String("systems", "ringcast,ringcast-r1,nats,redis,redis-local", "systems to run, comma-separated")
	work := fs.String("workloads", "W1-1,W1-1000,W2-max,W2-2000,W3", "workloads to run, comma-separated")
	fs.StringVar(&o.out, "out", "results", "directory for results.csv and results.json (empty: none)")
	fs.StringVar(&redisServerPath, "redis-server", "", "redis-server binary (default: from PATH)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, d := range []time.Duration{o.duration, o.drain, o.stall, o.setup} {
		if d <= 0 || d > time.Hour {
			return o, fmt.Errorf("durations must be between 0 and 1h, got %v", d)
		}
	}
	if o.rounds < 1 || o.rounds > 100 {
		return o, fmt.Errorf("rounds must be between 1 and 100, got %d", o.rounds)
	}
	if o.warmup < 0 || o.warmup > time.Hour {
		return o, fmt.Errorf("warm-up must be between 0 and 1h, got %v", o.warmup)
	}
	o.systems = splitList(*systems)
	o.workloads = splitList(*work)
	for _, s := range o.systems {
		if !slices.ContainsFunc(allSystems, func(f factory) bool { return f.name == s }) {
			return o, fmt.Errorf("unknown system %q", s)
		}
	}
	for _, w := range o.workloads {
		if !slices.ContainsFunc(workloads(), func(x workload) bool { return x.id == w }) {
			return o, fmt.Errorf("unknown workload %q", w)
		}
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "peers:", err)
		return 2
	}
	runs, err := compare(context.Background(), o, stderr)
	results := summarize(runs, o)
	fmt.Fprintln(stdout, table(results))
	if o.out != "" {
		if werr := writeResults(o.out, results, runs); werr != nil {
			fmt.Fprintln(stderr, "peers:", werr)
			return 1
		}
		fmt.Fprintf(stdout, "results written to %s\n", filepath.Join(o.out, "results.csv"))
	}
	if err != nil {
		fmt.Fprintln(stderr, "peers:", err)
		return 1
	}
	return 0
}

// compare runs every selected workload against every selected system, one
// at a time, each on a fresh system, o.rounds times. Each round starts
// with the next system in turn, so that none always runs first (on a
// freshly started process) or last. A system that cannot start here
// (redis-server missing) is skipped with a message; any other failure is
// recorded in its result and makes compare return an error. It returns
// every run, in order.
func compare(ctx context.Context, o options, log io.Writer) ([]result, error) {
	var (
		results []result
		failed  []string
		systems []factory
	)
	for _, f := range allSystems {
		if slices.Contains(o.systems, f.name) {
			systems = append(systems, f)
		}
	}
	for round := 1; round <= o.rounds; round++ {
		for _, w := range workloads() {
			if !slices.Contains(o.workloads, w.id) {
				continue
			}
			for i := range systems {
				f := systems[(i+round-1)%len(systems)]
				if o.rounds > 1 {
					fmt.Fprintf(log, "%2d/%d ", round, o.rounds)
				}
				fmt.Fprintf(log, "%-8s %-11s ", w.id, f.name)
				begin := time.Now()
				res, err := runOne(ctx, f, w, o.settings)
				res.Round = round
				switch {
				case errors.Is(err, errUnavailable):
					fmt.Fprintf(log, "skipped: %v\n", err)
					continue
				case err != nil:
					res.Error = err.Error()
					failed = append(failed, fmt.Sprintf("%s/%s (round %d)", w.id, f.name, round))
					fmt.Fprintf(log, "failed: %v\n", err)
				default:
					fmt.Fprintf(log, "%12.0f deliveries/s  p50 %8.1f µs  p99 %8.1f µs  lost %d  (%.1fs)\n",
						res.DeliveriesPS, res.P50us, res.P99us, res.Lost, time.Since(begin).Seconds())
				}
				results = append(results, res)
			}
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	}
	return results, nil
}

// summarize reduces the runs of each workload and system to one result:
// the medians of the rates and latencies, the totals of the counts, the
// range of deliveries/s, and the first error. Rows keep the order of the
// workloads and systems options, not of the runs.
func summarize(runs []result, o options) []result {
	var out []result
	for _, w := range o.workloads {
		for _, f := range allSystems {
			if !slices.Contains(o.systems, f.name) {
				continue
			}
			var group []result
			for _, r := range runs {
				if r.Workload == w && r.System == f.name {
					group = append(group, r)
				}
			}
			if len(group) > 0 {
				out = append(out, summarizeGroup(group))
			}
		}
	}
	return out
}

func summarizeGroup(group []result) result {
	s := result{Workload: group[0].Workload, System: group[0].System, Rounds: len(group)}
	var ok []result
	for _, r := range group {
		s.Published += r.Published
		s.Expected += r.Expected
		s.Delivered += r.Delivered
		s.Lost += r.Lost
		s.Stalled = s.Stalled || r.Stalled
		s.ElapsedS += r.ElapsedS
		if r.Error != "" {
			if s.Error == "" {
				s.Error = r.Error
			}
			continue
		}
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		return s
	}
	median := func(get func(result) float64) float64 {
		v := make([]float64, len(ok))
		for i, r := range ok {
			v[i] = get(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	s.DeliveriesPS = median(func(r result) float64 { return r.DeliveriesPS })
	s.MessagesPS = median(func(r result) float64 { return r.MessagesPS })
	s.P50us = median(func(r result) float64 { return r.P50us })
	s.P99us = median(func(r result) float64 { return r.P99us })
	s.MaxUs = median(func(r result) float64 { return r.MaxUs })
	s.MinDPS, s.MaxDPS = math.Inf(1), math.Inf(-1)
	for _, r := range ok {
		s.MinDPS = min(s.MinDPS, r.DeliveriesPS)
		s.MaxDPS = max(s.MaxDPS, r.DeliveriesPS)
	}
	return s
}

func runOne(ctx context.Context, f factory, w workload, st settings) (result, error) {
	sctx, cancel := context.WithTimeout(ctx, st.setup)
	sys, err := f.start(sctx, w.nodes)
	cancel()
	if err != nil {
		return result{Workload: w.id, System: f.name}, err
	}
	defer runtime.GC() // start the next run with a clean heap
	defer sys.Close()
	return w.run(ctx, sys, st)
}

// table formats results as a Markdown table with each system's ratio to
// ringcast in the same workload: deliveries/s over ringcast's (higher is
// better for the peer) and p99 over ringcast's (lower is better). With
// several rounds, figures are medians and range is the lowest and highest
// deliveries/s of the rounds.
func table(results []result) string {
	base := map[string]result{}
	for _, r := range results {
		if r.System == "ringcast" && r.Error == "" {
			base[r.Workload] = r
		}
	}
	var sb strings.Builder
	sb.WriteString("| workload | system | deliveries/s | range | vs ringcast | p50 µs | p99 µs | p99 vs ringcast | lost | note |\n")
	sb.WriteString("|---|---|---:|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		note := ""
		switch {
		case r.Error != "":
			note = "error: " + r.Error
		case r.Stalled:
			note = "stalled"
		}
		ratio, p99ratio := "", ""
		if b, ok := base[r.Workload]; ok && r.Error == "" {
			ratio = fmt.Sprintf("%.2fx", r.DeliveriesPS/b.DeliveriesPS)
			p99ratio = fmt.Sprintf("%.2fx", r.P99us/b.P99us)
		}
		spread := ""
		if r.Rounds > 1 && r.Error == "" {
			spread = formatRate(r.MinDPS) + "–" + formatRate(r.MaxDPS)
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n",
			r.Workload, r.System, formatRate(r.DeliveriesPS), spread, ratio, formatMicros(r.P50us), formatMicros(r.P99us), p99ratio, r.Lost, note)
	}
	return sb.String()
}

func formatRate(v float64) string {
	switch {
	case v == 0 || math.IsNaN(v):
		return "-"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func formatMicros(v float64) string {
	if math.IsNaN(v) || v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// writeResults writes results.csv and results.json into dir.
// writeResults writes the summary (results.csv, which chart.sh reads, and
// results.json) and every run (runs.json) to dir.
func writeResults(dir string, results, runs []result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, v := range map[string][]result{"results.json": results, "runs.json": runs} {
		js, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), append(js, '\n'), 0o644); err != nil {
			return err
		}
	}
	f, err := os.Create(filepath.Join(dir, "results.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"workload", "system", "deliveries_per_s", "messages_per_s", "p50_us", "p99_us", "max_us",
		"published", "expected", "delivered", "lost", "stalled", "elapsed_s", "error"})
	num := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	for _, r := range results {
		_ = w.Write([]string{r.Workload, r.System, num(r.DeliveriesPS), num(r.MessagesPS), num(r.P50us), num(r.P99us), num(r.MaxUs),
			strconv.FormatInt(r.Published, 10), strconv.FormatInt(r.Expected, 10), strconv.FormatInt(r.Delivered, 10),
			strconv.FormatInt(r.Lost, 10), strconv.FormatBool(r.Stalled), num(r.ElapsedS), r.Error})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
