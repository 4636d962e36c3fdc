package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

// waiting returns the joins waiting for topic's Subscribe.
func (hb *hub) waiting(topic string) int {
	s := hb.shard(topic)
	s.RLock()
	defer s.RUnlock()
	if t := s.Items[topic]; t != nil {
		return t.waiters
	}
	return 0
}

func TestOneSubscriptionPerTopic(t *testing.T) {
	b := newCountingBroker()
	g := newGateway(t, b, nil)
	clients := make([]*client, 5)
	for i := range clients {
		clients[i] = g.dial()
		clients[i].join(strconv.Itoa(i+1), "t:shared")
	}
	if subs, _ := b.counts("t:shared"); subs != 1 {
		t.Fatalf("%d subscriptions for 5 joins", subs)
	}
	if got := g.h.Stats().Topics; got != 1 {
		t.Fatalf("Topics = %d", got)
	}
	publishJSON(t, b, "t:shared", "e", `{}`)
	for i, c := range clients {
		c.expect(`["` + strconv.Itoa(i+1) + `",null,"t:shared","e",{}]`)
	}
	// Only the last leave unsubscribes; a closed connection leaves too.
	for i, c := range clients[:4] {
		jr := strconv.Itoa(i + 1)
		if i == 3 {
			_ = c.ws.Close(cws.StatusNormalClosure, "")
			waitFor(t, testTimeout, "the connection to end", func() bool { return g.h.Stats().Connections == 4 })
			continue
		}
		c.send(`["` + jr + `","9","t:shared","phx_leave",{}]`)
		c.expect(okReply(jr, "9", "t:shared"))
		c.expect(`["` + jr + `","` + jr + `","t:shared","phx_close",{}]`)
	}
	if _, unsubs := b.counts("t:shared"); unsubs != 0 {
		t.Fatalf("unsubscribed with a member left")
	}
	_ = clients[4].ws.Close(cws.StatusNormalClosure, "")
	waitFor(t, testTimeout, "the last member's connection to unsubscribe", func() bool {
		_, unsubs := b.counts("t:shared")
		return unsubs == 1 && g.h.Stats().Topics == 0
	})
}

func TestConcurrentFirstJoinsShareSubscribe(t *testing.T) {
	b := newCountingBroker()
	b.gate = make(chan struct{})
	g := newGateway(t, b, nil)
	a, c := g.dial(), g.dial()
	a.send(`["1","1","t:race","phx_join",{}]`)
	waitFor(t, testTimeout, "the first Subscribe", func() bool {
		subs, _ := b.counts("t:race")
		return subs == 1
	})
	c.send(`["2","2","t:race","phx_join",{}]`)
	waitFor(t, testTimeout, "both joins to wait for it", func() bool { return g.h.hub.waiting("t:race") == 2 })
	// Heartbeats are answered while a join waits for the cluster.
	a.send(`[null,"hb","phoenix","heartbeat",{}]`)
	a.expect(okReply("", "hb", "phoenix"))
	close(b.gate)
	a.expect(okReply("1", "1", "t:race"))
	c.expect(okReply("2", "2", "t:race"))
	if subs, _ := b.counts("t:race"); subs != 1 {
		t.Fatalf("%d subscriptions, want 1 shared", subs)
	}
	publishJSON(t, b, "t:race", "e", `{}`)
	a.expect(`["1",null,"t:race","e",{}]`)
	c.expect(`["2",null,"t:race","e",{}]`)
}

func TestJoinTimeout(t *testing.T) {
	b := newCountingBroker()
	b.gate = make(chan struct{})
	g := newGateway(t, b, &Options{JoinTimeout: 100 * time.Millisecond})
	c := g.dial()
	c.send(`["1","1","t:slowjoin","phx_join",{}]`)
	c.expect(errReply("1", "1", "t:slowjoin", "join timeout"))
	if s := g.h.Stats(); s.Topics != 0 || s.SubscribeErrors != 1 {
		t.Fatalf("after a join timeout: %+v", s)
	}
	close(b.gate)
	c.join("2", "t:slowjoin")
}

