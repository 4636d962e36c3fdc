package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestTopics(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{})
		alice, bob := e.user("alice"), e.user("bob")

		var created Topic
		e.expect(http.StatusCreated, "POST", "/api/topics", alice, `{"name":"news","description":"daily news"}`).json(t, &created)
		if created.Name != "news" || created.Creator != "alice" || created.Description != "daily news" || created.Subscribed || created.LastSeq != 0 {
			t.Errorf("created %+v", created)
		}
		e.expect(http.StatusConflict, "POST", "/api/topics", bob, `{"name":"news"}`)
		for _, body := range []string{
			`{"name":""}`, `{"name":"a b"}`, `{"name":"a/b"}`, `{"name":".."}`, `{"name":"é"}`,
			`{"name":"` + strings.Repeat("n", 201) + `"}`,
			`{"name":"ok","description":"` + strings.Repeat("d", 1025) + `"}`,
			`{"name":"ok","description":"bell\u0007"}`,
			`{"name":"ok","creator":"bob"}`,
			`{"name":"ok"}x`,
		} {
			e.expect(http.StatusBadRequest, "POST", "/api/topics", alice, body)
		}
		e.topic(alice, "a:b.c_d-"+strings.Repeat("z", 190))
		e.topic(bob, "bobs")
		for i := range 5 {
			e.topic(alice, "page"+strconv.Itoa(i))
		}

		list := func(token, query string) ([]string, *string) {
			t.Helper()
			var l struct {
				Topics []Topic `json:"topics"`
				Next   *string `json:"next"`
			}
			e.expect(http.StatusOK, "GET", "/api/topics"+query, token, "").json(t, &l)
			var names []string
			for _, tp := range l.Topics {
				names = append(names, tp.Name)
			}
			return names, l.Next
		}
		all, next := list(bob, "")
		if len(all) != 8 || next != nil || !slices.IsSorted(all) {
			t.Errorf("all topics: %v next %v", all, next)
		}
		mine, _ := list(bob, "?mine=1")
		if !slices.Equal(mine, []string{"bobs"}) {
			t.Errorf("bob's topics: %v", mine)
		}
		// Pages of two.
		var paged []string
		cursor := ""
		for range 10 {
			names, next := list(alice, "?mine=true&limit=2&cursor="+cursor)
			paged = append(paged, names...)
			if next == nil {
				break
			}
			cursor = *next
		}
		if len(paged) != 7 || !slices.IsSorted(paged) || slices.Contains(paged, "bobs") {
			t.Errorf("alice's topics in pages: %v", paged)
		}
		e.expect(http.StatusBadRequest, "GET", "/api/topics?mine=maybe", alice, "")
		e.expect(http.StatusBadRequest, "GET", "/api/topics?limit=0", alice, "")
		e.expect(http.StatusBadRequest, "GET", "/api/topics?limit=1001", alice, "")

		e.expect(http.StatusCreated, "PUT", "/api/topics/news/subscription", bob, "")
		subscribed, _ := list(bob, "?subscribed=1")
		if !slices.Equal(subscribed, []string{"news"}) {
			t.Errorf("bob subscribes to %v", subscribed)
		}
		var one Topic
		e.expect(http.StatusOK, "GET", "/api/topics/news", bob, "").json(t, &one)
		if !one.Subscribed || one.Creator != "alice" {
			t.Errorf("GET news: %+v", one)
		}
		e.expect(http.StatusNotFound, "GET", "/api/topics/nothing", bob, "")
	})
}

func TestPublish(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{MaxNotificationBytes: 1024})
		alice, bob := e.user("alice"), e.user("bob")
		e.topic(alice, "news")

		var p struct {
			Seq   uint64 `json:"seq"`
			Epoch string `json:"epoch"`
		}
		e.expect(http.StatusCreated, "POST", "/api/topics/news/notifications", alice, `{"title":"hello"}`).json(t, &p)
		if p.Seq != 1 || p.Epoch != strconv.Itoa(testEpoch) {
			t.Errorf("published %+v", p)
		}
		if seq := e.publish(alice, "news", `"a string is JSON too"`); seq != 2 {
			t.Errorf("seq %d", seq)
		}
		e.expect(http.StatusForbidden, "POST", "/api/topics/news/notifications", bob, `{}`)
		e.expect(http.StatusNotFound, "POST", "/api/topics/none/notifications", alice, `{}`)
		e.expect(http.StatusBadRequest, "POST", "/api/topics/news/notifications", alice, `{"unterminated":`)
		e.expect(http.StatusBadRequest, "POST", "/api/topics/news/notifications", alice, ``)
		e.expect(http.StatusBadRequest, "POST", "/api/topics/a%20b/notifications", alice, `{}`)
		e.expect(http.StatusRequestEntityTooLarge, "POST", "/api/topics/news/notifications", alice, `{"x":"`+strings.Repeat("x", 1100)+`"}`)
		e.mu.Lock()
		notified := slices.Clone(e.notified)
		e.mu.Unlock()
		if !slices.Equal(notified, []string{"news/1", "news/2"}) {
			t.Errorf("OnNotify: %v", notified)
		}

		// The body is stored verbatim.
		msgs, err := e.st.Read(context.Background(), RingTopic("news"), 0, 10, 1<<20)
		if err != nil || len(msgs) != 2 || string(msgs[0].Data) != `{"title":"hello"}` {
			t.Fatalf("stored %v %v", msgs, err)
		}

		// A store that is down answers 503.
		e.pub.mu.Lock()
		e.pub.fail = ErrUnavailable
		e.pub.mu.Unlock()
		r := e.expect(http.StatusServiceUnavailable, "POST", "/api/topics/news/notifications", alice, `{}`)
		if r.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	})
}

