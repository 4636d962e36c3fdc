package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
)

// readAll reads c's messages until ctx ends, handing each event's payload
// field n to got.
func (c *wsClient) readAll(ctx context.Context, got func(n int)) {
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return
		}
		var msg []json.RawMessage
		if json.Unmarshal(data, &msg) != nil || len(msg) != 5 || string(msg[3]) != `"event"` {
			continue
		}
		var body struct{ N int }
		if json.Unmarshal(msg[4], &body) == nil {
			got(body.N)
		}
	}
}

// Clients that join with {"queue":"workers"} on two gateways each receive
// a share of the topic's messages, every message reaching exactly one of
// them, while a plain client on the same topic receives every message.
func TestQueueJoinAcrossGateways(t *testing.T) {
	owner := startNode(t, "topics", "", pubsub.RoleTopics)
	g1 := startNode(t, "gateway-1", owner.GossipAddr(), pubsub.RoleGateway)
	g2 := startNode(t, "gateway-2", owner.GossipAddr(), pubsub.RoleGateway)
	waitMembers(t, owner, g1, g2)
	_, url1 := serveGateway(t, g1)
	_, url2 := serveGateway(t, g2)

	const (
		topic     = "jobs:render"
		queueJoin = `["1","1","jobs:render","phx_join",{"queue":"workers"}]`
		joined    = `["1","1","jobs:render","phx_reply",{"status":"ok","response":{}}]`
		total     = 60
	)
	workers := []*wsClient{dial(t, url1), dial(t, url1), dial(t, url2)}
	for _, w := range workers {
		w.send(queueJoin)
		w.expect(joined)
	}
	plain := dial(t, url2)
	plain.send(`["1","1","jobs:render","phx_join",{}]`)
	plain.expect(joined)

	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu     sync.Mutex
		byN    = make(map[int][]int) // n -> workers that got it
		shares = make([]int, len(workers))
		all    = make(map[int]int)
		wg     sync.WaitGroup
	)
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.readAll(ctx, func(n int) {
				mu.Lock()
				byN[n] = append(byN[n], i)
				shares[i]++
				mu.Unlock()
			})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		plain.readAll(ctx, func(n int) {
			mu.Lock()
			all[n]++
			mu.Unlock()
		})
	}()
	for n := range total {
		data := gateway.EncodeEnvelope("event", fmt.Appendf(nil, `{"n":%d}`, n), false)
		if _, err := owner.Publish(ctxT(t), topic, data); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	waitFor(t, 10*time.Second, "every message to reach the workers and the plain client", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(byN) == total && len(all) == total
	})
	cancel()
	wg.Wait()
	for n, who := range byN {
		if len(who) != 1 {
			t.Errorf("message %d reached workers %v", n, who)
		}
	}
	for n, k := range all {
		if k != 1 {
			t.Errorf("the plain client got message %d %d times", n, k)
		}
	}
	// The owner takes the two gateway nodes in turn, gateway-1 its two
	// members in turn: 15, 15, 30.
	for i, want := range []int{total / 4, total / 4, total / 2} {
		if d := shares[i] - want; d < -2 || d > 2 {
			t.Errorf("worker %d got %d messages, want about %d (shares %v)", i, shares[i], want, shares)
		}
	}
}

// A join with a bad queue group, or one that asks to resume, is refused
// with a reason; the client stays connected.
func TestQueueJoinRefused(t *testing.T) {
	n := startNode(t, "solo", "", pubsub.RoleTopics, pubsub.RoleGateway)
	_, url := serveGateway(t, n)
	c := dial(t, url)
	for _, tc := range []struct{ payload, reason string }{
		{`{"queue":""}`, "queue must be a group name of 1 to 255 bytes of UTF-8 without control characters"},
		{`{"queue":7}`, "queue must be a group name of 1 to 255 bytes of UTF-8 without control characters"},
		{`{"queue":"a\nb"}`, "queue must be a group name of 1 to 255 bytes of UTF-8 without control characters"},
		{`{"queue":"w","since":3}`, "a queue member cannot resume with since"},
	} {
		c.send(`["1","2","jobs:x","phx_join",` + tc.payload + `]`)
		c.expect(`["1","2","jobs:x","phx_reply",{"status":"error","response":{"reason":"` + tc.reason + `"}}]`)
	}
	c.send(`["1","3","jobs:x","phx_join",{"queue":"w"}]`)
	c.expect(`["1","3","jobs:x","phx_reply",{"status":"ok","response":{}}]`)
}
