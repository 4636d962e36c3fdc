package email_test

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ringcast/ringcast/cmd/internal/notify"
	"github.com/ringcast/ringcast/cmd/internal/notify/email"
	"github.com/ringcast/ringcast/cmd/internal/notify/notifytest"
	"github.com/ringcast/ringcast/pubsub/store/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }

// TestReminderAfterDelay: a subscriber who has not read a notification
// within the delay gets one email, over STARTTLS with AUTH, with proper
// headers; the topic's creator gets none, and nothing is sent before the
// delay.
func TestReminderAfterDelay(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		f.user("alice", "alice@example.test")
		f.user("bob", "bob@example.test")
		f.topic("alerts", "alice")
		f.subscribe("alice", "alerts")
		f.subscribe("bob", "alerts")
		s := f.sender(nil, f.config())

		seq := f.publish(s, "alerts", `{"text":"disk full on db-1","level":"critical"}`)
		if n := f.count(`SELECT COUNT(*) FROM notify_pending WHERE user_id = 'alice'`); n != 0 {
			t.Fatalf("the creator has %d pending reminders, want 0", n)
		}
		if n := f.count(`SELECT COUNT(*) FROM notify_pending WHERE user_id = 'bob' AND seq = ?`, int64(seq)); n != 1 {
			t.Fatalf("bob has %d pending reminders for #%d, want 1", n, seq)
		}
		// Not due yet: after a few scheduler rounds nothing is queued.
		waitFor(t, "scheduler rounds", func() (bool, string) {
			st, err := s.Stats(context.Background())
			return err == nil && st.Pending == 1 && st.PendingDue == 0, fmt.Sprintf("%+v %v", st, err)
		})
		if len(f.outbox()) != 0 || len(f.smtp.messages()) != 0 {
			t.Fatalf("an email before the delay: outbox %+v", f.outbox())
		}

		f.clock.Advance(time.Hour)
		waitFor(t, "bob's email", func() (bool, string) {
			return len(f.messagesTo("bob@example.test")) == 1, fmt.Sprintf("outbox %+v", f.outbox())
		})
		st := f.waitSettled(s, func(st email.Stats) bool { return st.Sent == 1 && st.Queued == 1 })
		if st.Sent != 1 || st.Outbox[email.StateSent] != 1 || st.Queued != 1 || st.Pending != 0 || st.Breaker != "closed" {
			t.Errorf("stats %+v", st)
		}
		if got := f.messages(); len(got) != 1 {
			t.Fatalf("%d messages, want 1 (to bob only)", len(got))
		}
		m := f.messagesTo("bob@example.test")[0]
		if !m.tls || !m.auth {
			t.Errorf("message came with tls=%v auth=%v, want both", m.tls, m.auth)
		}
		if m.from != "notify@ringcast.test" {
			t.Errorf("envelope sender %q", m.from)
		}
		if m.subject != "New notification in alerts" {
			t.Errorf("subject %q", m.subject)
		}
		from, err := mail.ParseAddress(m.header.Get("From"))
		if err != nil || from.Name != "Ringcast Notifications" || from.Address != "notify@ringcast.test" {
			t.Errorf("From %q: %v", m.header.Get("From"), err)
		}
		if to := m.header.Get("To"); to != "<bob@example.test>" {
			t.Errorf("To %q", to)
		}
		if _, err := m.header.Date(); err != nil {
			t.Errorf("Date %q: %v", m.header.Get("Date"), err)
		}
		if ct := m.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		rows := f.outbox()
		if len(rows) != 1 || rows[0].State != email.StateSent || rows[0].MessageID != m.messageID || rows[0].Attempts != 1 || rows[0].User != "bob" {
			t.Errorf("outbox %+v, message id %q", rows, m.messageID)
		}
		if !strings.HasSuffix(m.messageID, "@ringcast.test") {
			t.Errorf("Message-ID %q", m.messageID)
		}
		for _, want := range []string{"Hello bob", "alerts (1 unread)", fmt.Sprintf("#%d", seq), `{"text":"disk full on db-1","level":"critical"}`, "http://127.0.0.1:8080/"} {
			if !strings.Contains(m.body, want) {
				t.Errorf("body lacks %q:\n%s", want, m.body)
			}
		}
	})
}

