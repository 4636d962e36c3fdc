package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub"
)

// newTestNode starts a standalone pubsub node over st with the binaries'
// durability rules for the notification system, closed when the test
// ends.
func newTestNode(t *testing.T, st pubsub.Store) *pubsub.Node {
	t.Helper()
	n, err := pubsub.New(pubsub.Config{
		Store: st,
		Durability: []pubsub.Durability{
			{Pattern: RingPrefix + "*"},
			{Pattern: UserPrefix + "*", Memory: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// client calls the API of a running server.
type client struct {
	t    *testing.T
	base string
}

func (c client) call(method, path, token, body string, want int, out any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %q: %v", method, path, b, err)
		}
	}
}

// nextEvent waits for the next control event on sub.
func nextEvent(t *testing.T, sub *pubsub.Subscription) ControlEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("waiting for a control event: %v", err)
	}
	ev, err := ParseControlEvent(m.Data)
	if err != nil {
		t.Fatalf("control event %q: %v", m.Data, err)
	}
	return ev
}

// TestNodeEndToEnd runs the API over a real pubsub node on a real store:
// durable notifications, memory-only control events, read state,
// receipts, mark-all, deletion, and a restart of the node.
func TestNodeEndToEnd(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		db, spec := OpenTestDBSpec(t, dialect)
		st := openTestStore(t, dialect, spec)
		node := newTestNode(t, st)
		svc := NewService(db, NodePublisher(node), Options{Reader: st, Trimmer: st, BcryptCost: 4})
		srv := httptest.NewServer(svc.Handler())
		defer srv.Close()
		c := client{t: t, base: srv.URL}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()

		var alice, bob Token
		c.call("POST", "/api/users", "", `{"id":"alice","email":"alice@example.com","password":"alice-password"}`, 201, nil)
		c.call("POST", "/api/users", "", `{"id":"bob","email":"bob@example.com","password":"bob-password"}`, 201, nil)
		c.call("POST", "/api/tokens", "", `{"id":"alice","password":"alice-password"}`, 200, &alice)
		c.call("POST", "/api/tokens", "", `{"id":"bob","password":"bob-password"}`, 200, &bob)

		control, err := node.Subscribe(ctx, UserTopic("bob"))
		if err != nil {
			t.Fatal(err)
		}
		defer control.Unsubscribe()
		live, err := node.Subscribe(ctx, RingTopic("news"))
		if err != nil {
			t.Fatal(err)
		}
		defer live.Unsubscribe()

		c.call("POST", "/api/topics", alice.Token, `{"name":"news"}`, 201, nil)
		c.call("PUT", "/api/topics/news/subscription", bob.Token, "", 201, nil)
		if ev := nextEvent(t, control); ev != (ControlEvent{Type: EventSubscribed, Topic: "news", ReadSeq: 0}) {
			t.Fatalf("event %+v", ev)
		}
		var epoch string
		for i := 1; i <= 3; i++ {
			var p struct {
				Seq   uint64 `json:"seq"`
				Epoch string `json:"epoch"`
			}
			body := `{"text":"n` + itoa(uint64(i)) + `"}`
			c.call("POST", "/api/topics/news/notifications", alice.Token, body, 201, &p)
			if p.Seq != uint64(i) || p.Epoch == "" || (epoch != "" && p.Epoch != epoch) {
				t.Fatalf("published %+v", p)
			}
			epoch = p.Epoch
			m, err := live.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Seq != p.Seq || string(m.Data) != body || itoa(m.Epoch) != epoch {
				t.Fatalf("live message %d %d %q, want %d %s %q", m.Epoch, m.Seq, m.Data, p.Seq, epoch, body)
			}
		}
		var in Inbox
		c.call("GET", "/api/inbox", bob.Token, "", 200, &in)
		if in.Unread != 3 {
			t.Fatalf("inbox %+v", in)
		}
		var ts TopicState
		c.call("POST", "/api/topics/news/read", bob.Token, `{"seq":2}`, 200, &ts)
		if ts.Unread != 1 {
			t.Fatalf("after read %+v", ts)
		}
		if ev := nextEvent(t, control); ev != (ControlEvent{Type: EventRead, Topic: "news", ReadSeq: 2}) {
			t.Fatalf("event %+v", ev)
		}
		var rc Receipts
		c.call("GET", "/api/topics/news/notifications/2/receipts", alice.Token, "", 200, &rc)
		if rc != (Receipts{Subscribers: 1, Read: 1}) {
			t.Fatalf("receipts of 2 %+v", rc)
		}
		c.call("GET", "/api/topics/news/notifications/3/receipts", alice.Token, "", 200, &rc)
		if rc != (Receipts{Subscribers: 1, Read: 0}) {
			t.Fatalf("receipts of 3 %+v", rc)
		}
		var page NotificationPage
		c.call("GET", "/api/topics/news/notifications?after=1", bob.Token, "", 200, &page)
		if len(page.Notifications) != 2 || page.Notifications[0].Seq != 2 || page.Notifications[0].Epoch != epoch ||
			string(page.Notifications[1].Body) != `{"text":"n3"}` {
			t.Fatalf("page %+v", page)
		}
		c.call("POST", "/api/read", bob.Token, "", 200, &in)
		if in.Unread != 0 {
			t.Fatalf("inbox after mark-all %+v", in)
		}
		if ev := nextEvent(t, control); ev.Type != EventReadAll {
			t.Fatalf("event %+v", ev)
		}

		// The node restarts: the topic's sequence goes on from the store.
		node.Close()
		node2 := newTestNode(t, st)
		svc2 := NewService(db, NodePublisher(node2), Options{Reader: st, Trimmer: st, BcryptCost: 4})
		srv2 := httptest.NewServer(svc2.Handler())
		defer srv2.Close()
		c2 := client{t: t, base: srv2.URL}
		control2, err := node2.Subscribe(ctx, UserTopic("bob"))
		if err != nil {
			t.Fatal(err)
		}
		defer control2.Unsubscribe()
		var p struct {
			Seq uint64 `json:"seq"`
		}
		c2.call("POST", "/api/topics/news/notifications", alice.Token, `{"after":"restart"}`, 201, &p)
		if p.Seq != 4 {
			t.Fatalf("seq after the restart %d, want 4", p.Seq)
		}
		c2.call("GET", "/api/inbox", bob.Token, "", 200, &in)
		if in.Unread != 1 || in.Topics[0].LastSeq != 4 || in.Topics[0].ReadSeq != 3 {
			t.Fatalf("inbox after the restart %+v", in)
		}

		c2.call("DELETE", "/api/topics/news", bob.Token, "", 403, nil)
		c2.call("DELETE", "/api/topics/news", alice.Token, "", 204, nil)
		if ev := nextEvent(t, control2); ev != (ControlEvent{Type: EventUnsubscribed, Topic: "news"}) {
			t.Fatalf("event %+v", ev)
		}
		msgs, err := st.Read(ctx, RingTopic("news"), 0, 10, 1<<20)
		if err != nil || len(msgs) != 0 {
			t.Fatalf("the store still holds %d notifications (%v)", len(msgs), err)
		}
		c2.call("GET", "/api/inbox", bob.Token, "", 200, &in)
		if in.Unread != 0 || len(in.Topics) != 0 {
			t.Fatalf("inbox after the deletion %+v", in)
		}
	})
}