func TestSubscribeFailure(t *testing.T) {
	b := newCountingBroker()
	b.subscribeErr = errors.New("owner unreachable")
	g := newGateway(t, b, nil)
	c := g.dial()
	c.send(`["1","1","t:fail","phx_join",{}]`)
	c.expect(errReply("1", "1", "t:fail", "subscribe failed"))
	c.send(`["1","2","t:fail","publish",["e",{}]]`)
	c.expect(errReply("1", "2", "t:fail", "unmatched topic"))
	b.mu.Lock()
	b.subscribeErr = nil
	b.mu.Unlock()
	c.join("3", "t:fail")
	if s := g.h.Stats(); s.Topics != 1 || s.SubscribeErrors != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBrokerEndsSubscription(t *testing.T) {
	b := newCountingBroker()
	g := newGateway(t, b, nil)
	a, c := g.dial(), g.dial()
	a.join("1", "t:end")
	c.join("5", "t:end")
	c.join("6", "t:other")

	b.CloseTopic("t:end", errors.New("owner left"))
	a.expect(`["1","1","t:end","phx_error",{}]`)
	c.expect(`["5","5","t:end","phx_error",{}]`)
	if s := g.h.Stats(); s.ChannelErrors != 2 || s.Topics != 1 {
		t.Fatalf("stats %+v", s)
	}
	// The topic is no longer joined; other topics are untouched.
	a.send(`["1","2","t:end","publish",["e",{}]]`)
	a.expect(errReply("1", "2", "t:end", "unmatched topic"))
	publishJSON(t, b, "t:other", "e", `{}`)
	c.expect(`["6",null,"t:other","e",{}]`)

	// Joining again subscribes again, and works.
	a.join("3", "t:end")
	if subs, unsubs := b.counts("t:end"); subs != 2 || unsubs != 0 {
		t.Fatalf("subscribes %d unsubscribes %d, want 2 and 0", subs, unsubs)
	}
	publishJSON(t, b, "t:end", "e", `{"again":1}`)
	a.expect(`["3",null,"t:end","e",{"again":1}]`)
}

func TestPublishFailures(t *testing.T) {
	b := newCountingBroker()
	g := newGateway(t, b, &Options{PublishTimeout: 100 * time.Millisecond})
	c := g.dial()
	c.join("1", "t:pubfail")

	b.mu.Lock()
	b.publishErr = errors.New("owner unreachable")
	b.mu.Unlock()
	c.send(`["1","2","t:pubfail","publish",["e",{}]]`)
	c.expect(errReply("1", "2", "t:pubfail", "publish failed"))

	b.mu.Lock()
	b.publishErr = nil
	b.publishGate = make(chan struct{})
	b.mu.Unlock()
	c.send(`["1","3","t:pubfail","publish",["e",{}]]`)
	c.expect(errReply("1", "3", "t:pubfail", "publish timeout"))

	b.mu.Lock()
	b.publishGate = nil
	b.mu.Unlock()
	c.send(`["1","4","t:pubfail","publish",["e",{}]]`)
	c.expect(okReply("1", "4", "t:pubfail"))
	c.expect(`["1",null,"t:pubfail","e",{}]`)
}

func TestUndecodableBrokerMessagesAreDropped(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	c := g.dial()
	c.join("1", "t:garbage")
	ctx := context.Background()
	for _, data := range [][]byte{
		nil,
		{0x10},
		{0xf0, 1, 'e'},
		EncodeEnvelope("e", []byte(`{"open":`), false),
		EncodeEnvelope("e", []byte("{\"s\":\"\xff\"}"), false),
	} {
		if _, err := b.Publish(ctx, "t:garbage", data); err != nil {
			t.Fatal(err)
		}
	}
	publishJSON(t, b, "t:garbage", "e", `{"good":1}`)
	c.expect(`["1",null,"t:garbage","e",{"good":1}]`)
	if got := g.h.Stats().Errors; got != 5 {
		t.Fatalf("Errors = %d, want 5", got)
	}
}

// TestPublisherReplyPrecedesOwnBroadcast pipelines publishes from two clients
// at once: each client gets every reply before its own broadcast, and its
// broadcasts in order.
func TestPublisherReplyPrecedesOwnBroadcast(t *testing.T) {
	const n = 100
	g := newGateway(t, NewMemoryBroker(), nil)
	a, c := g.dial(), g.dial()
	a.join("1", "t:order")
	c.join("1", "t:order")

	var wg sync.WaitGroup
	for _, cl := range []*client{a, c} {
		name := "a"
		if cl == c {
			name = "c"
		}
		wg.Go(func() {
			for i := range n {
				ref := strconv.Itoa(100 + i)
				cl.send(fmt.Sprintf(`["1","%s","t:order","publish",["e",{"from":"%s","i":%d}]]`, ref, name, i))
			}
		})
	}
	wg.Wait()
	for _, cl := range []*client{a, c} {
		name := "a"
		if cl == c {
			name = "c"
		}
		replied := -1
		own, other := 0, 0
		for own+other < 2*n || replied < n-1 {
			_, data := cl.read()
			msg := string(data)
			var i int
			var from string
			if _, err := fmt.Sscanf(msg, `["1","%d","t:order","phx_reply",{"status":"ok","response":{}}]`, &i); err == nil {
				if i-100 != replied+1 {
					t.Fatalf("%s: reply %d after %d", name, i-100, replied)
				}
				replied = i - 100
				continue
			}
			if _, err := fmt.Sscanf(msg, `["1",null,"t:order","e",{"from":"%1s","i":%d}]`, &from, &i); err != nil {
				t.Fatalf("%s: unexpected %s", name, msg)
			}
			if from != name {
				other++
				continue
			}
			if i != own {
				t.Fatalf("%s: own broadcast %d, want %d", name, i, own)
			}
			if replied < i {
				t.Fatalf("%s: own broadcast %d before its reply (last reply %d)", name, i, replied)
			}
			own++
		}
		if own != n || other != n {
			t.Fatalf("%s: %d own and %d other broadcasts, want %d each", name, own, other, n)
		}
	}
}

// fanoutFixture is a topic with n members on connections that are not
// connected to anything: deliveries stay in their queues.
func fanoutFixture(tb testing.TB, n int) (*topicSub, []*conn) {
	h := NewHandler(NewMemoryBroker(), nil)
	tb.Cleanup(func() { _ = h.Close() })
	const topic = "t:fanout"
	t := &topicSub{
		hub:     &h.hub,
		shard:   h.hub.shard(topic),
		topic:   topic,
		ready:   make(chan struct{}),
		state:   stateActive,
		members: make(map[*join]struct{}),
	}
	conns := make([]*conn, n)
	for i := range conns {
		c := newConn(h, uint64(i))
		c.queue = make([]outItem, 0, 16)
		j := &join{conn: c, topic: topic, joinRef: some(strconv.Itoa(i)), sub: t}
		t.members[j] = struct{}{}
		c.joins[topic] = j
		conns[i] = c
	}
	return t, conns
}

// TestBroadcastEncodedOnce checks that a delivery costs the same allocations
// whatever the number of receivers: it is encoded once and shared.
func TestBroadcastEncodedOnce(t *testing.T) {
	msg := Message{Topic: "t:fanout", Seq: 1, Epoch: 1, Data: EncodeEnvelope("e", []byte(`{"message":"hi"}`), false)}
	allocs := func(n int) float64 {
		sub, conns := fanoutFixture(t, n)
		return testing.AllocsPerRun(50, func() {
			for _, c := range conns {
				c.queue, c.queued = c.queue[:0], 0
			}
			sub.deliver(msg)
		})
	}
	one, many := allocs(1), allocs(500)
	if one > 3 || many != one {
		t.Fatalf("allocations per delivery: %v for 1 receiver, %v for 500", one, many)
	}
	sub, conns := fanoutFixture(t, 3)
	sub.deliver(msg)
	for _, c := range conns {
		if len(c.queue) != 1 || c.queue[0].bc != conns[0].queue[0].bc {
			t.Fatal("receivers do not share one encoded broadcast")
		}
	}
}

func BenchmarkDeliver1000(b *testing.B) {
	sub, conns := fanoutFixture(b, 1000)
	msg := Message{Topic: "t:fanout", Seq: 1, Epoch: 1, Data: EncodeEnvelope("e", []byte(`{"message":"hi"}`), false)}
	b.ReportAllocs()
	for b.Loop() {
		for _, c := range conns {
			c.queue, c.queued = c.queue[:0], 0
		}
		sub.deliver(msg)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/receiver")
}

// TestManyClientsReceiveEverythingInOrder fans a stream of publications out
// to many clients reading concurrently; each gets all of them, in order.
func TestManyClientsReceiveEverythingInOrder(t *testing.T) {
	const clients, messages = 20, 300
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	cs := make([]*client, clients)
	for i := range cs {
		cs[i] = g.dial()
		cs[i].send(`["1","1","t:many","phx_join",{"meta":true}]`)
		cs[i].expect(okReply("1", "1", "t:many"))
	}
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 4*testTimeout)
			defer cancel()
			for want := 1; want <= messages; want++ {
				_, data, err := c.ws.Read(ctx)
				if err != nil {
					errs <- err
					return
				}
				exp := fmt.Sprintf(`["1",null,"t:many","e",{"i":%d},{"seq":%d,"epoch":"1"}]`, want, want)
				if string(data) != exp {
					errs <- fmt.Errorf("got %s, want %s", data, exp)
					return
				}
			}
		})
	}
	for i := 1; i <= messages; i++ {
		publishJSON(t, b, "t:many", "e", fmt.Sprintf(`{"i":%d}`, i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := g.h.Stats(); s.SlowConsumers != 0 || s.FramesOut < clients*messages {
		t.Fatalf("stats %+v", s)
	}
}
