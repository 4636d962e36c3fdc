package inbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/ringcast/ringcast/cmd/internal/notify/inbox"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestJoinRefusals(t *testing.T) {
	sys := newSystem(t)
	nd := sys.start(&inbox.Options{MaxTopics: 2})
	bob := sys.user("bob")
	sys.user("carol")

	anon := nd.dial(t, "", false)
	if r := anon.refused("inbox", nil); r != inbox.ReasonUnauthorized {
		t.Fatalf("anonymous: %q", r)
	}
	// The socket stays: an open topic can still be joined.
	anon.join("topics:matrix", map[string]any{})

	c := nd.dial(t, bob, false)
	if r := c.refused("inbox:carol", nil); r != inbox.ReasonForbidden {
		t.Fatalf("another user's inbox: %q", r)
	}
	if r := c.refused("inbox", map[string]any{"positions": []int{1}}); !strings.HasPrefix(r, inbox.ReasonInvalidPayload) {
		t.Fatalf("bad payload: %q", r)
	}
	if r := c.refused("inbox", map[string]any{"positions": map[string]any{"a": map[string]any{"seq": -1}}}); !strings.HasPrefix(r, inbox.ReasonInvalidPayload) {
		t.Fatalf("bad seq: %q", r)
	}
	for _, name := range []string{"a", "b", "c"} {
		sys.topic("carol", name)
		sys.subscribe("bob", name)
	}
	if r := c.refused("inbox", nil); !strings.HasPrefix(r, inbox.ReasonTooManyTopics) {
		t.Fatalf("too many topics: %q", r)
	}
	if err := sys.svc.Unsubscribe(ctxT(t), "bob", "c"); err != nil {
		t.Fatal(err)
	}
	_, resp := c.join("inbox:bob", nil)
	if got := decodeInbox(t, resp).summary(); got != "0 a:0/0/0 b:0/0/0" {
		t.Fatalf("inbox %s", got)
	}

	// A token the service refuses is refused before the upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, res, err := cws.Dial(ctx, nd.url+"&token=forged", &cws.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	if err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged token: %v %v", res, err)
	}
	_ = res.Body.Close()
	waitFor(t, "the stats", func() bool {
		st := nd.ch.Stats()
		return st.Refused == 5 && st.Joins == 1 && st.Sessions == 1
	})
}

// A notification reaches every session of every subscriber, with its
// topic, seq, epoch and body as published, and the counts follow.
func TestNotificationsAndCounts(t *testing.T) {
	sys := newSystem(t)
	nd := sys.start(nil)
	sys.user("alice")
	bob := sys.user("bob")
	sys.topic("alice", "news")
	sys.topic("alice", "sports")
	sys.subscribe("bob", "news")
	sys.subscribe("bob", "sports")
	first := sys.publish("alice", "news", `{"title":"before the join"}`)

	c := nd.dial(t, bob, true)
	jr, resp := c.join("inbox", map[string]any{})
	in := decodeInbox(t, resp)
	if got := in.summary(); got != "1 news:1/1/0 sports:0/0/0" {
		t.Fatalf("inbox %s", got)
	}
	if in.Topics[0].Epoch != strconv.FormatUint(first.Epoch, 10) {
		t.Fatalf("epoch %s, want %d", in.Topics[0].Epoch, first.Epoch)
	}

	body := `{"title":"Grüße","n":[1,2,{"deep":true}],"s":"\u2028"}`
	p := sys.publish("alice", "news", body)
	m := c.next()
	if m.Event != inbox.EventNotification || deref(m.JoinRef) != jr || m.Ref != nil {
		t.Fatalf("got %v", m)
	}
	var n notification
	if err := json.Unmarshal(m.Payload, &n); err != nil {
		t.Fatal(err)
	}
	if n.Topic != "news" || n.Seq != p.Seq || n.Epoch != strconv.FormatUint(p.Epoch, 10) || string(n.Body) != body {
		t.Fatalf("notification %s", m.Payload)
	}
	c.expect(inbox.EventUnread, `{"unread":2,"topic":"news","topic_unread":2}`)

	ps := sys.publish("alice", "sports", `"just a string"`)
	c.expect(inbox.EventNotification, fmt.Sprintf(`{"topic":"sports","seq":1,"epoch":"%d","body":"just a string"}`, ps.Epoch))
	c.expect(inbox.EventUnread, `{"unread":3,"topic":"sports","topic_unread":1}`)
	c.none(50 * time.Millisecond)

	in2, err := sys.svc.Inbox(ctxT(t), "bob")
	if err != nil || in2.Unread != 3 {
		t.Fatalf("database inbox %+v %v", in2, err)
	}
	waitFor(t, "the stats", func() bool { return nd.ch.Stats().Notifications == 2 })
}

