package notify

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReadState(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{})
		alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
		e.topic(alice, "news")
		e.topic(alice, "sport")
		e.topic(carol, "quiet")
		for _, tp := range []string{"news", "sport", "quiet"} {
			e.expect(http.StatusCreated, "PUT", "/api/topics/"+tp+"/subscription", bob, "")
		}
		e.pub.takeEvents("bob")
		for range 5 {
			e.publish(alice, "news", `{}`)
		}
		for range 3 {
			e.publish(alice, "sport", `{}`)
		}
		in := e.inbox(bob)
		want := Inbox{Unread: 8, Topics: []TopicState{
			{Name: "news", Unread: 5, LastSeq: 5, ReadSeq: 0},
			{Name: "quiet", Unread: 0, LastSeq: 0, ReadSeq: 0},
			{Name: "sport", Unread: 3, LastSeq: 3, ReadSeq: 0},
		}}
		if in.Unread != want.Unread || !slices.Equal(in.Topics, want.Topics) {
			t.Fatalf("inbox %+v, want %+v", in, want)
		}

		var st TopicState
		e.expect(http.StatusOK, "POST", "/api/topics/news/read", bob, `{"seq":3}`).json(t, &st)
		if st != (TopicState{Name: "news", Unread: 2, LastSeq: 5, ReadSeq: 3}) {
			t.Errorf("after read 3: %+v", st)
		}
		// Never back.
		e.expect(http.StatusOK, "POST", "/api/topics/news/read", bob, `{"seq":1}`).json(t, &st)
		if st.ReadSeq != 3 {
			t.Errorf("the cursor moved back: %+v", st)
		}
		e.expect(http.StatusOK, "POST", "/api/topics/news/read", bob, `{"seq":0}`).json(t, &st)
		if st.ReadSeq != 3 {
			t.Errorf("seq 0 moved the cursor: %+v", st)
		}
		// Beyond the head: clamped.
		e.expect(http.StatusOK, "POST", "/api/topics/news/read", bob, `{"seq":99}`).json(t, &st)
		if st != (TopicState{Name: "news", Unread: 0, LastSeq: 5, ReadSeq: 5}) {
			t.Errorf("clamped: %+v", st)
		}
		if ev := e.pub.takeEvents("bob"); !slices.Equal(ev, []ControlEvent{{Type: EventRead, Topic: "news", ReadSeq: 3}, {Type: EventRead, Topic: "news", ReadSeq: 5}}) {
			t.Errorf("events %+v: want one per move", ev)
		}
		e.expect(http.StatusNotFound, "POST", "/api/topics/news/read", alice, `{"seq":1}`)
		e.expect(http.StatusNotFound, "POST", "/api/topics/none/read", bob, `{"seq":1}`)
		for _, body := range []string{`{}`, `{"seq":-1}`, `{"seq":"3"}`, `{"seq":1.5}`, `{"seq":1,"x":2}`, `{"seq":1}{"seq":2}`, ``} {
			e.expect(http.StatusBadRequest, "POST", "/api/topics/news/read", bob, body)
		}
		if in := e.inbox(bob); in.Unread != 3 {
			t.Errorf("inbox %+v", in)
		}

		// Mark everything read.
		e.publish(alice, "news", `{}`)
		var after Inbox
		e.expect(http.StatusOK, "POST", "/api/read", bob, "").json(t, &after)
		if after.Unread != 0 || after.Topics[0].ReadSeq != 6 || after.Topics[2].ReadSeq != 3 {
			t.Errorf("after mark-all %+v", after)
		}
		if ev := e.pub.takeEvents("bob"); !slices.Equal(ev, []ControlEvent{{Type: EventReadAll}}) {
			t.Errorf("events %+v", ev)
		}
		e.publish(alice, "sport", `{}`)
		if in := e.inbox(bob); in.Unread != 1 || in.Topics[2].Unread != 1 {
			t.Errorf("inbox %+v", in)
		}

		// Receipts.
		e.expect(http.StatusCreated, "PUT", "/api/topics/news/subscription", carol, "")
		var rc Receipts
		e.expect(http.StatusOK, "GET", "/api/topics/news/notifications/6/receipts", alice, "").json(t, &rc)
		if rc != (Receipts{Subscribers: 2, Read: 2}) {
			t.Errorf("receipts of 6: %+v", rc)
		}
		e.publish(alice, "news", `{}`)
		e.expect(http.StatusOK, "GET", "/api/topics/news/notifications/7/receipts", alice, "").json(t, &rc)
		if rc != (Receipts{Subscribers: 2, Read: 0}) {
			t.Errorf("receipts of 7: %+v", rc)
		}
		e.expect(http.StatusOK, "POST", "/api/topics/news/read", bob, `{"seq":7}`)
		e.expect(http.StatusOK, "GET", "/api/topics/news/notifications/7/receipts", alice, "").json(t, &rc)
		if rc != (Receipts{Subscribers: 2, Read: 1}) {
			t.Errorf("receipts of 7 after bob read: %+v", rc)
		}
		e.expect(http.StatusForbidden, "GET", "/api/topics/news/notifications/7/receipts", bob, "")
		e.expect(http.StatusNotFound, "GET", "/api/topics/news/notifications/8/receipts", alice, "")
		e.expect(http.StatusNotFound, "GET", "/api/topics/news/notifications/0/receipts", alice, "")
		e.expect(http.StatusBadRequest, "GET", "/api/topics/news/notifications/x/receipts", alice, "")
		e.expect(http.StatusNotFound, "GET", "/api/topics/none/notifications/1/receipts", alice, "")
	})
}

