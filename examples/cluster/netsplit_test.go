package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

const (
	splitTopic = "topics:split"
	// healBound is how long after the link comes back every node must see
	// every member again and a publish on one side must reach a subscriber
	// on the other.
	healBound = 30 * time.Second
	// splitHoldDefault is how long the link stays cut once each side sees
	// only itself; RINGCAST_NETSPLIT_HOLD (a duration) overrides it.
	splitHoldDefault = 5 * time.Second
)

// splitNode is one process of the netsplit test and the host name its HTTP
// address is reached by.
type splitNode struct {
	name string
	side int
	host string
	p    *proc
}

// TestNetsplitHeals runs a topic server and a gateway in each of two network
// namespaces, cuts the link between them, and requires the cluster to fall
// into two sides and then, once the link is back, to merge into one within
// healBound, with a publish on one side reaching a subscriber on the other.
// The subscriber never sees a message of an older epoch after one of a
// newer epoch. It reports the heal time.
func TestNetsplitHeals(t *testing.T) {
	hold := splitHoldDefault
	if v := os.Getenv("RINGCAST_NETSPLIT_HOLD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RINGCAST_NETSPLIT_HOLD=%q: %v", v, err)
		}
		hold = d
	}
	pair := newNetnsPair(t)
	nodes := startSplitCluster(t, pair)
	client := pair.client()
	all := []string{"gateway-a", "gateway-b", "topic-a", "topic-b"}
	waitSplitMembers(t, client, nodes, testTimeout, func(splitNode) []string { return all })

	sub := subscribeSplit(t, pair, "gateway-b")
	waitFor(t, testTimeout, "a publish on side a to reach the subscriber on side b", func() bool {
		_ = splitPublish(client, "gateway-a", -1)
		return sub.sawN(-1)
	})

	pair.setLink(false)
	cut := time.Now()
	waitSplitMembers(t, client, nodes, testTimeout, func(n splitNode) []string {
		return []string{"gateway-" + "ab"[n.side:n.side+1], "topic-" + "ab"[n.side:n.side+1]}
	})
	t.Logf("each side sees only itself %v after the cut", time.Since(cut).Round(time.Millisecond))
	// Both sides take publishes while split: each may own the topic.
	for i := range 10 {
		_ = splitPublish(client, "gateway-a", 1000+i)
		_ = splitPublish(client, "gateway-b", 2000+i)
	}
	time.Sleep(hold) // the split itself: how long it lasts is the scenario

	pair.setLink(true)
	restored := time.Now()
	membersHealed := waitSplitMembers(t, client, nodes, healBound, func(splitNode) []string { return all })
	n := 10000
	waitFor(t, healBound-time.Since(restored), "a publish on side a to reach the subscriber on side b after the heal", func() bool {
		n++
		_ = splitPublish(client, "gateway-a", n)
		return sub.sawAtLeast(10001)
	})
	delivered := time.Since(restored)
	t.Logf("heal: every node sees all 4 members %v after the link came back; a publish on side a reaches side b after %v (split held %v)",
		membersHealed.Round(time.Millisecond), delivered.Round(time.Millisecond), hold)
	sub.checkOrder(t)
}

// startSplitCluster starts a topic server and a gateway in each namespace,
// all joined to the topic server of side a, and proxies for their HTTP
// addresses.
func startSplitCluster(t *testing.T, pair *netnsPair) []splitNode {
	seed := pair.addr[0] + ":7946"
	// The namespaces talk over non-loopback addresses: without a shared
	// secret, protected mode would keep each node to itself.
	fast := []string{"--failure-detection", "fast", "--shutdown-timeout", shutdownTimeout.String(), "--secret", "netsplit-test-secret-0123456789"}
	var nodes []splitNode
	for side := range 2 {
		ip, s := pair.addr[side], "ab"[side:side+1]
		// The test reaches the servers under the proxies' host names.
		topicArgs := append([]string{"--name", "topic-" + s, "--gossip", ip + ":7946", "--peer", ip + ":7956", "--http", ip + ":4100", "--allowed-hosts", "topic-" + s}, fast...)
		if side == 1 {
			topicArgs = append(topicArgs, "--join", seed)
		}
		topic := startIn(t, pair.ns[side], "topic-"+s, topicBinary, topicArgs...)
		topic.waitReady()
		gwArgs := append([]string{"--name", "gateway-" + s, "--gossip", ip + ":7947", "--peer", ip + ":7957", "--listen", ip + ":4000", "--allowed-hosts", "gateway-" + s, "--roles", "gateway", "--join", seed}, fast...)
		gw := startIn(t, pair.ns[side], "gateway-"+s, wsBinary, gwArgs...)
		gw.waitReady()
		pair.startProxy(side, map[string]string{"topic-" + s: ip + ":4100", "gateway-" + s: ip + ":4000"})
		nodes = append(nodes,
			splitNode{name: "topic-" + s, side: side, host: "topic-" + s, p: topic},
			splitNode{name: "gateway-" + s, side: side, host: "gateway-" + s, p: gw})
	}
	return nodes
}

