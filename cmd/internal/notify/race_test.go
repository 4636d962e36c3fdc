package notify

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestSubscribeDeleteRace subscribes, reads and unsubscribes while the
// topic is deleted: every call succeeds or finds nothing (never a 500),
// and no subscription or cursor outlives the topic.
func TestSubscribeDeleteRace(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{})
		alice := e.user("alice")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for round := range 5 {
			name := "race" + strconv.Itoa(round)
			e.topic(alice, name)
			e.publish(alice, name, `{}`)
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for i := range 8 {
				user := "u" + strconv.Itoa(i)
				wg.Go(func() {
					if _, _, err := e.svc.Subscribe(ctx, user, name); err != nil {
						errs <- err
						return
					}
					if _, err := e.svc.MarkRead(ctx, user, name, 1); err != nil {
						errs <- err
					}
					if i%2 == 0 {
						if err := e.svc.Unsubscribe(ctx, user, name); err != nil {
							errs <- err
						}
					}
				})
			}
			var delErr error
			wg.Go(func() { delErr = e.svc.DeleteTopic(ctx, "alice", name) })
			wg.Wait()
			if delErr != nil {
				t.Fatalf("round %d: DeleteTopic: %v", round, delErr)
			}
			close(errs)
			for err := range errs {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("round %d: %v", round, err)
				}
			}
			for _, table := range []string{"notify_subscriptions", "notify_cursors"} {
				var n int
				if err := e.db.SQL.QueryRow(e.db.Rebind(`SELECT count(*) FROM `+table+` WHERE topic = ?`), name).Scan(&n); err != nil || n != 0 {
					t.Errorf("round %d: %s: %d rows outlive the topic (%v)", round, table, n, err)
				}
			}
		}
	})
}

// TestStaleCursorReset: a cursor left without a subscription does not
// survive a new subscription, which starts at the head.
func TestStaleCursorReset(t *testing.T) {
	forDialects(t, func(t *testing.T, dialect string) {
		e := newTestEnv(t, dialect, Options{})
		alice, bob := e.user("alice"), e.user("bob")
		e.topic(alice, "news")
		for range 4 {
			e.publish(alice, "news", `{}`)
		}
		if _, err := e.db.SQL.Exec(e.db.Rebind(`INSERT INTO notify_cursors (user_id, topic, read_seq, updated_at) VALUES (?, ?, ?, ?)`), "bob", "news", 1, 0); err != nil {
			t.Fatal(err)
		}
		var st TopicState
		e.expect(http.StatusCreated, "PUT", "/api/topics/news/subscription", bob, "").json(t, &st)
		if st.ReadSeq != 4 || st.Unread != 0 {
			t.Errorf("new subscription %+v", st)
		}
	})
}
