package cluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// joinCommon are the flags of the joining tests' processes.
func joinCommon(extra ...string) []string {
	return append([]string{"--peer", "127.0.0.1:0", "--shutdown-timeout", shutdownTimeout.String(),
		"--failure-detection", "fast"}, extra...)
}

// seedAddr returns a gossip address on a loopback IP of its own
// (127.x.y.1:7946): a seed can be given to joiners before it runs, and
// restarted at the same address, without racing anything for the port.
func seedAddr() string {
	return fmt.Sprintf("127.%d.%d.1:7946", 20+rand.IntN(200), 1+rand.IntN(250))
}

// startTopicServer starts a topic server called name with --http on a port
// chosen by the system and the given flags.
func startTopicServer(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return start(t, name, topicBinary, nil, joinCommon(append([]string{"--name", name, "--http", "127.0.0.1:0"}, args...)...)...)
}

// memberNames returns the members the process serving HTTP at addr sees,
// or nil if it does not answer.
func memberNames(addr string) []string {
	status, body, err := httpDo("GET", "http://"+addr+"/api/cluster", "")
	if err != nil || status != 200 {
		return nil
	}
	var names []string
	for _, part := range strings.Split(body, `"name":"`)[1:] {
		names = append(names, part[:strings.IndexByte(part, '"')])
	}
	return names
}

// waitMembers waits until every process sees exactly n members, and
// returns how long that took.
func waitMembers(t testing.TB, timeout time.Duration, n int, procs ...*proc) time.Duration {
	t.Helper()
	start := time.Now()
	for _, p := range procs {
		addr := p.addr("http")
		waitFor(t, timeout-time.Since(start), fmt.Sprintf("%s to see %d members", p.label, n), func() bool {
			return len(memberNames(addr)) == n
		})
	}
	return time.Since(start)
}

// stopInTurn stops the processes by PID, the last one first, each once the
// previous one has exited, so that each trial ends as it started: alone.
// (Stopping them together works too: see TestStopTogether.)
func stopInTurn(procs ...*proc) {
	for _, p := range slices.Backward(procs) {
		p.stop()
	}
}

// TestSimultaneousStart starts a topic server and two topic servers that
// --join it at the same instant, ten times: every trial forms one cluster
// of three, whichever process comes up first.
func TestSimultaneousStart(t *testing.T) {
	binary(t, topicBinary) // build before timing anything
	const trials = 10
	for i := range trials {
		seed := seedAddr()
		procs := make([]*proc, 3)
		var wg sync.WaitGroup
		for j := range procs {
			wg.Go(func() {
				name := fmt.Sprintf("t%d-node-%d", i, j)
				if j == 0 {
					procs[j] = startTopicServer(t, name, "--gossip", seed)
				} else {
					procs[j] = startTopicServer(t, name, "--gossip", "127.0.0.1:0", "--join", seed)
				}
			})
		}
		wg.Wait()
		took := waitMembers(t, testTimeout, 3, procs...)
		t.Logf("trial %d: one cluster of 3 in %v", i+1, took.Round(time.Millisecond))
		stopInTurn(procs...)
		for _, p := range procs {
			if code, _ := p.waitExit(testTimeout); code != 0 {
				t.Fatalf("trial %d: %s exited with %d:\n%s", i+1, p.label, code, p.logs())
			}
		}
	}
}

// TestLateSeed starts two joiners 2 s before their seed: they keep running,
// retrying, and join it once it is up.
func TestLateSeed(t *testing.T) {
	binary(t, topicBinary)
	seed := seedAddr()
	a := startTopicServer(t, "joiner-a", "--gossip", "127.0.0.1:0", "--join", seed)
	b := startTopicServer(t, "joiner-b", "--gossip", "127.0.0.1:0", "--join", seed)
	a.waitReady()
	b.waitReady()
	time.Sleep(2 * time.Second) // the seed is late on purpose
	for _, p := range []*proc{a, b} {
		select {
		case <-p.exited:
			t.Fatalf("%s exited while its seed was down:\n%s", p.label, p.logs())
		default:
		}
		if !strings.Contains(p.logs(), "joining the cluster failed; retrying") {
			t.Fatalf("%s logged no failed join attempt:\n%s", p.label, p.logs())
		}
	}
	s := startTopicServer(t, "seed", "--gossip", seed)
	took := waitMembers(t, testTimeout, 3, s, a, b)
	t.Logf("joined the late seed %v after it started", took.Round(time.Millisecond))
	for _, p := range []*proc{a, b} {
		if !strings.Contains(p.logs(), `"joined the cluster"`) {
			t.Errorf("%s did not log that it joined:\n%s", p.label, p.logs())
		}
	}
}

// TestSeedRestart kills the seed with SIGKILL and starts it again with its
// original flags (no --join): the others rejoin it and the three agree on
// the owner of a topic.
func TestSeedRestart(t *testing.T) {
	binary(t, topicBinary)
	seed := seedAddr()
	seedArgs := []string{"--gossip", seed}
	s := startTopicServer(t, "seed", seedArgs...)
	a := startTopicServer(t, "member-a", "--gossip", "127.0.0.1:0", "--join", seed)
	b := startTopicServer(t, "member-b", "--gossip", "127.0.0.1:0", "--join", seed)
	waitMembers(t, testTimeout, 3, s, a, b)
	const topic = "rooms:restart"

	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	s.waitExit(testTimeout)
	waitMembers(t, testTimeout, 2, a, b)
	restarted := startTopicServer(t, "seed", seedArgs...)
	restarted.waitReady()
	took := waitMembers(t, testTimeout, 3, restarted, a, b)
	t.Logf("the restarted seed and the others formed one cluster %v after it was ready", took.Round(time.Millisecond))

	waitFor(t, testTimeout, "every node to name the same owner of "+topic, func() bool {
		owners := make(map[string]bool)
		for _, p := range []*proc{restarted, a, b} {
			status, body, err := httpDo("GET", "http://"+p.addr("http")+"/api/topics/"+topic, "")
			if err != nil || status != 200 {
				return false
			}
			i := strings.Index(body, `"owner":"`)
			if i < 0 {
				return false
			}
			rest := body[i+len(`"owner":"`):]
			owners[rest[:strings.IndexByte(rest, '"')]] = true
		}
		return len(owners) == 1
	})
}

// TestStopTogether stops a whole cluster at once, as docker compose down or
// a systemd target does: every member hands off what it can, leaves, and
// exits 0 well within its shutdown timeout, although nobody stays to
// confirm the last leaves.
func TestStopTogether(t *testing.T) {
	binary(t, topicBinary)
	for trial := range 3 {
		seed := seedAddr()
		procs := []*proc{startTopicServer(t, fmt.Sprintf("t%d-seed", trial), "--gossip", seed)}
		for j := range 2 {
			procs = append(procs, startTopicServer(t, fmt.Sprintf("t%d-node-%d", trial, j), "--gossip", "127.0.0.1:0", "--join", seed))
		}
		waitMembers(t, testTimeout, 3, procs...)
		start := time.Now()
		for _, p := range procs {
			p.signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			code, at := p.waitExit(shutdownTimeout + 5*time.Second)
			if code != 0 {
				t.Fatalf("trial %d: %s exited with %d:\n%s", trial+1, p.label, code, p.logs())
			}
			if took := at.Sub(start); took > shutdownTimeout/2+time.Second {
				t.Errorf("trial %d: %s took %v to stop", trial+1, p.label, took)
			}
		}
		t.Logf("trial %d: 3 members stopped together, all exited 0 within %v", trial+1, time.Since(start).Round(time.Millisecond))
	}
}
