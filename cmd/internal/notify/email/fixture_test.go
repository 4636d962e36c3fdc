package email_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcast/ringcast/cmd/internal/notify"
	"github.com/ringcast/ringcast/cmd/internal/notify/email"
	"github.com/ringcast/ringcast/cmd/internal/notify/notifytest"
	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/postgres"
	"github.com/ringcast/ringcast/pubsub/store/sqlite"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 20 * time.Second

// testClock is the wall clock moved forward by Advance: the Sender's
// database times come from it, so a test skips the reminder delay or the
// per-user cap's hour without sleeping.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// fixture is a database with the ringcast store's tables and the notify
// tables, a store to commit notifications with, a clock and an SMTP
// server.
type fixture struct {
	t       *testing.T
	dialect string
	spec    string
	db      *notify.DB
	store   store.Store
	clock   *testClock
	smtp    *smtpServer

	mu     sync.Mutex
	leases map[string]store.Lease // ringcast topic → claim
}

// newFixture prepares a fixture on dialect ("sqlite" or "postgres") with a
// running SMTP server.
func newFixture(t *testing.T, dialect string) *fixture {
	t.Helper()
	db, spec := notifytest.OpenDB(t, dialect, notify.OpenDB)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var st store.Store
	var err error
	switch dialect {
	case notifytest.SQLite:
		st, err = sqlite.Open(ctx, spec, sqlite.Options{})
	default:
		st, err = postgres.Open(ctx, spec, postgres.Options{})
	}
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{
		t:       t,
		dialect: dialect,
		spec:    spec,
		db:      db,
		store:   st,
		clock:   &testClock{},
		smtp:    startSMTP(t),
		leases:  map[string]store.Lease{},
	}
}

// config is a Sender configuration for tests: the fixture's server and
// clock, an hour's delay (tests Advance the clock past it), short polls
// and backoffs.
func (f *fixture) config() email.Config {
	return email.Config{
		Addr:            f.smtp.addr,
		Username:        smtpUser,
		Password:        smtpPassword,
		From:            "Ringcast Notifications <notify@ringcast.test>",
		TLS:             email.TLSRequire,
		TLSConfig:       f.smtp.clientTLS,
		Delay:           time.Hour,
		PollInterval:    10 * time.Millisecond,
		BackoffMin:      20 * time.Millisecond,
		BackoffMax:      200 * time.Millisecond,
		BreakerFailures: 3,
		BreakerTimeout:  300 * time.Millisecond,
		SendTimeout:     10 * time.Second,
		Node:            "test",
		Link:            "http://127.0.0.1:8080/",
		Logger:          testLogger(f.t),
		Clock:           f.clock.Now,
	}
}

// sender starts a Sender with cfg on db (the fixture's when nil), closed
// when the test ends.
func (f *fixture) sender(db *notify.DB, cfg email.Config) *email.Sender {
	f.t.Helper()
	if db == nil {
		db = f.db
	}
	s, err := email.New(db, cfg)
	if err != nil {
		f.t.Fatalf("email.New: %v", err)
	}
	s.Start()
	f.t.Cleanup(func() { s.Close() })
	return s
}

func (f *fixture) exec(query string, args ...any) {
	f.t.Helper()
	if _, err := f.db.SQL.ExecContext(context.Background(), f.db.Rebind(query), args...); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
}

// user creates an account with an email address.
func (f *fixture) user(id, address string) {
	f.exec(`INSERT INTO notify_users (id, email, password_hash, created_at) VALUES (?, ?, 'x', ?)`, id, address, f.clock.Now().UnixNano())
}

// topic creates a notification topic owned by creator.
func (f *fixture) topic(name, creator string) {
	f.t.Helper()
	f.exec(`INSERT INTO notify_topics (name, creator, created_at) VALUES (?, ?, ?)`, name, creator, f.clock.Now().UnixNano())
	lease, err := f.store.Claim(context.Background(), "notifications:"+name, "test-node", 1)
	if err != nil {
		f.t.Fatalf("claim %s: %v", name, err)
	}
	f.mu.Lock()
	f.leases["notifications:"+name] = lease
	f.mu.Unlock()
}

// subscribe subscribes user to topic, with a cursor at the topic's head.
func (f *fixture) subscribe(user, topic string) {
	now := f.clock.Now().UnixNano()
	f.exec(`INSERT INTO notify_subscriptions (user_id, topic, created_at) VALUES (?, ?, ?)`, user, topic, now)
	f.mu.Lock()
	head := f.leases["notifications:"+topic].Seq
	f.mu.Unlock()
	f.exec(`INSERT INTO notify_cursors (user_id, topic, read_seq, updated_at) VALUES (?, ?, ?, ?)`, user, topic, int64(head), now)
}

