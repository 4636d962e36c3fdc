package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

// toyChannel is a channel driven by its join payload and events:
//
//	join {"refuse":"why"}  refused with reason "why"
//	join {"fail":true}     refused by a plain error
//	join {"panic":true}    Join panics
//	join {"block":true}    Join waits for its ctx
//	join {"push":n}        pushes n "hello" events before replying
//	join {"end":true}      ends its own session before replying
//
// The ok reply is {"user":U,"topic":T}. Events: "echo" replies with its
// payload, "refuse" is refused with reason "bad", "fail" by a plain error,
// "panic" panics, "slow" waits for its ctx, "push" pushes its payload as
// "pushed", "close" and "error" end the session with phx_close and
// phx_error.
type toyChannel struct {
	sessions chan *Session
}

func newToyChannel() *toyChannel { return &toyChannel{sessions: make(chan *Session, 64)} }

func (tc *toyChannel) Join(ctx context.Context, s *Session, topic string, payload json.RawMessage) (json.RawMessage, error) {
	var p struct {
		Refuse string `json:"refuse"`
		Fail   bool   `json:"fail"`
		Panic  bool   `json:"panic"`
		Block  bool   `json:"block"`
		Push   int    `json:"push"`
		End    bool   `json:"end"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, &ReasonError{Reason: "bad payload", Err: err}
	}
	switch {
	case p.Refuse != "":
		return nil, Reason(p.Refuse)
	case p.Fail:
		return nil, errors.New("toy: database down")
	case p.Panic:
		panic("toy: join panic")
	case p.Block:
		<-ctx.Done()
		return nil, ctx.Err()
	case p.End:
		s.End(Reason("ended while joining"))
		return nil, nil
	}
	for i := range p.Push {
		if err := s.Push("hello", json.RawMessage(`{"i":`+strconv.Itoa(i)+`}`)); err != nil {
			return nil, err
		}
	}
	s.HandleIn(func(ctx context.Context, event string, payload json.RawMessage) (json.RawMessage, error) {
		switch event {
		case "echo":
			return payload, nil
		case "refuse":
			return nil, Reason("bad")
		case "fail":
			return nil, errors.New("toy: failed")
		case "panic":
			panic("toy: event panic")
		case "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		case "push":
			return nil, s.Push("pushed", payload)
		case "close":
			s.End(nil)
			return nil, nil
		case "error":
			s.End(errors.New("toy: broken"))
			return nil, nil
		}
		return nil, Reason("unknown event")
	})
	tc.sessions <- s
	return json.Marshal(map[string]string{"user": s.Identity().User, "topic": topic})
}

// session returns the next session that joined.
func (tc *toyChannel) session(t testing.TB) *Session {
	t.Helper()
	select {
	case s := <-tc.sessions:
		return s
	case <-time.After(testTimeout):
		t.Fatal("no session joined")
		return nil
	}
}

// waitEnded waits for s to end and returns the cause.
func waitEnded(t testing.TB, s *Session) error {
	t.Helper()
	select {
	case <-s.Context().Done():
		return context.Cause(s.Context())
	case <-time.After(testTimeout):
		t.Fatal("session did not end")
		return nil
	}
}

func toyGateway(t testing.TB, opts *Options) (*gateway, *toyChannel) {
	tc := newToyChannel()
	var o Options
	if opts != nil {
		o = *opts
	}
	o.Channels = map[string]Channel{"toy": tc, "toy:*": tc}
	return newGateway(t, NewMemoryBroker(), &o), tc
}

func TestChannelJoinPushEventLeave(t *testing.T) {
	g, tc := toyGateway(t, nil)
	c := g.dial()
	c.send(`["1","1","toy","phx_join",{"push":2}]`)
	// The reply first, then what Join pushed, carrying the join_ref.
	c.expect(`["1","1","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	c.expect(`["1",null,"toy","hello",{"i":0}]`)
	c.expect(`["1",null,"toy","hello",{"i":1}]`)
	s := tc.session(t)
	if s.Topic() != "toy" || !s.Identity().Anonymous() {
		t.Fatalf("session topic %q identity %+v", s.Topic(), s.Identity())
	}

	c.send(`["1","2","toy","echo",{"a":[1,2]}]`)
	c.expect(`["1","2","toy","phx_reply",{"status":"ok","response":{"a":[1,2]}}]`)
	c.send(`["1","3","toy","refuse",{}]`)
	c.expect(errReply("1", "3", "toy", "bad"))
	c.send(`["1","4","toy","fail",{}]`)
	c.expect(errReply("1", "4", "toy", "event failed"))
	c.send(`["1","5","toy","panic",{}]`)
	c.expect(errReply("1", "5", "toy", "event failed"))
	c.send(`["1","6","toy","phx_reply",{}]`)
	c.expect(errReply("1", "6", "toy", "unknown event"))
	c.send(`["1","7","toy","push",{"x":1}]`)
	c.expect(`["1",null,"toy","pushed",{"x":1}]`)
	c.expect(okReply("1", "7", "toy"))
	// An event under another join_ref is not this join's.
	c.send(`["9","8","toy","echo",{}]`)
	c.expect(errReply("9", "8", "toy", "unmatched topic"))

	if err := s.Push("server", json.RawMessage(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	c.expect(`["1",null,"toy","server",{"n":1}]`)
	for _, bad := range []struct {
		event   string
		payload string
		want    error
	}{
		{"phx_close", `{}`, ErrInvalidEvent},
		{"", `{}`, ErrInvalidEvent},
		{"e", `{"a":`, ErrInvalidPayload},
		{"e", "\"\xff\"", ErrInvalidPayload},
	} {
		if err := s.Push(bad.event, json.RawMessage(bad.payload)); !errors.Is(err, bad.want) {
			t.Fatalf("Push(%q, %q) = %v, want %v", bad.event, bad.payload, err, bad.want)
		}
	}
	if st := g.h.Stats(); st.Sessions != 1 || st.Joins != 1 {
		t.Fatalf("stats %+v", st)
	}

	c.send(`["1","10","toy","phx_leave",{}]`)
	c.expect(okReply("1", "10", "toy"))
	c.expect(`["1","1","toy","phx_close",{}]`)
	if cause := waitEnded(t, s); !errors.Is(cause, ErrLeft) {
		t.Fatalf("cause %v, want ErrLeft", cause)
	}
	if err := s.Push("late", nil); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("Push after leave = %v", err)
	}
	c.send(`["1","11","toy","echo",{}]`)
	c.expect(errReply("1", "11", "toy", "unmatched topic"))
	// Leaving again is ok, without phx_close.
	c.send(`["1","12","toy","phx_leave",{}]`)
	c.expect(okReply("1", "12", "toy"))
	if st := g.h.Stats(); st.Sessions != 0 {
		t.Fatalf("Sessions = %d after leave", st.Sessions)
	}
}

func TestChannelJoinRefusedKeepsSocket(t *testing.T) {
	g, tc := toyGateway(t, &Options{JoinTimeout: 200 * time.Millisecond})
	c := g.dial()
	c.send(`["1","1","toy","phx_join",{"refuse":"not today"}]`)
	c.expect(errReply("1", "1", "toy", "not today"))
	c.send(`["2","2","toy","phx_join",{"fail":true}]`)
	c.expect(errReply("2", "2", "toy", "join failed"))
	c.send(`["3","3","toy","phx_join",{"panic":true}]`)
	c.expect(errReply("3", "3", "toy", "join failed"))
	c.send(`["4","4","toy","phx_join",{"block":true}]`)
	c.expect(errReply("4", "4", "toy", "join timeout"))
	c.send(`["5","5","toy","phx_join",{"end":true}]`)
	c.expect(errReply("5", "5", "toy", "ended while joining"))
	c.send(`["6","6","toy","phx_join",[1]]`)
	c.expect(errReply("6", "6", "toy", "bad payload"))
	// The socket is still up: a join now succeeds, and nothing pushed by
	// the refused joins arrives.
	c.send(`["7","7","toy","phx_join",{}]`)
	c.expect(`["7","7","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	tc.session(t)
	c.send(`["7","8","toy","echo",{"ok":true}]`)
	c.expect(`["7","8","toy","phx_reply",{"status":"ok","response":{"ok":true}}]`)
	if st := g.h.Stats(); st.Sessions != 1 || st.Joins != 1 {
		t.Fatalf("stats %+v, want one session and one join", st)
	}
}

func TestChannelEventTimeout(t *testing.T) {
	g, tc := toyGateway(t, &Options{EventTimeout: 100 * time.Millisecond})
	c := g.dial()
	c.send(`["1","1","toy","phx_join",{}]`)
	c.expect(`["1","1","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	tc.session(t)
	c.send(`["1","2","toy","slow",{}]`)
	c.expect(errReply("1", "2", "toy", "event timeout"))
	c.send(`["1","3","toy","echo",{}]`)
	c.expect(okReply("1", "3", "toy"))
}

func TestChannelServerEnd(t *testing.T) {
	g, tc := toyGateway(t, nil)
	c := g.dial()
	c.send(`["1","1","toy:a","phx_join",{}]`)
	c.expect(`["1","1","toy:a","phx_reply",{"status":"ok","response":{"topic":"toy:a","user":""}}]`)
	a := tc.session(t)
	c.send(`["2","2","toy:b","phx_join",{}]`)
	c.expect(`["2","2","toy:b","phx_reply",{"status":"ok","response":{"topic":"toy:b","user":""}}]`)
	b := tc.session(t)

	// phx_close: the channel stops the join; the client is not to rejoin.
	c.send(`["1","3","toy:a","close",{}]`)
	c.expect(`["1","1","toy:a","phx_close",{}]`)
	c.expect(okReply("1", "3", "toy:a"))
	if cause := waitEnded(t, a); !errors.Is(cause, ErrSessionEnded) {
		t.Fatalf("cause %v", cause)
	}
	// phx_error from another goroutine than the event handler.
	broken := errors.New("toy: store lost")
	b.End(broken)
	b.End(nil) // idempotent
	c.expect(`["2","2","toy:b","phx_error",{}]`)
	if cause := waitEnded(t, b); cause != broken {
		t.Fatalf("cause %v, want %v", cause, broken)
	}
	c.send(`["2","4","toy:b","echo",{}]`)
	c.expect(errReply("2", "4", "toy:b", "unmatched topic"))
	// The client may join again.
	c.send(`["5","5","toy:b","phx_join",{}]`)
	c.expect(`["5","5","toy:b","phx_reply",{"status":"ok","response":{"topic":"toy:b","user":""}}]`)
	if st := g.h.Stats(); st.Sessions != 1 {
		t.Fatalf("Sessions = %d", st.Sessions)
	}
}

func TestChannelRejoinReplaces(t *testing.T) {
	g, tc := toyGateway(t, nil)
	c := g.dial()
	c.send(`["1","1","toy","phx_join",{}]`)
	c.expect(`["1","1","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	old := tc.session(t)
	c.send(`["2","2","toy","phx_join",{}]`)
	c.expect(`["1","1","toy","phx_close",{}]`)
	c.expect(`["2","2","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	cur := tc.session(t)
	if cause := waitEnded(t, old); !errors.Is(cause, ErrRejoined) {
		t.Fatalf("cause %v", cause)
	}
	if err := cur.Push("e", nil); err != nil {
		t.Fatal(err)
	}
	c.expect(`["2",null,"toy","e",{}]`)
	if st := g.h.Stats(); st.Sessions != 1 {
		t.Fatalf("Sessions = %d", st.Sessions)
	}
}

func TestChannelRoutingAndBrokerTopics(t *testing.T) {
	exact, prefix, longer := newToyChannel(), newToyChannel(), newToyChannel()
	b := NewMemoryBroker()
	g := newGateway(t, b, &Options{Channels: map[string]Channel{
		"inbox":        exact,
		"inbox:*":      prefix,
		"inbox:team:*": longer,
		"":             exact, // dropped
		"nil":          nil,   // dropped
	}})
	c := g.dial()
	for i, tt := range []struct {
		topic string
		ch    *toyChannel
	}{{"inbox", exact}, {"inbox:bob", prefix}, {"inbox:team:x", longer}} {
		jr := strconv.Itoa(i + 1)
		c.send(`["` + jr + `","` + jr + `","` + tt.topic + `","phx_join",{}]`)
		c.expect(`["` + jr + `","` + jr + `","` + tt.topic + `","phx_reply",{"status":"ok","response":{"topic":"` + tt.topic + `","user":""}}]`)
		if s := tt.ch.session(t); s.Topic() != tt.topic {
			t.Fatalf("%s went to the channel of %s", tt.topic, s.Topic())
		}
	}
	// "inboxes" and "nil" are broker topics: joined, published, broadcast.
	c.join("10", "inboxes")
	c.join("11", "nil")
	c.join("12", "topics:matrix")
	publishJSON(t, b, "topics:matrix", "event", `{"message":"hi"}`)
	c.expect(`["12",null,"topics:matrix","event",{"message":"hi"}]`)
	if st := g.h.Stats(); st.Sessions != 3 || st.Topics != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// The channel joins count against MaxTopicsPerConn with the broker joins.
func TestChannelTooManyTopics(t *testing.T) {
	g, tc := toyGateway(t, &Options{MaxTopicsPerConn: 2})
	c := g.dial()
	c.join("1", "topics:a")
	c.send(`["2","2","toy:a","phx_join",{}]`)
	c.expect(`["2","2","toy:a","phx_reply",{"status":"ok","response":{"topic":"toy:a","user":""}}]`)
	tc.session(t)
	c.send(`["3","3","toy:b","phx_join",{}]`)
	c.expect(errReply("3", "3", "toy:b", "too many topics"))
	c.send(`["4","4","topics:b","phx_join",{}]`)
	c.expect(errReply("4", "4", "topics:b", "too many topics"))
	// Rejoining a joined channel topic replaces it and is not one more.
	c.send(`["5","5","toy:a","phx_join",{}]`)
	c.expect(`["2","2","toy:a","phx_close",{}]`)
	c.expect(`["5","5","toy:a","phx_reply",{"status":"ok","response":{"topic":"toy:a","user":""}}]`)
}

func TestChannelBinaryEvents(t *testing.T) {
	g, tc := toyGateway(t, nil)
	c := g.dial()
	c.sendBinary(binaryPush("1", "1", "toy", "phx_join", nil))
	c.expectBinary(binaryReply("1", "1", "toy", "ok", []byte(`{"topic":"toy","user":""}`)))
	tc.session(t)
	c.sendBinary(binaryPush("1", "2", "toy", "echo", []byte(`{"b":1}`)))
	c.expectBinary(binaryReply("1", "2", "toy", "ok", []byte(`{"b":1}`)))
	c.sendBinary(binaryPush("1", "3", "toy", "echo", []byte{0xff, 0}))
	c.expectBinary(binaryReply("1", "3", "toy", "error", []byte(`{"reason":"payload must be JSON"}`)))
}

func TestChannelDisconnectEndsSessions(t *testing.T) {
	g, tc := toyGateway(t, nil)
	c := g.dial()
	var sessions []*Session
	for i := range 3 {
		jr := strconv.Itoa(i + 1)
		topic := "toy:" + jr
		c.send(`["` + jr + `","` + jr + `","` + topic + `","phx_join",{}]`)
		c.expect(`["` + jr + `","` + jr + `","` + topic + `","phx_reply",{"status":"ok","response":{"topic":"` + topic + `","user":""}}]`)
		sessions = append(sessions, tc.session(t))
	}
	_ = c.ws.CloseNow()
	for _, s := range sessions {
		if cause := waitEnded(t, s); !errors.Is(cause, ErrDisconnected) {
			t.Fatalf("cause %v, want ErrDisconnected", cause)
		}
		if err := s.Push("e", nil); !errors.Is(err, ErrSessionEnded) {
			t.Fatalf("Push after disconnect = %v", err)
		}
	}
	waitFor(t, testTimeout, "the connection to end", func() bool {
		st := g.h.Stats()
		return st.Connections == 0 && st.Sessions == 0
	})
}

// A join still running when the connection closes is abandoned: its
// session ends, and it never becomes a member.
func TestChannelDisconnectDuringJoin(t *testing.T) {
	g, tc := toyGateway(t, &Options{JoinTimeout: time.Minute})
	c := g.dial()
	c.send(`["1","1","toy","phx_join",{"block":true}]`)
	waitFor(t, testTimeout, "the join to start", func() bool {
		g.h.mu.Lock()
		defer g.h.mu.Unlock()
		for cn := range g.h.conns {
			if cn.working.Load() {
				return true
			}
		}
		return false
	})
	_ = c.ws.CloseNow()
	waitFor(t, testTimeout, "the connection to end", func() bool {
		st := g.h.Stats()
		return st.Connections == 0 && st.Sessions == 0
	})
	select {
	case s := <-tc.sessions:
		t.Fatalf("a blocked join registered session %v", s.Topic())
	default:
	}
}

// A burst pushed while Join runs counts against the outbound queue like
// everything else: past it the connection is a slow consumer.
func TestChannelPushBurstDuringJoinIsSlowConsumer(t *testing.T) {
	const limit = 8 << 10
	pushErr := make(chan error, 1)
	ch := ChannelFunc(func(ctx context.Context, s *Session, topic string, payload json.RawMessage) (json.RawMessage, error) {
		body := json.RawMessage(`{"p":"` + strings.Repeat("x", 1024) + `"}`)
		for range 64 {
			if err := s.Push("e", body); err != nil {
				pushErr <- err
				return nil, err
			}
		}
		pushErr <- nil
		return nil, nil
	})
	g := newGateway(t, NewMemoryBroker(), &Options{OutboundQueueBytes: limit, Channels: map[string]Channel{"burst": ch}})
	c := g.dial()
	c.send(`["1","1","burst","phx_join",{}]`)
	c.expectClose(cws.StatusTryAgainLater, reasonSlowConsumer)
	if err := <-pushErr; !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("push error %v, want ErrSlowConsumer", err)
	}
	waitFor(t, testTimeout, "the connection to end", func() bool {
		st := g.h.Stats()
		return st.Connections == 0 && st.Sessions == 0 && st.SlowConsumers == 1
	})
}

// A client that stops reading while its channel pushes is cut as a slow
// consumer; Push never blocks, the session ends, and another client of
// the same channel keeps receiving.
func TestChannelSlowConsumer(t *testing.T) {
	const limit = 32 << 10
	g, tc := toyGateway(t, &Options{OutboundQueueBytes: limit, WriteTimeout: time.Minute})
	stuck := dialURL(t, g.url, &cws.DialOptions{HTTPClient: smallBufferClient()})
	stuck.send(`["1","1","toy","phx_join",{}]`)
	stuck.expect(`["1","1","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	slow := tc.session(t)
	fast := g.dial()
	fast.send(`["1","1","toy","phx_join",{}]`)
	fast.expect(`["1","1","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	other := tc.session(t)

	body := json.RawMessage(`{"p":"` + strings.Repeat("s", 2<<10) + `"}`)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	pushes := 0
	for err == nil {
		if time.Now().After(deadline) {
			t.Fatalf("not cut after %d pushes", pushes)
		}
		<-tick.C
		start := time.Now()
		err = slow.Push("e", body)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Push blocked for %v", d)
		}
		pushes++
		if err := other.Push("e", json.RawMessage(`{"n":`+strconv.Itoa(pushes)+`}`)); err != nil {
			t.Fatal(err)
		}
		fast.expect(`["1",null,"toy","e",{"n":` + strconv.Itoa(pushes) + `}]`)
	}
	if !errors.Is(err, ErrSlowConsumer) && !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("Push = %v, want ErrSlowConsumer or ErrSessionEnded", err)
	}
	if cause := waitEnded(t, slow); !errors.Is(cause, ErrDisconnected) {
		t.Fatalf("cause %v", cause)
	}
	waitFor(t, testTimeout, "the stuck connection to end", func() bool {
		st := g.h.Stats()
		return st.Connections == 1 && st.Sessions == 1 && st.SlowConsumers == 1
	})
	if err := other.Push("after", nil); err != nil {
		t.Fatal(err)
	}
	fast.expect(`["1",null,"toy","after",{}]`)
}

// Pushes from many goroutines at once all arrive, each goroutine's in
// order, each with the receiver's join_ref.
func TestChannelConcurrentPushes(t *testing.T) {
	const writers, each = 8, 200
	g, tc := toyGateway(t, nil)
	c := g.dial()
	c.send(`["7","7","toy","phx_join",{}]`)
	c.expect(`["7","7","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	s := tc.session(t)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Push("e", json.RawMessage(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	next := make([]int, writers)
	for range writers * each {
		_, data := c.read()
		var msg []json.RawMessage
		if err := json.Unmarshal(data, &msg); err != nil || len(msg) != 5 {
			t.Fatalf("message %s", data)
		}
		if string(msg[0]) != `"7"` || string(msg[1]) != "null" || string(msg[3]) != `"e"` {
			t.Fatalf("message %s", data)
		}
		var p struct{ W, I int }
		if err := json.Unmarshal(msg[4], &p); err != nil {
			t.Fatal(err)
		}
		if p.I != next[p.W] {
			t.Fatalf("writer %d: got %d, want %d", p.W, p.I, next[p.W])
		}
		next[p.W]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := g.h.Stats(); st.ChannelPushes != writers*each {
		t.Fatalf("ChannelPushes = %d", st.ChannelPushes)
	}
}

// Pushes racing with a leave and a disconnect: every Push returns nil or
// ErrSessionEnded, nothing is pushed under a join that ended, and nothing
// leaks (-race and goleak watch).
func TestChannelPushesRaceLeaveAndClose(t *testing.T) {
	g, tc := toyGateway(t, nil)
	for round := range 5 {
		c := g.dial()
		c.send(`["1","1","toy","phx_join",{}]`)
		c.expect(`["1","1","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
		s := tc.session(t)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					err := s.Push("e", json.RawMessage(`{}`))
					if errors.Is(err, ErrSessionEnded) || errors.Is(err, ErrSlowConsumer) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		if round%2 == 0 {
			c.send(`["1","2","toy","phx_leave",{}]`)
			// Read until the leave's reply and phx_close: no push after them.
			sawClose := false
			for !sawClose {
				_, data := c.read()
				msg := string(data)
				switch {
				case msg == `["1","1","toy","phx_close",{}]`:
					sawClose = true
				case msg == okReply("1", "2", "toy"), msg == `["1",null,"toy","e",{}]`:
				default:
					t.Fatalf("unexpected %s", msg)
				}
			}
			if cause := waitEnded(t, s); !errors.Is(cause, ErrLeft) {
				t.Fatalf("cause %v", cause)
			}
			c.barrier("b")
		} else {
			_ = c.ws.CloseNow()
			if cause := waitEnded(t, s); !errors.Is(cause, ErrDisconnected) {
				t.Fatalf("cause %v", cause)
			}
		}
		wg.Wait()
		_ = c.ws.CloseNow()
	}
	waitFor(t, testTimeout, "every connection to end", func() bool {
		st := g.h.Stats()
		return st.Connections == 0 && st.Sessions == 0
	})
}

// Handler shutdown ends every session with ErrDisconnected.
func TestChannelShutdownEndsSessions(t *testing.T) {
	g, tc := toyGateway(t, nil)
	c := g.dial()
	c.send(`["1","1","toy","phx_join",{}]`)
	c.expect(`["1","1","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	s := tc.session(t)
	done := make(chan error, 1)
	go func() { done <- g.h.Shutdown(context.Background()) }()
	c.expectClose(cws.StatusGoingAway, reasonShutdown)
	if cause := waitEnded(t, s); !errors.Is(cause, ErrDisconnected) {
		t.Fatalf("cause %v", cause)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Shutdown did not return")
	}
	if st := g.h.Stats(); st.Sessions != 0 {
		t.Fatalf("Sessions = %d", st.Sessions)
	}
}

// identityGateway authenticates "good-*" tokens as the user after the dash.
func identityGateway(t *testing.T, opts Options) (*gateway, *toyChannel) {
	opts.AuthenticateConn = func(r *http.Request, token string) (Identity, error) {
		switch {
		case token == "":
			return Identity{}, nil
		case token == "banned":
			return Identity{}, fmt.Errorf("banned: %w", ErrForbidden)
		case strings.HasPrefix(token, "good-"):
			return Identity{User: strings.TrimPrefix(token, "good-"), Data: r.RemoteAddr}, nil
		}
		return Identity{}, errors.New("bad token")
	}
	return toyGateway(t, &opts)
}

func bearer(token string) *cws.DialOptions {
	return &cws.DialOptions{Subprotocols: []string{"phoenix", authTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(token))}}
}

func TestChannelIdentity(t *testing.T) {
	g, tc := identityGateway(t, Options{})
	joinAs := func(c *client, want string) {
		t.Helper()
		c.send(`["1","1","toy","phx_join",{}]`)
		c.expect(`["1","1","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":"` + want + `"}}]`)
		s := tc.session(t)
		if s.Identity().User != want || (want != "" && s.Identity().Data == nil) {
			t.Fatalf("identity %+v, want user %q", s.Identity(), want)
		}
	}
	joinAs(dialURL(t, g.url, bearer("good-alice")), "alice")
	joinAs(dialURL(t, g.url+"&token=good-bob", nil), "bob")
	// The subprotocol wins over the query parameter.
	joinAs(dialURL(t, g.url+"&token=good-bob", bearer("good-carol")), "carol")
	joinAs(g.dial(), "")

	for _, tt := range []struct {
		url    string
		opts   *cws.DialOptions
		status int
	}{
		{g.url + "&token=nope", nil, http.StatusUnauthorized},
		{g.url, bearer("nope"), http.StatusUnauthorized},
		{g.url + "&token=banned", nil, http.StatusForbidden},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		opts := tt.opts
		if opts == nil {
			opts = &cws.DialOptions{}
		}
		opts.HTTPClient = httpClient()
		ws, resp, err := cws.Dial(ctx, tt.url, opts)
		cancel()
		if err == nil {
			_ = ws.CloseNow()
			t.Fatalf("%s: connected", tt.url)
		}
		if resp == nil || resp.StatusCode != tt.status {
			t.Fatalf("%s: %v, %v, want %d", tt.url, resp, err, tt.status)
		}
		_ = resp.Body.Close()
	}
}

// Anonymous clients join open topics by default; DenyAnonymous refuses
// them there (with an error reply, the socket stays), while authenticated
// clients and the channels (which decide for themselves) are unaffected.
func TestDenyAnonymous(t *testing.T) {
	open, _ := identityGateway(t, Options{})
	anon := open.dial()
	anon.join("1", "topics:matrix")

	g, tc := identityGateway(t, Options{DenyAnonymous: true})
	anon = g.dial()
	anon.send(`["1","1","topics:matrix","phx_join",{}]`)
	anon.expect(errReply("1", "1", "topics:matrix", "unauthorized"))
	anon.send(`["2","2","toy","phx_join",{}]`)
	anon.expect(`["2","2","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	tc.session(t)
	alice := dialURL(t, g.url+"&token=good-alice", nil)
	alice.join("1", "topics:matrix")
}

// The identity-less Authenticate keeps working, and also sees the query
// parameter token; its connections are anonymous.
func TestAuthenticateWithoutIdentity(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	g, tc := toyGateway(t, &Options{Authenticate: func(_ *http.Request, token string) error {
		mu.Lock()
		seen = append(seen, token)
		mu.Unlock()
		if token != "ok" {
			return errors.New("bad token")
		}
		return nil
	}})
	c := dialURL(t, g.url+"&token=ok", nil)
	c.send(`["1","1","toy","phx_join",{}]`)
	c.expect(`["1","1","toy","phx_reply",{"status":"ok","response":{"topic":"toy","user":""}}]`)
	tc.session(t)
	dialURL(t, g.url, bearer("ok")).join("1", "topics:x")
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "ok,ok" {
		t.Fatalf("tokens seen %q", seen)
	}
}
