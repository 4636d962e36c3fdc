package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killToPublish kills the owner of a topic with SIGKILL in a cluster of
// three topic servers and a gateway started with --failure-detection mode,
// and returns the time from the kill until a publish to the topic through
// the gateway is acknowledged again.
func killToPublish(t *testing.T, mode string) time.Duration {
	c := startCluster(t, 1, 3, "--failure-detection", mode)
	gw := c.gateways[0].addr("listen")
	const topic = "rooms:detect"
	if status, _, err := publishN(gw, topic, "owner", 0, testTimeout); err != nil {
		t.Fatalf("first publish: %d %v", status, err)
	}
	var st topicState
	getJSON(t, "http://"+gw+"/api/topics/"+topic, &st)
	var owner *proc
	for _, p := range c.topics {
		if p.nodeName() == st.Owner {
			owner = p
		}
	}
	if owner == nil {
		t.Fatalf("%s is owned by %q, not by a topic server", topic, st.Owner)
	}
	if err := owner.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for n := 1; ; n++ {
		if time.Since(killed) > 2*testTimeout {
			t.Fatalf("%s: no publish acknowledged %v after the owner was killed", mode, time.Since(killed))
		}
		if _, _, err := publishN(gw, topic, "owner", n, time.Second); err == nil {
			return time.Since(killed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKillToPublish measures, in both failure-detection modes, how long a
// topic refuses publishes after its owner is killed:
//
//	go test -count=1 -run 'TestKillToPublish' -v ./examples/cluster
func TestKillToPublish(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		bound time.Duration
	}{
		{"fast", 5 * time.Second},
		{"lan", 30 * time.Second},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			took := killToPublish(t, tc.mode)
			t.Logf("--failure-detection %s: kill to publish acknowledged again: %v", tc.mode, took.Round(10*time.Millisecond))
			if took > tc.bound {
				t.Errorf("took %v, want under %v", took, tc.bound)
			}
		})
	}
}

// soakDuration is how long TestLoadNoFalseFailover runs:
// RINGCAST_SOAK_DURATION, default 5 minutes.
func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("RINGCAST_SOAK_DURATION")
	if s == "" {
		return 5 * time.Minute
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("RINGCAST_SOAK_DURATION: %v", err)
	}
	return d
}

// burnCPU starts n busy-looping shell processes, stopped by PID when the
// test ends.
func burnCPU(t *testing.T, n int) {
	for range n {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting a CPU burner: %v", err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
}

// TestLoadNoFalseFailover runs a cluster of three topic servers and a
// gateway with --failure-detection fast while other processes keep every
// core saturated (7 busy loops per core), publishing all along, and
// requires that no member is ever declared failed. It takes 5 minutes and
// runs only with RINGCAST_SOAK=1:
//
//	RINGCAST_SOAK=1 go test -count=1 -run TestLoadNoFalseFailover -v -timeout 15m ./examples/cluster
func TestLoadNoFalseFailover(t *testing.T) {
	if os.Getenv("RINGCAST_SOAK") != "1" {
		t.Skip("a 5-minute load run: set RINGCAST_SOAK=1 to run it")
	}
	dur := soakDuration(t)
	c := startCluster(t, 1, 3, "--failure-detection", "fast")
	gw := c.gateways[0].addr("listen")
	burnCPU(t, 7*runtime.NumCPU())
	const topic = "rooms:soak"
	var (
		acked, failed int
		procs         = append(append([]*proc(nil), c.topics...), c.gateways...)
	)
	deadline := time.Now().Add(dur)
	for n := 1; time.Now().Before(deadline); n++ {
		if _, _, err := publishN(gw, topic, "replicated", n, 5*time.Second); err != nil {
			failed++
		} else {
			acked++
		}
		for _, p := range procs {
			if logs := p.logs(); strings.Contains(logs, `"msg":"member failed"`) {
				t.Fatalf("%s declared a live member failed under load:\n%s", p.label, grepLines(logs, "member failed", "Suspect", "Marking"))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	suspicions := 0
	for _, p := range procs {
		suspicions += strings.Count(p.logs(), "Suspect ")
	}
	t.Logf("%v under load (%d busy loops on %d cores): no member declared failed; %d publishes acknowledged, %d failed; %d suspicions raised and refuted",
		dur, 7*runtime.NumCPU(), runtime.NumCPU(), acked, failed, suspicions)
	if failed > 0 {
		t.Errorf("%d publishes failed under load", failed)
	}
}

// grepLines returns the lines of logs that contain one of words.
func grepLines(logs string, words ...string) string {
	var out []string
	for line := range strings.Lines(logs) {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, strings.TrimRight(line, "\n"))
				break
			}
		}
	}
	return fmt.Sprint(strings.Join(out, "\n"))
}