// publish commits a notification to topic's ringcast topic in the store
// and tells the sender with Notified; it returns its seq.
func (f *fixture) publish(s *email.Sender, topic, body string) uint64 {
	f.t.Helper()
	seq := f.commit(topic, body)
	if err := s.Notified(context.Background(), topic, seq); err != nil {
		f.t.Fatalf("Notified(%s, %d): %v", topic, seq, err)
	}
	return seq
}

// commit commits a notification to topic's ringcast topic in the store,
// as the core does, and returns its seq.
func (f *fixture) commit(topic, body string) uint64 {
	f.t.Helper()
	ring := "notifications:" + topic
	f.mu.Lock()
	lease, ok := f.leases[ring]
	if !ok {
		var err error
		if lease, err = f.store.Claim(context.Background(), ring, "test-node", 1); err != nil {
			f.mu.Unlock()
			f.t.Fatalf("claim %s: %v", ring, err)
		}
	}
	seq := lease.Seq + 1
	lease.Seq = seq
	f.leases[ring] = lease
	f.mu.Unlock()
	results, err := f.store.Append(context.Background(), []store.Append{{
		Topic: ring, Token: lease.Token,
		Messages: []store.Message{{Seq: seq, Time: f.clock.Now().UnixNano(), Data: []byte(body)}},
	}})
	if err == nil {
		err = results[0]
	}
	if err != nil {
		f.t.Fatalf("append to %s: %v", ring, err)
	}
	return seq
}

// read moves user's cursor on topic to seq.
func (f *fixture) read(user, topic string, seq uint64) {
	f.exec(`UPDATE notify_cursors SET read_seq = ?, updated_at = ? WHERE user_id = ? AND topic = ?`, int64(seq), f.clock.Now().UnixNano(), user, topic)
}

// online marks user connected on node until until.
func (f *fixture) online(user, node string, until time.Time) {
	f.exec(`INSERT INTO notify_online (user_id, node, until) VALUES (?, ?, ?)`, user, node, until.UnixNano())
}

// count runs a COUNT query.
func (f *fixture) count(query string, args ...any) int64 {
	f.t.Helper()
	var n int64
	if err := f.db.SQL.QueryRowContext(context.Background(), f.db.Rebind(query), args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// outboxRow is a row of notify_outbox as tests see it.
type outboxRow struct {
	ID        int64
	User      string
	State     string
	Attempts  int
	MessageID string
	LastError string
	NextAt    int64
	SentAt    int64
}

// outbox returns the outbox rows in id order.
func (f *fixture) outbox() []outboxRow {
	f.t.Helper()
	rows, err := f.db.SQL.QueryContext(context.Background(), `SELECT id, user_id, state, attempts, message_id, last_error, next_at, sent_at FROM notify_outbox ORDER BY id`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		if err := rows.Scan(&r.ID, &r.User, &r.State, &r.Attempts, &r.MessageID, &r.LastError, &r.NextAt, &r.SentAt); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds, failing the test after waitTimeout
// with cond's last description.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last state: %s", waitTimeout, what, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSettled waits until no reminder is due and no email is pending or
// being sent (nothing more can be sent until the clock moves), and until
// the Sender's stats satisfy want, when given (its counters are updated
// just after the database).
func (f *fixture) waitSettled(s *email.Sender, want ...func(email.Stats) bool) email.Stats {
	f.t.Helper()
	var st email.Stats
	waitFor(f.t, "the sender to settle", func() (bool, string) {
		var err error
		st, err = s.Stats(context.Background())
		if err != nil {
			return false, err.Error()
		}
		ok := st.PendingDue == 0 && st.Outbox[email.StatePending] == 0 && st.Outbox[email.StateSending] == 0 && st.InFlight == 0
		for _, w := range want {
			ok = ok && w(st)
		}
		return ok, fmt.Sprintf("%+v", st)
	})
	return st
}

// messagesTo returns the messages the server accepted for address.
func (f *fixture) messagesTo(address string) []received {
	var out []received
	for _, m := range f.smtp.messages() {
		if m.to == address {
			out = append(out, m)
		}
	}
	return out
}

// forDialects runs fn as a subtest per test dialect.
func forDialects(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, d := range notifytest.Dialects {
		t.Run(d, func(t *testing.T) { fn(t, newFixture(t, d)) })
	}
}

// testLogger logs to the test at debug level when RINGCAST_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("RINGCAST_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