func TestSubscriptions(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{})
		alice, bob := e.user("alice"), e.user("bob")
		e.topic(alice, "news")
		e.publish(alice, "news", `{"n":1}`)
		e.publish(alice, "news", `{"n":2}`)

		var st TopicState
		e.expect(http.StatusCreated, "PUT", "/api/topics/news/subscription", bob, "").json(t, &st)
		if st != (TopicState{Name: "news", LastSeq: 2, ReadSeq: 2}) {
			t.Errorf("new subscription %+v: want the cursor at the head", st)
		}
		e.expect(http.StatusOK, "PUT", "/api/topics/news/subscription", bob, "").json(t, &st)
		if st.ReadSeq != 2 {
			t.Errorf("again: %+v", st)
		}
		if ev := e.pub.takeEvents("bob"); !slices.Equal(ev, []ControlEvent{{Type: EventSubscribed, Topic: "news", ReadSeq: 2}}) {
			t.Errorf("events %+v", ev)
		}
		e.expect(http.StatusOK, "GET", "/api/topics/news/subscription", bob, "").json(t, &st)
		e.expect(http.StatusNotFound, "GET", "/api/topics/news/subscription", alice, "")
		e.expect(http.StatusNotFound, "PUT", "/api/topics/none/subscription", bob, "")

		e.publish(alice, "news", `{"n":3}`)
		if in := e.inbox(bob); in.Unread != 1 || len(in.Topics) != 1 || in.Topics[0] != (TopicState{Name: "news", Unread: 1, LastSeq: 3, ReadSeq: 2}) {
			t.Errorf("inbox %+v", in)
		}

		// The email reminders' pending row goes with the subscription.
		if _, err := e.db.SQL.Exec(e.db.Rebind(`INSERT INTO notify_pending (user_id, topic, seq, due_at) VALUES (?, ?, ?, ?)`), "bob", "news", 3, 1); err != nil {
			t.Fatal(err)
		}
		e.expect(http.StatusNoContent, "DELETE", "/api/topics/news/subscription", bob, "")
		e.expect(http.StatusNotFound, "DELETE", "/api/topics/news/subscription", bob, "")
		if ev := e.pub.takeEvents("bob"); !slices.Equal(ev, []ControlEvent{{Type: EventUnsubscribed, Topic: "news"}}) {
			t.Errorf("events %+v", ev)
		}
		for _, table := range []string{"notify_subscriptions", "notify_cursors", "notify_pending"} {
			var n int
			if err := e.db.SQL.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s: %d rows left (%v)", table, n, err)
			}
		}
		if in := e.inbox(bob); in.Unread != 0 || len(in.Topics) != 0 {
			t.Errorf("inbox after unsubscribing %+v", in)
		}
		// Subscribing again starts at the head.
		e.expect(http.StatusCreated, "PUT", "/api/topics/news/subscription", bob, "").json(t, &st)
		if st.Unread != 0 || st.ReadSeq != 3 {
			t.Errorf("re-subscription %+v", st)
		}
	})
}

