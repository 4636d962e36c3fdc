package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestProtectedModeAcrossHosts runs two topic servers with default flags
// (no secret) in two network namespaces, the second joining the first over
// real non-loopback addresses: protected mode keeps them apart, each says
// so in its logs, and neither ever lists the other.
func TestProtectedModeAcrossHosts(t *testing.T) {
	pair := newNetnsPair(t)
	var procs [2]*proc
	for side := range 2 {
		ip, s := pair.addr[side], "ab"[side:side+1]
		args := []string{"--name", "topic-" + s, "--gossip", ip + ":7946", "--peer", ip + ":7956", "--http", ip + ":4100", "--allowed-hosts", "topic-" + s,
			"--failure-detection", "fast", "--shutdown-timeout", shutdownTimeout.String()}
		if side == 1 {
			args = append(args, "--join", pair.addr[0]+":7946")
		}
		procs[side] = startIn(t, pair.ns[side], "topic-"+s, topicBinary, args...)
		procs[side].waitReady()
		pair.startProxy(side, map[string]string{"topic-" + s: ip + ":4100"})
	}
	for _, p := range procs {
		if !strings.Contains(p.logs(), "ring: protected mode: gossip is bound to a non-loopback address") ||
			!strings.Contains(p.logs(), "transport: protected mode: listening on a non-loopback address") {
			t.Fatalf("%s did not warn at start that it is in protected mode", p.label)
		}
	}
	waitFor(t, testTimeout, "topic-a to drop topic-b's gossip", func() bool {
		return strings.Contains(procs[0].logs(), "ring: protected mode: dropped gossip")
	})
	client := pair.client()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, host := range []string{"topic-a", "topic-b"} {
			if got := splitMembers(client, host); len(got) > 0 && !slices.Equal(got, []string{host}) {
				t.Fatalf("%s sees %v in protected mode", host, got)
			}
		}
	}
	if got := splitMembers(client, "topic-a"); !slices.Equal(got, []string{"topic-a"}) {
		t.Fatalf("topic-a sees %v", got)
	}
}