// messages is every message the fixture's server accepted.
func (f *fixture) messages() []received { return f.smtp.messages() }

// TestNoEmailWhenRead: a notification read before the delay sends nothing.
func TestNoEmailWhenRead(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		f.user("alice", "alice@example.test")
		f.user("bob", "bob@example.test")
		f.topic("alerts", "alice")
		f.subscribe("bob", "alerts")
		s := f.sender(nil, f.config())
		f.publish(s, "alerts", `"one"`)
		seq := f.publish(s, "alerts", `"two"`)
		f.read("bob", "alerts", seq)
		f.clock.Advance(time.Hour)
		st := f.waitSettled(s, func(st email.Stats) bool { return st.Dropped.Read == 1 })
		if st.Dropped.Read != 1 || st.Pending != 0 || st.Queued != 0 {
			t.Errorf("stats %+v, want one reminder dropped as read", st)
		}
		if len(f.outbox()) != 0 || len(f.messages()) != 0 {
			t.Errorf("an email for a read notification: %+v", f.outbox())
		}
	})
}

// TestNoEmailWhenOnline: a user with a live connection sees notifications
// in real time and gets no email; an expired connection marker does not
// count.
func TestNoEmailWhenOnline(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		f.user("alice", "alice@example.test")
		f.user("bob", "bob@example.test")
		f.user("carol", "carol@example.test")
		f.topic("alerts", "alice")
		f.subscribe("bob", "alerts")
		f.subscribe("carol", "alerts")
		s := f.sender(nil, f.config())
		f.publish(s, "alerts", `"hello"`)
		// Connection markers as they will be once the delay has passed:
		// bob's live, carol's expired.
		f.online("bob", "gw-1", f.clock.Now().Add(time.Hour+time.Minute))
		f.online("carol", "gw-1", f.clock.Now().Add(time.Hour-time.Minute))
		f.clock.Advance(time.Hour)
		waitFor(t, "carol's email", func() (bool, string) {
			return len(f.messagesTo("carol@example.test")) == 1, fmt.Sprintf("outbox %+v", f.outbox())
		})
		st := f.waitSettled(s, func(st email.Stats) bool { return st.Dropped.Online == 1 && st.Sent == 1 })
		if st.Dropped.Online != 1 || st.Sent != 1 {
			t.Errorf("stats %+v, want bob's reminder dropped as online and carol's sent", st)
		}
		if n := len(f.messagesTo("bob@example.test")); n != 0 {
			t.Errorf("bob, online, got %d emails", n)
		}
	})
}

// TestNoAddress: a user known only from a JWT (no notify_users row) is
// counted and dropped; an unsubscribed user is dropped too.
func TestNoAddress(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		f.user("alice", "alice@example.test")
		f.user("dave", "dave@example.test")
		f.topic("alerts", "alice")
		f.subscribe("jwt-user", "alerts")
		f.subscribe("dave", "alerts")
		s := f.sender(nil, f.config())
		f.publish(s, "alerts", `"hello"`)
		f.exec(`DELETE FROM notify_subscriptions WHERE user_id = 'dave'`)
		f.clock.Advance(time.Hour)
		st := f.waitSettled(s, func(st email.Stats) bool { return st.Dropped.NoAddress == 1 && st.Dropped.Unsubscribed == 1 })
		if st.Dropped.NoAddress != 1 || st.Dropped.Unsubscribed != 1 || st.Pending != 0 || st.Queued != 0 {
			t.Errorf("stats %+v", st)
		}
		if len(f.messages()) != 0 {
			t.Errorf("%d emails, want none", len(f.messages()))
		}
	})
}