// waitSplitMembers waits until every node sees exactly the members want
// gives for it, and returns how long that took.
func waitSplitMembers(t *testing.T, client *http.Client, nodes []splitNode, timeout time.Duration, want func(splitNode) []string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok := true
		views := make([]string, 0, len(nodes))
		for _, n := range nodes {
			got := splitMembers(client, n.host)
			views = append(views, fmt.Sprintf("%s sees %v, want %v", n.name, got, want(n)))
			ok = ok && slices.Equal(got, want(n))
		}
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("after %v:\n%s", timeout, strings.Join(views, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// splitMembers returns the sorted member names a node sees, or nil.
func splitMembers(client *http.Client, host string) []string {
	resp, err := client.Get("http://" + host + "/api/cluster")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var info clusterInfo
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&info) != nil {
		return nil
	}
	var names []string
	for _, m := range info.Members {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return names
}

// splitPublish publishes {"n": n} to the test's topic through a gateway.
func splitPublish(client *http.Client, host string, n int) error {
	resp, err := client.Post("http://"+host+"/api/publish?topic="+splitTopic, "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, n)))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publish: status %d", resp.StatusCode)
	}
	return nil
}

// splitSubscriber is a Phoenix client joined to the test's topic with
// {"meta": true}. Like phoenix.js, it joins again when the gateway ends its
// join with phx_error or phx_close.
type splitSubscriber struct {
	ws *cws.Conn

	wmu sync.Mutex // serializes writes
	ref int

	mu         sync.Mutex
	deliveries []delivery
	maxEpoch   uint64
	stale      []string // deliveries of an older epoch after a newer one
}

// subscribeSplit connects to a gateway through its proxy and joins the
// test's topic; the connection is closed when the test ends.
func subscribeSplit(t *testing.T, pair *netnsPair, host string) *splitSubscriber {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	hc := pair.client()
	hc.Timeout = 0 // the WebSocket outlives the handshake
	ws, resp, err := cws.Dial(ctx, "ws://"+host+"/socket/websocket?vsn=2.0.0", &cws.DialOptions{HTTPClient: hc})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v", host, err)
	}
	s := &splitSubscriber{ws: ws}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.readLoop(done) })
	wg.Go(func() { s.heartbeat(done) })
	t.Cleanup(func() {
		close(done)
		_ = ws.CloseNow()
		wg.Wait()
	})
	if err := s.join(); err != nil {
		t.Fatalf("join: %v", err)
	}
	return s
}

func (s *splitSubscriber) write(msg string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.ws.Write(ctx, cws.MessageText, []byte(msg))
}

func (s *splitSubscriber) join() error {
	s.wmu.Lock()
	s.ref++
	ref := s.ref
	s.wmu.Unlock()
	return s.write(fmt.Sprintf(`["%d","%d","%s","phx_join",{"meta":true}]`, ref, ref, splitTopic))
}

// heartbeat keeps the connection from the gateway's idle timeout.
func (s *splitSubscriber) heartbeat(done <-chan struct{}) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			_ = s.write(`[null,"hb","phoenix","heartbeat",{}]`)
		}
	}
}

// readLoop records deliveries and rejoins after phx_error and phx_close.
func (s *splitSubscriber) readLoop(done <-chan struct{}) {
	for {
		_, data, err := s.ws.Read(context.Background())
		if err != nil {
			return
		}
		msg := string(data)
		if d, err := parseDelivery(msg, splitTopic); err == nil {
			s.mu.Lock()
			if d.epoch < s.maxEpoch {
				s.stale = append(s.stale, fmt.Sprintf("%s after epoch %d", msg, s.maxEpoch))
			}
			s.maxEpoch = max(s.maxEpoch, d.epoch)
			s.deliveries = append(s.deliveries, d)
			s.mu.Unlock()
			continue
		}
		if strings.Contains(msg, `"`+splitTopic+`","phx_error"`) || strings.Contains(msg, `"`+splitTopic+`","phx_close"`) {
			select {
			case <-done:
				return
			default:
			}
			_ = s.join()
		}
	}
}

// sawN reports whether a delivery of {"n": n} arrived.
func (s *splitSubscriber) sawN(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.deliveries, func(d delivery) bool { return d.n == n })
}

// sawAtLeast reports whether a delivery of {"n": N} with N >= n arrived.
func (s *splitSubscriber) sawAtLeast(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.deliveries, func(d delivery) bool { return d.n >= n })
}

// checkOrder fails the test if a delivery of an older epoch followed one of
// a newer epoch.
func (s *splitSubscriber) checkOrder(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.stale) > 0 {
		t.Errorf("the subscriber received %d messages of an older epoch after one of a newer epoch:\n%s",
			len(s.stale), strings.Join(s.stale, "\n"))
	}
}