// A read on one device reaches the user's other devices at once, on
// another node too; the device that read gets the new state in its reply.
func TestReadReachesOtherDevices(t *testing.T) {
	sys := newSystem(t)
	a := sys.start(nil)
	b := sys.start(nil, a.n.GossipAddr())
	waitFor(t, "two members", func() bool { return len(a.n.Members()) == 2 && len(b.n.Members()) == 2 })
	sys.user("alice")
	bob := sys.user("bob")
	sys.topic("alice", "news")
	sys.subscribe("bob", "news")
	for i := range 3 {
		sys.publish("alice", "news", fmt.Sprintf(`{"i":%d}`, i))
	}

	phone := a.dial(t, bob, false)
	laptop := b.dial(t, bob, true)
	tablet := a.dial(t, bob, true)
	for _, c := range []*client{phone, laptop, tablet} {
		_, resp := c.join("inbox", nil)
		if got := decodeInbox(t, resp).summary(); got != "3 news:3/3/0" {
			t.Fatalf("inbox %s", got)
		}
	}

	var pushed []msg
	ref := phone.push("1", "inbox", inbox.EventRead, map[string]any{"topic": "news", "seq": 2})
	status, resp := phone.reply(ref, &pushed)
	if status != "ok" || !sameJSON(resp, `{"unread":1,"topic":"news","topic_unread":1,"last_seq":3,"read_seq":2}`) {
		t.Fatalf("read reply %s %s", status, resp)
	}
	// The reading device gets the new counts once: from its read, or from
	// the read's control event if that came back first (then with the
	// read event).
	if n := len(pushed); n == 0 || n > 2 || pushed[n-1].Event != inbox.EventUnread ||
		!sameJSON(pushed[n-1].Payload, `{"unread":1,"topic":"news","topic_unread":1}`) ||
		n == 2 && (pushed[0].Event != inbox.EventRead || !sameJSON(pushed[0].Payload, `{"topic":"news","read_seq":2}`)) {
		t.Fatalf("pushed before the reply: %v", pushed)
	}
	for _, c := range []*client{laptop, tablet} {
		c.expect(inbox.EventRead, `{"topic":"news","read_seq":2}`)
		c.expect(inbox.EventUnread, `{"unread":1,"topic":"news","topic_unread":1}`)
	}
	// The control event of its own read changes nothing on the phone.
	phone.none(100 * time.Millisecond)

	// A read that moves nothing is answered with the state, and nobody
	// else is told.
	ref = laptop.push("1", "inbox", inbox.EventRead, map[string]any{"topic": "news", "seq": "1"})
	if status, resp := laptop.reply(ref, nil); status != "ok" || !sameJSON(resp, `{"unread":1,"topic":"news","topic_unread":1,"last_seq":3,"read_seq":2}`) {
		t.Fatalf("read reply %s %s", status, resp)
	}
	// Errors are replies.
	for _, tt := range []struct {
		payload any
		reason  string
	}{
		{map[string]any{"topic": "nope", "seq": 1}, inbox.ReasonNotFound},
		{map[string]any{"topic": "news"}, inbox.ReasonInvalidPayload},
		{map[string]any{"seq": 1}, inbox.ReasonInvalidPayload},
		{map[string]any{"topic": "bad name!", "seq": 1}, inbox.ReasonInvalid},
	} {
		ref := laptop.push("1", "inbox", inbox.EventRead, tt.payload)
		status, resp := laptop.reply(ref, nil)
		var r struct{ Reason string }
		_ = json.Unmarshal(resp, &r)
		if status != "error" || !strings.HasPrefix(r.Reason, tt.reason) {
			t.Fatalf("read %v: %s %s, want reason %q", tt.payload, status, resp, tt.reason)
		}
	}
	ref = laptop.push("1", "inbox", "bogus", map[string]any{})
	if status, resp := laptop.reply(ref, nil); status != "error" || !sameJSON(resp, `{"reason":"unknown event"}`) {
		t.Fatalf("bogus: %s %s", status, resp)
	}

	// Mark-all over HTTP (the service), then from a device.
	sys.publish("alice", "news", `{"i":3}`)
	for _, c := range []*client{phone, laptop, tablet} {
		c.event(inbox.EventUnread, nil)
	}
	if err := sys.svc.MarkAllRead(ctxT(t), "bob"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{phone, laptop, tablet} {
		c.expect(inbox.EventRead, `{"topic":"news","read_seq":4}`)
		c.expect(inbox.EventUnread, `{"unread":0,"topic":"news","topic_unread":0}`)
	}
	sys.publish("alice", "news", `{"i":4}`)
	for _, c := range []*client{phone, laptop, tablet} {
		c.event(inbox.EventUnread, nil)
	}
	ref = tablet.push("1", "inbox", inbox.EventReadAll, map[string]any{})
	pushed = nil
	status, resp = tablet.reply(ref, &pushed)
	if got := decodeInbox(t, resp).summary(); status != "ok" || got != "0 news:0/5/5" {
		t.Fatalf("read_all reply %s %s", status, got)
	}
	for _, c := range []*client{phone, laptop} {
		c.expect(inbox.EventRead, `{"topic":"news","read_seq":5}`)
		c.expect(inbox.EventUnread, `{"unread":0,"topic":"news","topic_unread":0}`)
	}
}

// A client that rejoins with its last positions gets exactly the
// notifications it missed, then live ones; a position the store no longer
// serves, or too far behind, gets a reset event first.
func TestRejoinWithPositions(t *testing.T) {
	sys := newSystem(t)
	nd := sys.start(&inbox.Options{MaxReplay: 5})
	sys.user("alice")
	bob := sys.user("bob")
	for _, name := range []string{"news", "sports", "quiet"} {
		sys.topic("alice", name)
		sys.subscribe("bob", name)
	}
	c := nd.dial(t, bob, false)
	c.join("inbox", nil)
	var epoch string
	for i := 1; i <= 2; i++ {
		sys.publish("alice", "news", fmt.Sprintf(`{"i":%d}`, i))
		var n notification
		c.event(inbox.EventNotification, &n)
		epoch = n.Epoch
		c.event(inbox.EventUnread, nil)
	}
	_ = c.ws.CloseNow()

	// Missed while away.
	for i := 3; i <= 5; i++ {
		sys.publish("alice", "news", fmt.Sprintf(`{"i":%d}`, i))
	}
	for i := 1; i <= 9; i++ {
		sys.publish("alice", "sports", fmt.Sprintf(`{"i":%d}`, i))
	}

	c = nd.dial(t, bob, true)
	ref := c.push("1", "inbox", "phx_join", map[string]any{"positions": map[string]any{
		"news":    map[string]any{"epoch": epoch, "seq": 2},
		"sports":  map[string]any{"seq": 1}, // 8 behind, more than MaxReplay
		"quiet":   map[string]any{"epoch": epoch, "seq": 7},
		"unknown": map[string]any{"seq": 1},
	}})
	status, resp := c.reply(ref, nil)
	if got := decodeInbox(t, resp).summary(); status != "ok" || got != "14 news:5/5/0 quiet:0/0/0 sports:9/9/0" {
		t.Fatalf("rejoin: %s %s %s", status, got, resp)
	}
	var got []msg
	for range 5 { // 3 notifications and 2 resets
		got = append(got, c.next())
	}
	c.none(100 * time.Millisecond)
	if seqs := notifications(t, got, "news"); !slices.Equal(seqs, []uint64{3, 4, 5}) {
		t.Fatalf("news replayed %v, want 3 4 5: %v", seqs, got)
	}
	var resets []string
	for _, m := range got {
		if m.Event == inbox.EventReset {
			var r struct {
				Topic string `json:"topic"`
				Epoch string `json:"epoch"`
				Seq   uint64 `json:"seq"`
			}
			if err := json.Unmarshal(m.Payload, &r); err != nil || r.Epoch == "" || r.Epoch == "0" {
				t.Fatalf("reset %s", m.Payload)
			}
			resets = append(resets, fmt.Sprintf("%s@%d", r.Topic, r.Seq))
		}
	}
	slices.Sort(resets)
	if want := []string{"quiet@0", "sports@9"}; !slices.Equal(resets, want) {
		t.Fatalf("resets %v, want %v", resets, want)
	}
	// Live from here: no duplicate.
	sys.publish("alice", "news", `{"i":6}`)
	c.expect(inbox.EventNotification, `{"topic":"news","seq":6,"epoch":"`+epoch+`","body":{"i":6}}`)
	c.expect(inbox.EventUnread, `{"unread":15,"topic":"news","topic_unread":6}`)
	waitFor(t, "the stats", func() bool { return nd.ch.Stats().Resets == 2 })
}

// Subscribing and unsubscribing over the API reach the live sessions: the
// session follows the new topic at once and drops the old one.
func TestSubscriptionChangesReachSessions(t *testing.T) {
	sys := newSystem(t)
	nd := sys.start(nil)
	sys.user("alice")
	bob := sys.user("bob")
	sys.topic("alice", "news")
	sys.topic("alice", "sports")
	sys.subscribe("bob", "news")
	sys.publish("alice", "news", `{"i":1}`)
	sys.publish("alice", "sports", `{"i":1}`)
	sys.publish("alice", "sports", `{"i":2}`)

	c := nd.dial(t, bob, false)
	c.join("inbox", nil)
	sys.subscribe("bob", "sports")
	var sub struct {
		Name    string `json:"name"`
		Unread  uint64 `json:"unread"`
		LastSeq uint64 `json:"last_seq"`
		ReadSeq uint64 `json:"read_seq"`
	}
	c.event(inbox.EventSubscribed, &sub)
	if sub.Name != "sports" || sub.Unread != 0 || sub.ReadSeq != 2 {
		t.Fatalf("subscribed %+v", sub)
	}
	p := sys.publish("alice", "sports", `{"i":3}`)
	c.expect(inbox.EventNotification, fmt.Sprintf(`{"topic":"sports","seq":3,"epoch":"%d","body":{"i":3}}`, p.Epoch))
	c.expect(inbox.EventUnread, `{"unread":2,"topic":"sports","topic_unread":1}`)

	if err := sys.svc.Unsubscribe(ctxT(t), "bob", "news"); err != nil {
		t.Fatal(err)
	}
	c.expect(inbox.EventUnsubscribed, `{"topic":"news"}`)
	c.expect(inbox.EventUnread, `{"unread":1,"topic":"news","topic_unread":0}`)
	sys.publish("alice", "news", `{"i":2}`)
	sys.publish("alice", "sports", `{"i":4}`)
	c.expect(inbox.EventNotification, fmt.Sprintf(`{"topic":"sports","seq":4,"epoch":"%d","body":{"i":4}}`, p.Epoch))
	c.expect(inbox.EventUnread, `{"unread":2,"topic":"sports","topic_unread":2}`)
	c.none(100 * time.Millisecond)

	// A subscription past MaxTopics ends the session with phx_error (its
	// client's rejoin is then refused), on another node of the cluster.
	small := sys.start(&inbox.Options{MaxTopics: 1}, nd.n.GossipAddr())
	waitFor(t, "two members", func() bool { return len(small.n.Members()) == 2 })
	d := small.dial(t, bob, false)
	jr, _ := d.join("inbox", nil)
	sys.topic("alice", "extra")
	sys.subscribe("bob", "extra")
	if m := d.next(); m.Event != "phx_error" || deref(m.JoinRef) != jr {
		t.Fatalf("got %v, want phx_error", m)
	}
	if r := d.refused("inbox", nil); !strings.HasPrefix(r, inbox.ReasonTooManyTopics) {
		t.Fatalf("rejoin: %q", r)
	}
}

// The node's online marker follows the user's live sessions: set at the
// first join, renewed while they last, cleared after the last leave.
func TestOnlineMarker(t *testing.T) {
	sys := newSystem(t)
	var rec *recorder
	nd := sys.startWith(&inbox.Options{OnlineTTL: 400 * time.Millisecond, OnlineRefresh: 50 * time.Millisecond},
		func(s inbox.Service) inbox.Service {
			rec = &recorder{Service: s}
			return rec
		})
	bob := sys.user("bob")
	online := func() bool {
		ok, err := sys.svc.Online(ctxT(t), "bob")
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	c1 := nd.dial(t, bob, false)
	c1.join("inbox", nil)
	waitFor(t, "bob online", online)
	c2 := nd.dial(t, bob, true)
	c2.join("inbox:bob", nil)
	// Renewed past its TTL.
	time.Sleep(600 * time.Millisecond)
	if !online() {
		t.Fatal("bob's marker expired while he is connected")
	}
	if n := rec.count("set bob"); n < 5 {
		t.Fatalf("%d renewals", n)
	}
	_ = c1.ws.CloseNow()
	waitFor(t, "one session left", func() bool { return nd.ch.Stats().Sessions == 1 })
	time.Sleep(100 * time.Millisecond)
	if !online() || rec.count("clear bob") != 0 {
		t.Fatal("bob is offline with a session left")
	}
	ref := c2.push("1", "inbox:bob", "phx_leave", map[string]any{})
	c2.reply(ref, nil)
	waitFor(t, "bob offline", func() bool { return !online() && rec.count("clear bob") == 1 })
	if st := nd.ch.Stats(); st.Online != 0 || st.Sessions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Close ends the sessions with phx_error (clients rejoin elsewhere) and
// clears the markers; later joins are refused.
func TestCloseEndsSessions(t *testing.T) {
	sys := newSystem(t)
	nd := sys.start(nil)
	bob := sys.user("bob")
	c := nd.dial(t, bob, false)
	jr, _ := c.join("inbox", nil)
	waitFor(t, "bob online", func() bool { ok, _ := sys.svc.Online(ctxT(t), "bob"); return ok })
	if err := nd.ch.Close(); err != nil {
		t.Fatal(err)
	}
	m := c.next()
	if m.Event != "phx_error" || deref(m.JoinRef) != jr {
		t.Fatalf("got %v", m)
	}
	if ok, _ := sys.svc.Online(ctxT(t), "bob"); ok {
		t.Fatal("bob still online")
	}
	if r := c.refused("inbox", nil); r != inbox.ReasonShuttingDown {
		t.Fatalf("join after Close: %q", r)
	}
	if err := nd.ch.Close(); err != nil {
		t.Fatal(err)
	}
}

// Publishes, reads and joins at once, on two topics and two devices: every
// device ends with the database's counts, and every notification arrived
// once, in order.
func TestConcurrentTraffic(t *testing.T) {
	sys := newSystem(t)
	nd := sys.start(nil)
	sys.user("alice")
	bob := sys.user("bob")
	for _, name := range []string{"t1", "t2"} {
		sys.topic("alice", name)
		sys.subscribe("bob", name)
	}
	devices := []*client{nd.dial(t, bob, false), nd.dial(t, bob, true)}
	for _, c := range devices {
		c.join("inbox", nil)
	}
	const each = 40
	var wg sync.WaitGroup
	for _, name := range []string{"t1", "t2"} {
		wg.Go(func() {
			for i := range each {
				if _, err := sys.svc.Publish(context.Background(), "alice", name, []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					if _, err := sys.svc.MarkRead(context.Background(), "bob", name, uint64(i)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	want, err := sys.svc.Inbox(ctxT(t), "bob")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range devices {
		// Read until every notification has arrived, then until nothing
		// more comes: the last counts are the database's.
		var got []msg
		for len(notifications(t, got, "t1"))+len(notifications(t, got, "t2")) < 2*each {
			got = append(got, c.next())
		}
		for quiet := false; !quiet; {
			select {
			case m, ok := <-c.in:
				if !ok {
					t.Fatal("connection closed")
				}
				got = append(got, m)
			case <-time.After(300 * time.Millisecond):
				quiet = true
			}
		}
		perTopic := map[string]uint64{}
		var total uint64
		for _, m := range got {
			if m.Event == inbox.EventUnread {
				var u unread
				if err := json.Unmarshal(m.Payload, &u); err != nil {
					t.Fatal(err)
				}
				perTopic[u.Topic], total = u.TopicUnread, u.Unread
			}
		}
		if total != want.Unread || perTopic["t1"] != want.Topics[0].Unread || perTopic["t2"] != want.Topics[1].Unread {
			t.Fatalf("device counts %d %v, database %+v", total, perTopic, want)
		}
		for _, name := range []string{"t1", "t2"} {
			seqs := notifications(t, got, name)
			for i, s := range seqs {
				if s != uint64(i+1) || len(seqs) != each {
					t.Fatalf("%s: seqs %v", name, seqs)
				}
			}
		}
	}
}