// TestDigest: a user with several topics pending, or many unread in one,
// gets one digest email that counts them and trims the bodies.
func TestDigest(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		f.user("alice", "alice@example.test")
		f.user("bob", "bob@example.test")
		f.user("carol", "carol@example.test")
		for _, name := range []string{"alerts", "builds", "deploys"} {
			f.topic(name, "alice")
			f.subscribe("bob", name)
		}
		f.subscribe("carol", "alerts")
		s := f.sender(nil, f.config())
		long := strings.Repeat("x", 1000)
		for i := range 4 {
			f.publish(s, "alerts", fmt.Sprintf(`{"n":%d,"text":"%s"}`, i, long))
		}
		f.publish(s, "builds", `"build 17 green"`)
		f.publish(s, "deploys", `"deploy v2 done"`)
		f.clock.Advance(time.Hour)
		waitFor(t, "the digests", func() (bool, string) {
			return len(f.messages()) == 2, fmt.Sprintf("outbox %+v", f.outbox())
		})
		f.waitSettled(s)
		bob := f.messagesTo("bob@example.test")
		if len(bob) != 1 {
			t.Fatalf("bob got %d emails, want one digest", len(bob))
		}
		if bob[0].subject != "6 unread notifications in 3 topics" {
			t.Errorf("bob's subject %q", bob[0].subject)
		}
		for _, want := range []string{"alerts: 4 unread", "builds: 1 unread", "deploys: 1 unread", "build 17 green", "… and 1 more"} {
			if !strings.Contains(bob[0].body, want) {
				t.Errorf("bob's digest lacks %q:\n%s", want, bob[0].body)
			}
		}
		if strings.Contains(bob[0].body, long) {
			t.Errorf("bob's digest has a notification in full:\n%s", bob[0].body)
		}
		carol := f.messagesTo("carol@example.test")
		if len(carol) != 1 || carol[0].subject != "4 unread notifications in 1 topic" {
			t.Fatalf("carol's emails %+v", carol)
		}
	})
}

// TestPerUserCap: beyond PerUserPerHour emails in an hour, reminders wait
// for the window and then merge into one email.
func TestPerUserCap(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		f.user("alice", "alice@example.test")
		f.user("bob", "bob@example.test")
		f.topic("alerts", "alice")
		f.topic("builds", "alice")
		f.subscribe("bob", "alerts")
		f.subscribe("bob", "builds")
		cfg := f.config()
		cfg.PerUserPerHour = 2
		cfg.Delay = time.Minute
		s := f.sender(nil, cfg)
		for i := range 2 {
			f.publish(s, "alerts", fmt.Sprintf(`"alert %d"`, i))
			f.clock.Advance(time.Minute)
			waitFor(t, fmt.Sprintf("email %d", i+1), func() (bool, string) {
				return len(f.messagesTo("bob@example.test")) == i+1, fmt.Sprintf("outbox %+v", f.outbox())
			})
			f.waitSettled(s)
			f.read("bob", "alerts", uint64(i+1))
		}
		// Two emails in the last hour: the next reminders wait.
		f.publish(s, "alerts", `"alert 2"`)
		f.publish(s, "builds", `"build 1"`)
		f.clock.Advance(time.Minute)
		waitFor(t, "the reminders to be postponed", func() (bool, string) {
			st, err := s.Stats(context.Background())
			return err == nil && st.Postponed >= 2 && st.PendingDue == 0, fmt.Sprintf("%+v %v", st, err)
		})
		if n := len(f.messagesTo("bob@example.test")); n != 2 {
			t.Fatalf("bob got %d emails, want 2 (capped)", n)
		}
		var due int64
		if err := f.db.SQL.QueryRow(`SELECT MIN(due_at) FROM notify_pending WHERE user_id = 'bob'`).Scan(&due); err != nil {
			t.Fatal(err)
		}
		rows := f.outbox()
		wantDue := time.Unix(0, rows[0].SentAt).Add(time.Hour)
		if got := time.Unix(0, due); !got.Equal(wantDue) {
			t.Errorf("postponed until %v, want an hour after the oldest email in the window, %v", got, wantDue)
		}
		f.clock.Advance(time.Hour)
		waitFor(t, "the merged email", func() (bool, string) {
			return len(f.messagesTo("bob@example.test")) == 3, fmt.Sprintf("outbox %+v", f.outbox())
		})
		f.waitSettled(s)
		third := f.messagesTo("bob@example.test")[2]
		if third.subject != "2 new notifications in alerts and builds" {
			t.Errorf("merged email's subject %q", third.subject)
		}
		if n := len(f.messagesTo("bob@example.test")); n != 3 {
			t.Errorf("bob got %d emails, want 3", n)
		}
	})
}