// TestUnreadExact counts 10,000 unread notifications exactly, then marks
// them read in one statement.
func TestUnreadExact(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{})
		alice, bob := e.user("alice"), e.user("bob")
		e.topic(alice, "flood")
		e.topic(alice, "trickle")
		e.expect(http.StatusCreated, "PUT", "/api/topics/flood/subscription", bob, "")
		e.expect(http.StatusCreated, "PUT", "/api/topics/trickle/subscription", bob, "")
		e.pub.appendMany(t, "flood", 10_000)
		e.publish(alice, "trickle", `{}`)
		in := e.inbox(bob)
		if in.Unread != 10_001 || in.Topics[0].Unread != 10_000 || in.Topics[0].LastSeq != 10_000 {
			t.Fatalf("inbox %+v", in)
		}
		var rc Receipts
		e.expect(http.StatusOK, "GET", "/api/topics/flood/notifications/10000/receipts", alice, "").json(t, &rc)
		if rc != (Receipts{Subscribers: 1, Read: 0}) {
			t.Errorf("receipts %+v", rc)
		}
		e.expect(http.StatusOK, "POST", "/api/read", bob, "")
		if in := e.inbox(bob); in.Unread != 0 || in.Topics[0].ReadSeq != 10_000 || in.Topics[1].ReadSeq != 1 {
			t.Fatalf("inbox after mark-all %+v", in)
		}
		e.expect(http.StatusOK, "GET", "/api/topics/flood/notifications/10000/receipts", alice, "").json(t, &rc)
		if rc != (Receipts{Subscribers: 1, Read: 1}) {
			t.Errorf("receipts %+v", rc)
		}
	})
}

// TestConcurrentReads moves one cursor from many goroutines: it ends at
// the largest seq, never lower.
func TestConcurrentReads(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{})
		alice, bob := e.user("alice"), e.user("bob")
		e.topic(alice, "news")
		e.expect(http.StatusCreated, "PUT", "/api/topics/news/subscription", bob, "")
		e.pub.appendMany(t, "news", 100)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Go(func() {
				if _, err := e.svc.MarkRead(ctx, "bob", "news", uint64(100-i)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		subs, err := e.svc.Subscriptions(ctx, "bob")
		if err != nil || len(subs) != 1 || subs[0].ReadSeq != 100 {
			t.Fatalf("subscriptions %+v %v", subs, err)
		}
	})
}

func TestOnline(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{})
		ctx := context.Background()
		online := func() bool {
			t.Helper()
			ok, err := e.svc.Online(ctx, "bob")
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if online() {
			t.Fatal("online before any connection")
		}
		if err := e.svc.SetOnline(ctx, "bob", "gw1", e.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.SetOnline(ctx, "bob", "gw2", e.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.SetOnline(ctx, "bob", "gw1", e.clock.Now().Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if !online() {
			t.Fatal("offline with two connections")
		}
		if err := e.svc.ClearOnline(ctx, "bob", "gw2"); err != nil {
			t.Fatal(err)
		}
		if !online() {
			t.Fatal("offline with gw1's connection")
		}
		e.clock.Advance(2 * time.Minute)
		if online() {
			t.Fatal("online after the marker expired")
		}
	})
}

func TestHTTPErrors(t *testing.T) {
	e := newTestEnv(t, TestSQLite, Options{})
	alice := e.user("alice")
	r := e.expect(http.StatusMethodNotAllowed, "GET", "/api/users", "", "")
	if r.Header.Get("Allow") != "POST" {
		t.Errorf("Allow %q", r.Header.Get("Allow"))
	}
	r = e.expect(http.StatusMethodNotAllowed, "PATCH", "/api/topics/x/subscription", alice, "")
	if r.Header.Get("Allow") != "DELETE, GET, PUT" {
		t.Errorf("Allow %q", r.Header.Get("Allow"))
	}
	e.expect(http.StatusNotFound, "GET", "/api/nothing", alice, "").errMsg(t)
	e.expect(http.StatusNotFound, "GET", "/api/topics/x/y/z", alice, "").errMsg(t)
	e.expect(http.StatusRequestEntityTooLarge, "POST", "/api/topics", alice, `{"name":"x","description":"`+strings.Repeat("d", maxRequestBytes)+`"}`)
	e.expect(http.StatusUnauthorized, "POST", "/api/topics", "", `{"name":"x"}`)
	e.expect(http.StatusUnauthorized, "DELETE", "/api/tokens/current", "", "")
	// Bearer is case-insensitive; another scheme is not a token.
	req := httptestRequest("GET", "/api/inbox", "")
	req.Header.Set("Authorization", "bearer "+alice)
	if rec := serve(e.h, req); rec.Code != http.StatusOK {
		t.Errorf("lower-case bearer: %d", rec.Code)
	}
	req = httptestRequest("GET", "/api/inbox", "")
	req.Header.Set("Authorization", "Basic "+alice)
	if rec := serve(e.h, req); rec.Code != http.StatusUnauthorized {
		t.Errorf("Basic: %d", rec.Code)
	}
	// A 500 does not leak its cause.
	e.db.SQL.Exec(`DROP TABLE notify_cursors`)
	e.topic(alice, "t")
	r = e.expect(http.StatusInternalServerError, "PUT", "/api/topics/t/subscription", alice, "")
	if msg := r.errMsg(t); msg != "internal error" {
		t.Errorf("500 says %q", msg)
	}
}