func TestNotificationsPaging(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{})
		alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
		e.topic(alice, "news")
		e.expect(http.StatusCreated, "PUT", "/api/topics/news/subscription", bob, "")
		for i := 1; i <= 7; i++ {
			e.publish(alice, "news", `{"i":`+strconv.Itoa(i)+`}`)
		}
		type page struct {
			Notifications []struct {
				Seq   uint64          `json:"seq"`
				Epoch string          `json:"epoch"`
				Time  string          `json:"time"`
				Body  json.RawMessage `json:"body"`
			} `json:"notifications"`
			Next *uint64 `json:"next"`
		}
		get := func(token, query string) ([]uint64, *uint64) {
			t.Helper()
			var p page
			e.expect(http.StatusOK, "GET", "/api/topics/news/notifications"+query, token, "").json(t, &p)
			var seqs []uint64
			for _, n := range p.Notifications {
				if n.Epoch != strconv.Itoa(testEpoch) || n.Time == "" || string(n.Body) != `{"i":`+strconv.FormatUint(n.Seq, 10)+`}` {
					t.Errorf("notification %+v", n)
				}
				seqs = append(seqs, n.Seq)
			}
			return seqs, p.Next
		}
		if seqs, next := get(bob, ""); len(seqs) != 7 || next != nil {
			t.Errorf("all: %v next %v", seqs, next)
		}
		seqs, next := get(alice, "?limit=3")
		if !slices.Equal(seqs, []uint64{1, 2, 3}) || next == nil || *next != 3 {
			t.Fatalf("first page: %v next %v", seqs, next)
		}
		seqs, next = get(alice, "?limit=3&after=3")
		if !slices.Equal(seqs, []uint64{4, 5, 6}) || next == nil || *next != 6 {
			t.Fatalf("second page: %v next %v", seqs, next)
		}
		seqs, next = get(alice, "?limit=3&after=6")
		if !slices.Equal(seqs, []uint64{7}) || next != nil {
			t.Fatalf("last page: %v next %v", seqs, next)
		}
		seqs, next = get(bob, "?after=2&before=5")
		if !slices.Equal(seqs, []uint64{3, 4}) || next != nil {
			t.Errorf("between: %v next %v", seqs, next)
		}
		seqs, next = get(bob, "?after=1&before=5&limit=2")
		if !slices.Equal(seqs, []uint64{2, 3}) || next == nil || *next != 3 {
			t.Errorf("between, paged: %v next %v", seqs, next)
		}
		if seqs, next := get(bob, "?after=7"); len(seqs) != 0 || next != nil {
			t.Errorf("after the head: %v next %v", seqs, next)
		}
		if seqs, _ := get(bob, "?before=1"); len(seqs) != 0 {
			t.Errorf("before 1: %v", seqs)
		}
		e.expect(http.StatusForbidden, "GET", "/api/topics/news/notifications", carol, "")
		e.expect(http.StatusNotFound, "GET", "/api/topics/none/notifications", carol, "")
		for _, q := range []string{"?after=-1", "?after=x", "?before=1e3", "?limit=0", "?limit=1001", "?after=18446744073709551615"} {
			e.expect(http.StatusBadRequest, "GET", "/api/topics/news/notifications"+q, bob, "")
		}

		// Without a store to read from: 503.
		noReader := NewService(e.db, e.pub, Options{Clock: e.clock.Now})
		_, err := noReader.Notifications(context.Background(), "bob", "news", NotificationQuery{})
		wantErr(t, err, ErrUnavailable)
	})
}

func TestDeleteTopic(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{})
		alice, bob := e.user("alice"), e.user("bob")
		e.topic(alice, "news")
		e.expect(http.StatusCreated, "PUT", "/api/topics/news/subscription", bob, "")
		e.publish(alice, "news", `{"old":1}`)
		e.publish(alice, "news", `{"old":2}`)
		e.pub.takeEvents("bob")
		if _, err := e.db.SQL.Exec(e.db.Rebind(`INSERT INTO notify_pending (user_id, topic, seq, due_at) VALUES (?, ?, ?, ?)`), "bob", "news", 2, 1); err != nil {
			t.Fatal(err)
		}

		e.expect(http.StatusForbidden, "DELETE", "/api/topics/news", bob, "")
		e.expect(http.StatusNotFound, "DELETE", "/api/topics/none", alice, "")
		e.expect(http.StatusNoContent, "DELETE", "/api/topics/news", alice, "")
		e.expect(http.StatusNotFound, "DELETE", "/api/topics/news", alice, "")
		for _, table := range []string{"notify_topics", "notify_subscriptions", "notify_cursors", "notify_pending"} {
			var n int
			if err := e.db.SQL.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s: %d rows left (%v)", table, n, err)
			}
		}
		if ev := e.pub.takeEvents("bob"); !slices.Equal(ev, []ControlEvent{{Type: EventUnsubscribed, Topic: "news"}}) {
			t.Errorf("bob's events %+v", ev)
		}
		msgs, err := e.st.Read(context.Background(), RingTopic("news"), 0, 10, 1<<20)
		if err != nil || len(msgs) != 0 {
			t.Errorf("the store still holds %d notifications (%v)", len(msgs), err)
		}
		if in := e.inbox(bob); len(in.Topics) != 0 {
			t.Errorf("bob's inbox %+v", in)
		}

		// Created again, by bob: the ringcast topic's sequence goes on,
		// and nothing of the old topic shows.
		e.topic(bob, "news")
		var st TopicState
		e.expect(http.StatusCreated, "PUT", "/api/topics/news/subscription", alice, "").json(t, &st)
		if st.ReadSeq != 2 || st.Unread != 0 {
			t.Errorf("subscription to the new topic %+v", st)
		}
		if seq := e.publish(bob, "news", `{"new":1}`); seq != 3 {
			t.Errorf("first notification of the new topic: seq %d, want 3", seq)
		}
		var p NotificationPage
		e.expect(http.StatusOK, "GET", "/api/topics/news/notifications?after=0", bob, "").json(t, &p)
		if len(p.Notifications) != 1 || p.Notifications[0].Seq != 3 {
			t.Errorf("the new topic shows %+v", p.Notifications)
		}
		e.expect(http.StatusNotFound, "GET", "/api/topics/news/notifications/2/receipts", bob, "")
		if in := e.inbox(alice); in.Unread != 1 {
			t.Errorf("alice's inbox %+v", in)
		}
	})
}