// TestServerDown: with the SMTP server gone, sends fail and are retried
// with backoff, the breaker opens and holds the outbox; once the server is
// back on the same address the email is delivered exactly once.
func TestServerDown(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		f.user("alice", "alice@example.test")
		f.user("bob", "bob@example.test")
		f.topic("alerts", "alice")
		f.subscribe("bob", "alerts")
		f.smtp.stop()
		s := f.sender(nil, f.config())
		f.publish(s, "alerts", `"while the server is down"`)
		f.clock.Advance(time.Hour)
		waitFor(t, "the breaker to open", func() (bool, string) {
			st, err := s.Stats(context.Background())
			return err == nil && st.BreakerOpened >= 1 && st.Retries >= 3, fmt.Sprintf("%+v %v", st, err)
		})
		st, err := s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.LastError == "" || st.LastErrorAt.IsZero() || !strings.Contains(st.LastError, "connect") {
			t.Errorf("last error %q at %v", st.LastError, st.LastErrorAt)
		}
		rows := f.outbox()
		if len(rows) != 1 || rows[0].State == email.StateSent || rows[0].Attempts < 3 || rows[0].LastError == "" {
			t.Fatalf("outbox %+v", rows)
		}
		// The breaker holds further attempts while open.
		attempts := rows[0].Attempts
		f.smtp.restart(t)
		waitFor(t, "delivery once the server is back", func() (bool, string) {
			return len(f.messages()) == 1, fmt.Sprintf("outbox %+v", f.outbox())
		})
		st = f.waitSettled(s, func(st email.Stats) bool { return st.Sent == 1 })
		rows = f.outbox()
		if len(rows) != 1 || rows[0].State != email.StateSent || rows[0].Attempts <= attempts-1 || rows[0].LastError != "" {
			t.Errorf("outbox %+v", rows)
		}
		if st.Sent != 1 || st.Breaker != "closed" || st.Failed != 0 {
			t.Errorf("stats %+v", st)
		}
		if m := f.messages(); len(m) != 1 || m[0].messageID != rows[0].MessageID {
			t.Errorf("messages %+v", m)
		}
	})
}

// TestPermanentRejection: a 5xx to RCPT fails the email at once, without
// retries and without opening the breaker; a 4xx is retried.
func TestPermanentRejection(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		f.user("alice", "alice@example.test")
		f.user("bob", "bob@example.test")
		f.user("carol", "carol@example.test")
		f.topic("alerts", "alice")
		f.subscribe("bob", "alerts")
		f.subscribe("carol", "alerts")
		f.smtp.reject("bob@example.test", 550)
		f.smtp.failNext(2)
		s := f.sender(nil, f.config())
		f.publish(s, "alerts", `"hello"`)
		f.clock.Advance(time.Hour)
		waitFor(t, "carol's email after 451s", func() (bool, string) {
			return len(f.messagesTo("carol@example.test")) == 1, fmt.Sprintf("outbox %+v", f.outbox())
		})
		st := f.waitSettled(s, func(st email.Stats) bool { return st.Sent == 1 && st.Failed == 1 })
		var bob, carol outboxRow
		for _, r := range f.outbox() {
			switch r.User {
			case "bob":
				bob = r
			case "carol":
				carol = r
			}
		}
		if bob.State != email.StateFailed || bob.Attempts != 1 || !strings.Contains(bob.LastError, "550") {
			t.Errorf("bob's email %+v, want failed after one attempt with the 550", bob)
		}
		if carol.State != email.StateSent || carol.Attempts < 2 {
			t.Errorf("carol's email %+v, want sent after retries", carol)
		}
		if st.Failed != 1 || st.Sent != 1 || st.Retries < 1 || st.BreakerOpened != 0 || st.Outbox[email.StateFailed] != 1 {
			t.Errorf("stats %+v", st)
		}
		if !strings.Contains(st.LastError, "550") && !strings.Contains(st.LastError, "451") {
			t.Errorf("last error %q", st.LastError)
		}
	})
}

