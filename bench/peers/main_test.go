package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quick are settings for tests: short runs, tight deadlines.
var quick = settings{
	duration: 200 * time.Millisecond,
	warmup:   50 * time.Millisecond,
	drain:    10 * time.Second,
	stall:    5 * time.Second,
	setup:    30 * time.Second,
}

// needRedis skips t when redis-server is missing, unless CI is set: there
// the Redis comparison is required and its absence is a failure.
func needRedis(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but redis-server is not installed: %v", err)
		}
		t.Skip("redis-server not installed (apt-get install redis-server); skipping the Redis comparison")
	}
}

func findWorkload(t *testing.T, id string) workload {
	t.Helper()
	for _, w := range workloads() {
		if w.id == id {
			return w
		}
	}
	t.Fatalf("no workload %q", id)
	return workload{}
}

// TestSystems runs a fan-out and a paced workload against every system and
// checks that every delivery arrived and was timed.
func TestSystems(t *testing.T) {
	for _, f := range allSystems {
		t.Run(f.name, func(t *testing.T) {
			if strings.HasPrefix(f.name, "redis") {
				needRedis(t)
			}
			for _, id := range []string{"W1-1", "W2-max", "W2-2000"} {
				w := findWorkload(t, id)
				res, err := runOne(context.Background(), f, w, quick)
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				if res.Published == 0 || res.Delivered != res.Expected || res.Lost != 0 || res.Stalled {
					t.Fatalf("%s: published %d, delivered %d of %d, lost %d, stalled %v",
						id, res.Published, res.Delivered, res.Expected, res.Lost, res.Stalled)
				}
				if res.DeliveriesPS <= 0 || res.P50us <= 0 || res.P99us < res.P50us {
					t.Fatalf("%s: implausible result %+v", id, res)
				}
				if id == "W2-2000" && res.MessagesPS > pacedRate*1.2 {
					t.Fatalf("%s: %.0f messages/s, paced at %d", id, res.MessagesPS, pacedRate)
				}
			}
		})
	}
}

// TestRedisStartStop checks that the Redis server this program starts is
// gone, socket directory included, once stopped.
func TestRedisStartStop(t *testing.T) {
	needRedis(t)
	p, err := startRedisProcess(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pid := p.cmd.Process.Pid
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still exists: %v", p.dir, err)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
		t.Fatalf("redis-server %d still running", pid)
	}
}

// TestRunWritesResults runs the command end to end on one workload and
// checks the table and the CSV it writes.
func TestRunWritesResults(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"-systems", "ringcast,nats", "-workloads", "W1-1", "-duration", "100ms", "-warmup", "0s", "-out", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "| W1-1 | ringcast |") || !strings.Contains(out.String(), "| W1-1 | nats |") {
		t.Fatalf("table lacks a row:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "1.00x") {
		t.Fatalf("ringcast's own ratio is not 1.00x:\n%s", out.String())
	}
	f, err := os.Open(filepath.Join(dir, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0][0] != "workload" || rows[1][1] != "ringcast" || rows[2][1] != "nats" {
		t.Fatalf("results.csv: %q", rows)
	}
	if _, err := os.Stat(filepath.Join(dir, "results.json")); err != nil {
		t.Fatal(err)
	}
}

// TestRounds runs two rounds and checks the medians and the runs kept.
func TestRounds(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"-systems", "ringcast,ringcast-r1", "-workloads", "W1-1", "-rounds", "2", "-duration", "100ms", "-warmup", "0s", "-out", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var runs, summary []result
	for name, v := range map[string]*[]result{"runs.json": &runs, "results.json": &summary} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if len(runs) != 4 || len(summary) != 2 {
		t.Fatalf("%d runs and %d summary rows, want 4 and 2", len(runs), len(summary))
	}
	// Round 2 starts with the second system.
	if runs[0].System != "ringcast" || runs[2].System != "ringcast-r1" || runs[2].Round != 2 {
		t.Fatalf("run order: %+v", runs)
	}
	for _, s := range summary {
		var mine []float64
		for _, r := range runs {
			if r.System == s.System {
				mine = append(mine, r.DeliveriesPS)
			}
		}
		if s.Rounds != 2 || s.MinDPS != min(mine[0], mine[1]) || s.MaxDPS != max(mine[0], mine[1]) ||
			s.DeliveriesPS != (mine[0]+mine[1])/2 {
			t.Fatalf("%s: summary %+v of %v", s.System, s, mine)
		}
	}
	if !strings.Contains(out.String(), "–") {
		t.Fatalf("table lacks the range:\n%s", out.String())
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-systems", "kafka"},
		{"-workloads", "W9"},
		{"-duration", "0s"},
		{"-rounds", "0"},
		{"extra"},
	} {
		var errOut bytes.Buffer
		if code := run(args, &bytes.Buffer{}, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
}