// TestMaxAttempts: an email failing every time is marked failed after
// MaxAttempts sends.
func TestMaxAttempts(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		f.user("alice", "alice@example.test")
		f.user("bob", "bob@example.test")
		f.topic("alerts", "alice")
		f.subscribe("bob", "alerts")
		f.smtp.failNext(1000)
		cfg := f.config()
		cfg.MaxAttempts = 3
		cfg.BreakerFailures = 100
		s := f.sender(nil, cfg)
		f.publish(s, "alerts", `"hello"`)
		f.clock.Advance(time.Hour)
		waitFor(t, "the email to fail", func() (bool, string) {
			rows := f.outbox()
			return len(rows) == 1 && rows[0].State == email.StateFailed, fmt.Sprintf("outbox %+v", rows)
		})
		rows := f.outbox()
		if rows[0].Attempts != 3 || !strings.Contains(rows[0].LastError, "451") {
			t.Errorf("outbox %+v", rows)
		}
		st := f.waitSettled(s, func(st email.Stats) bool { return st.Failed == 1 })
		if st.Failed != 1 || st.Retries != 2 || len(f.messages()) != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

// insertOutbox inserts an email in a given state, as a previous run (or
// another node) left it.
func (f *fixture) insertOutbox(user, messageID, state string, attempts int, nextAt, claimUntil time.Time, claimedBy string, sentAt int64) {
	now := f.clock.Now().UnixNano()
	f.exec(`INSERT INTO notify_outbox (user_id, address, subject, body, message_id, state, attempts, next_at, claimed_by, claim_until, created_at, sent_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		user, user+"@example.test", "subject "+messageID, "body of "+messageID, messageID, state, attempts, nextAt.UnixNano(), claimedBy, claimUntil.UnixNano(), now, sentAt)
}

// TestRestart: a Sender closed mid-way and a new one on the same database,
// with emails in every state: nothing is sent twice, emails already sent
// or failed are never sent, an expired lease is taken over, a live lease
// of another node is respected until it expires.
func TestRestart(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		now := f.clock.Now()
		f.insertOutbox("u-sent", "sent@ringcast.test", email.StateSent, 1, now, time.Unix(0, 0), "", now.UnixNano())
		f.insertOutbox("u-failed", "failed@ringcast.test", email.StateFailed, 12, now, time.Unix(0, 0), "", 0)
		f.insertOutbox("u-later", "later@ringcast.test", email.StatePending, 2, now.Add(2*time.Hour), time.Unix(0, 0), "", 0)
		f.insertOutbox("u-dead", "dead@ringcast.test", email.StateSending, 1, now, now.Add(-time.Second), "dead-node/00000000", 0)
		f.insertOutbox("u-live", "live@ringcast.test", email.StateSending, 1, now, now.Add(2*time.Hour), "other-node/00000000", 0)
		const n = 30
		for i := range n {
			f.insertOutbox(fmt.Sprintf("u%02d", i), fmt.Sprintf("m%02d@ringcast.test", i), email.StatePending, 0, now, time.Unix(0, 0), "", 0)
		}
		f.smtp.delayData(20 * time.Millisecond)
		cfg := f.config()
		cfg.MaxConcurrent = 3
		first, err := email.New(f.db, cfg)
		if err != nil {
			t.Fatal(err)
		}
		first.Start()
		waitFor(t, "a few emails from the first sender", func() (bool, string) {
			return len(f.messages()) >= 5, fmt.Sprintf("%d messages", len(f.messages()))
		})
		first.Close()
		first.Close() // idempotent
		if got := f.count(`SELECT COUNT(*) FROM notify_outbox WHERE state = ? AND claimed_by LIKE 'test/%'`, email.StateSending); got != 0 {
			t.Errorf("%d emails left in state sending by a clean Close", got)
		}
		sentBefore := len(f.messages())
		if sentBefore >= n+1 {
			t.Logf("the first sender finished everything (%d) before Close", sentBefore)
		}
		second := f.sender(nil, cfg)
		waitFor(t, "the second sender to finish", func() (bool, string) {
			return len(f.messages()) == n+1, fmt.Sprintf("%d messages, outbox %+v", len(f.messages()), f.outbox())
		})
		f.waitSettledExcept(second, 2) // u-later pending, u-live sending
		seen := map[string]int{}
		for _, m := range f.messages() {
			seen[m.messageID]++
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("%s sent %d times", id, c)
			}
		}
		for _, id := range []string{"sent@ringcast.test", "failed@ringcast.test", "later@ringcast.test", "live@ringcast.test"} {
			if seen[id] != 0 {
				t.Errorf("%s sent, want not (yet)", id)
			}
		}
		if seen["dead@ringcast.test"] != 1 {
			t.Errorf("the email of an expired lease was not taken over")
		}
		// Once the live lease expires and the later email is due, each goes
		// out once.
		f.clock.Advance(3 * time.Hour)
		waitFor(t, "the last two emails", func() (bool, string) {
			return len(f.messages()) == n+3, fmt.Sprintf("%d messages", len(f.messages()))
		})
		f.waitSettled(second)
		seen = map[string]int{}
		for _, m := range f.messages() {
			seen[m.messageID]++
		}
		if len(seen) != n+3 || seen["later@ringcast.test"] != 1 || seen["live@ringcast.test"] != 1 {
			t.Errorf("sent %v", seen)
		}
		if got := f.count(`SELECT COUNT(*) FROM notify_outbox WHERE state = ?`, email.StateSent); got != n+4 {
			t.Errorf("%d emails sent in the outbox, want %d", got, n+4)
		}
	})
}

// waitSettledExcept waits until only rest emails remain pending or sending
// and none is in flight.
func (f *fixture) waitSettledExcept(s *email.Sender, rest int64) {
	f.t.Helper()
	waitFor(f.t, "the sender to settle", func() (bool, string) {
		st, err := s.Stats(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return st.Outbox[email.StatePending]+st.Outbox[email.StateSending] == rest && st.InFlight == 0, fmt.Sprintf("%+v", st)
	})
}

// TestTwoSenders: two Senders (two nodes) on one database, each with its
// own connection pool: every email is sent once, every user gets one.
func TestTwoSenders(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		const users = 24
		f.user("alice", "alice@example.test")
		f.topic("alerts", "alice")
		f.topic("builds", "alice")
		for i := range users {
			u := fmt.Sprintf("user%02d", i)
			f.user(u, u+"@example.test")
			f.subscribe(u, "alerts")
			if i%2 == 0 {
				f.subscribe(u, "builds")
			}
		}
		db2, err := notify.OpenDB(context.Background(), f.spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db2.Close() })
		f.smtp.delayData(5 * time.Millisecond)
		cfgA, cfgB := f.config(), f.config()
		cfgA.Node, cfgB.Node = "node-a", "node-b"
		cfgA.MaxConcurrent, cfgB.MaxConcurrent = 2, 2
		a := f.sender(nil, cfgA)
		b := f.sender(db2, cfgB)
		// Through the core's non-blocking hook, on either node.
		for i := range 3 {
			a.OnNotify("alerts", f.commit("alerts", fmt.Sprintf(`"alert %d"`, i)))
		}
		b.OnNotify("builds", f.commit("builds", `"build 1"`))
		// Every hook call recorded (the last seq of each topic), before the
		// clock makes them due: a reminder recorded after its user's email
		// would be a new reminder.
		waitFor(t, "the reminders", func() (bool, string) {
			n := f.count(`SELECT COUNT(*) FROM notify_pending WHERE (topic = 'alerts' AND seq = 3) OR (topic = 'builds' AND seq = 1)`)
			return n == users+users/2, fmt.Sprintf("%d pending", n)
		})
		f.clock.Advance(time.Hour)
		waitFor(t, "every user's email", func() (bool, string) {
			return len(f.messages()) >= users, fmt.Sprintf("%d messages", len(f.messages()))
		})
		var sa, sb email.Stats
		waitFor(t, "both senders to settle", func() (bool, string) {
			sa, sb = f.waitSettled(a), f.waitSettled(b)
			return sa.Sent+sb.Sent == users && sa.Queued+sb.Queued == users, fmt.Sprintf("%+v %+v", sa, sb)
		})
		perUser := map[string]int{}
		perID := map[string]int{}
		for _, m := range f.messages() {
			perUser[m.to]++
			perID[m.messageID]++
		}
		if len(f.messages()) != users || len(perUser) != users || len(perID) != users {
			t.Errorf("%d messages to %d users with %d ids, want %d each", len(f.messages()), len(perUser), len(perID), users)
		}
		if sa.Sent+sb.Sent != users || sa.Queued+sb.Queued != users {
			t.Errorf("sent %d+%d, queued %d+%d, want %d in all", sa.Sent, sb.Sent, sa.Queued, sb.Queued, users)
		}
		t.Logf("node-a sent %d and queued %d, node-b sent %d and queued %d", sa.Sent, sa.Queued, sb.Sent, sb.Queued)
	})
}

// TestOnNotify: the hook never blocks, merges a topic's notifications into
// its greatest seq, and what it took before Close is recorded by Close,
// even on a Sender never started.
func TestOnNotify(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		f.user("alice", "alice@example.test")
		f.user("bob", "bob@example.test")
		f.topic("alerts", "alice")
		f.topic("builds", "alice")
		f.subscribe("bob", "alerts")
		f.subscribe("bob", "builds")
		s, err := email.New(f.db, f.config())
		if err != nil {
			t.Fatal(err)
		}
		for _, seq := range []uint64{1, 3, 2} {
			s.OnNotify("alerts", seq)
		}
		s.OnNotify("builds", 7)
		s.OnNotify("", 1) // ignored
		if n := f.count(`SELECT COUNT(*) FROM notify_pending`); n != 0 {
			t.Fatalf("%d reminders recorded before the Sender runs", n)
		}
		s.Close()
		for topic, want := range map[string]int64{"alerts": 3, "builds": 7} {
			if got := f.count(`SELECT seq FROM notify_pending WHERE user_id = 'bob' AND topic = ?`, topic); got != want {
				t.Errorf("bob's reminder for %s has seq %d, want %d", topic, got, want)
			}
		}
		// Notified keeps the earliest due time and the greatest seq.
		var due1, due2 int64
		if err := f.db.SQL.QueryRow(f.db.Rebind(`SELECT due_at FROM notify_pending WHERE topic = ?`), "alerts").Scan(&due1); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		s2 := f.sender(nil, f.config())
		if err := s2.Notified(context.Background(), "alerts", 2); err != nil {
			t.Fatal(err)
		}
		if err := f.db.SQL.QueryRow(f.db.Rebind(`SELECT due_at FROM notify_pending WHERE topic = ?`), "alerts").Scan(&due2); err != nil {
			t.Fatal(err)
		}
		if due2 != due1 || f.count(`SELECT seq FROM notify_pending WHERE topic = 'alerts'`) != 3 {
			t.Errorf("after an older Notified: due %d (was %d), seq %d", due2, due1, f.count(`SELECT seq FROM notify_pending WHERE topic = 'alerts'`))
		}
		if err := s2.Notified(context.Background(), "alerts", 0); err == nil {
			t.Error("Notified with seq 0 succeeded")
		}
	})
}

// TestTLSModes: each TLS mode against servers with and without STARTTLS,
// with implicit TLS, and credentials the server refuses. A mode the
// server cannot satisfy, or refused credentials, fail the send with a
// clear error and are retried (a configuration problem, not the email's).
func TestTLSModes(t *testing.T) {
	type want struct {
		delivered bool
		tls       bool
		err       string // in the last error when not delivered
	}
	for _, tc := range []struct {
		name   string
		server func(*smtpServer)
		config func(*email.Config)
		want   want
	}{
		{"auto with STARTTLS", nil, func(c *email.Config) { c.TLS = email.TLSAuto }, want{delivered: true, tls: true}},
		{"auto without STARTTLS", func(s *smtpServer) { s.noTLS, s.open = true, true },
			func(c *email.Config) { c.TLS, c.Username, c.Password = email.TLSAuto, "", "" }, want{delivered: true}},
		{"require without STARTTLS", func(s *smtpServer) { s.noTLS, s.open = true, true },
			func(c *email.Config) { c.TLS, c.Username, c.Password = email.TLSRequire, "", "" }, want{err: "does not offer STARTTLS"}},
		{"implicit TLS", func(s *smtpServer) { s.implicit = true }, func(c *email.Config) { c.TLS = email.TLSImplicit }, want{delivered: true, tls: true}},
		{"none with credentials", nil, func(c *email.Config) { c.TLS = email.TLSNone }, want{err: "does not offer AUTH"}},
		{"none without credentials", func(s *smtpServer) { s.open = true },
			func(c *email.Config) { c.TLS, c.Username, c.Password = email.TLSNone, "", "" }, want{delivered: true}},
		{"wrong password", nil, func(c *email.Config) { c.Password = "wrong" }, want{err: "535"}},
		{"untrusted certificate", nil, func(c *email.Config) { c.TLSConfig = nil }, want{err: "certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, notifytest.SQLite)
			if tc.server != nil {
				f.smtp.stop()
				srv := newSMTP(t)
				tc.server(srv)
				srv.start(t, "127.0.0.1:0")
				f.smtp = srv
			}
			cfg := f.config()
			cfg.BreakerFailures = 100
			tc.config(&cfg)
			f.user("alice", "alice@example.test")
			f.user("bob", "bob@example.test")
			f.topic("alerts", "alice")
			f.subscribe("bob", "alerts")
			s := f.sender(nil, cfg)
			f.publish(s, "alerts", `"hello"`)
			f.clock.Advance(time.Hour)
			if tc.want.delivered {
				waitFor(t, "the email", func() (bool, string) {
					return len(f.messages()) == 1, fmt.Sprintf("outbox %+v", f.outbox())
				})
				if m := f.messages()[0]; m.tls != tc.want.tls {
					t.Errorf("delivered with tls=%v, want %v", m.tls, tc.want.tls)
				}
				return
			}
			waitFor(t, "retries", func() (bool, string) {
				rows := f.outbox()
				return len(rows) == 1 && rows[0].Attempts >= 2 && rows[0].State != email.StateFailed && strings.Contains(rows[0].LastError, tc.want.err),
					fmt.Sprintf("outbox %+v", rows)
			})
			if len(f.messages()) != 0 {
				t.Errorf("delivered %d messages", len(f.messages()))
			}
		})
	}
}

// TestWithService: the Sender wired to the core as the binaries wire it
// (notify.Options.OnNotify = Sender.OnNotify, SetOnline for live
// connections): a creator publishes, an online subscriber gets no email,
// an offline one does, a reader gets none.
func TestWithService(t *testing.T) {
	forDialects(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		s := f.sender(nil, f.config())
		pub := notify.PublisherFunc(func(ctx context.Context, topic string, data []byte) (uint64, uint64, error) {
			if !strings.HasPrefix(topic, "notifications:") {
				return 1, 1, nil // control events: memory only
			}
			return 1, f.commit(strings.TrimPrefix(topic, "notifications:"), string(data)), nil
		})
		svc := notify.NewService(f.db, pub, notify.Options{BcryptCost: 4, Clock: f.clock.Now, OnNotify: s.OnNotify})
		for _, u := range []string{"alice", "bob", "carol", "dave"} {
			if err := svc.CreateUser(ctx, u, u+"@example.test", "password-"+u); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := svc.CreateTopic(ctx, "alice", "deploys", "deployments"); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"alice", "bob", "carol", "dave"} {
			if _, _, err := svc.Subscribe(ctx, u, "deploys"); err != nil {
				t.Fatal(err)
			}
		}
		if err := svc.SetOnline(ctx, "bob", "gw-1", f.clock.Now().Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		p, err := svc.Publish(ctx, "alice", "deploys", []byte(`{"text":"v2.1 is live"}`))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the reminders", func() (bool, string) {
			n := f.count(`SELECT COUNT(*) FROM notify_pending`)
			return n == 3, fmt.Sprintf("%d pending (want bob, carol, dave)", n)
		})
		if _, err := svc.MarkRead(ctx, "dave", "deploys", p.Seq); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Hour)
		waitFor(t, "carol's email", func() (bool, string) {
			return len(f.messagesTo("carol@example.test")) == 1, fmt.Sprintf("outbox %+v", f.outbox())
		})
		st := f.waitSettled(s, func(st email.Stats) bool { return st.Sent == 1 && st.Dropped.Online == 1 && st.Dropped.Read == 1 })
		if len(f.messages()) != 1 {
			t.Errorf("%d emails, want carol's only; stats %+v", len(f.messages()), st)
		}
		if m := f.messagesTo("carol@example.test")[0]; !strings.Contains(m.body, "v2.1 is live") || m.subject != "New notification in deploys" {
			t.Errorf("carol's email %q:\n%s", m.subject, m.body)
		}
	})
}
