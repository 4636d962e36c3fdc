package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/pgtest"
)

func TestMigrateIdempotent(t *testing.T) {
	forDialects(t, func(t *testing.T, d string) {
		db := OpenTestDB(t, d)
		ctx := context.Background()
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		var v string
		if err := db.SQL.QueryRowContext(ctx, db.Rebind(`SELECT value FROM ringcast_meta WHERE key = ?`), schemaKey).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "1" {
			t.Fatalf("schema version %q", v)
		}
		for _, table := range []string{"notify_users", "notify_tokens", "notify_topics", "notify_subscriptions", "notify_cursors", "notify_online", "notify_pending", "notify_outbox"} {
			if _, err := db.SQL.ExecContext(ctx, "SELECT count(*) FROM "+table); err != nil {
				t.Errorf("%s: %v", table, err)
			}
		}
		// The outbox's identity column numbers rows by itself.
		for i := range 2 {
			if _, err := db.SQL.ExecContext(ctx, db.Rebind(`INSERT INTO notify_outbox (user_id, address, subject, body, message_id, state, next_at, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), "bob", "bob@example.com", "s", "b", "m"+itoa(uint64(i)), "pending", 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		var maxID int64
		if err := db.SQL.QueryRowContext(ctx, `SELECT max(id) FROM notify_outbox`).Scan(&maxID); err != nil || maxID != 2 {
			t.Errorf("outbox ids up to %d (%v)", maxID, err)
		}

		// A newer schema is refused, and left as it is.
		if _, err := db.SQL.ExecContext(ctx, db.Rebind(`UPDATE ringcast_meta SET value = '99' WHERE key = ?`), schemaKey); err != nil {
			t.Fatal(err)
		}
		err := db.Migrate(ctx)
		wantErr(t, err, ErrSchema)
		if !strings.Contains(err.Error(), "99") {
			t.Errorf("error %q does not name the version", err)
		}
		if err := db.SQL.QueryRowContext(ctx, db.Rebind(`SELECT value FROM ringcast_meta WHERE key = ?`), schemaKey).Scan(&v); err != nil || v != "99" {
			t.Errorf("version now %q (%v)", v, err)
		}
	})
}

func TestMigrateConcurrent(t *testing.T) {
	forDialects(t, func(t *testing.T, d string) {
		_, spec := OpenTestDBSpec(t, d)
		// Drop the tables and migrate from several DBs at once.
		ctx := context.Background()
		var dbs []*DB
		for range 4 {
			var db *DB
			var err error
			if d == TestSQLite {
				db, err = openSQLite(spec)
			} else {
				db, err = openPostgres(spec)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			dbs = append(dbs, db)
		}
		for _, stmt := range []string{"DROP TABLE notify_tokens", "DROP TABLE notify_users", "DROP TABLE notify_subscriptions",
			"DROP TABLE notify_topics", "DROP TABLE notify_cursors", "DROP TABLE notify_online", "DROP TABLE notify_pending", "DROP TABLE notify_outbox"} {
			if _, err := dbs[0].SQL.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := dbs[0].SQL.ExecContext(ctx, dbs[0].Rebind(`DELETE FROM ringcast_meta WHERE key = ?`), schemaKey); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, len(dbs))
		for _, db := range dbs {
			go func() { errs <- db.Migrate(ctx) }()
		}
		for range dbs {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

func TestOpenDB(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, spec := range []string{filepath.Join(dir, "a.db"), "sqlite:" + filepath.Join(dir, "b.db"), "sqlite://" + filepath.Join(dir, "c.db")} {
		db, err := OpenDB(ctx, spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if db.Dialect != SQLite {
			t.Errorf("%s: dialect %v", spec, db.Dialect)
		}
		var fk int
		if err := db.SQL.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
			t.Errorf("%s: foreign_keys %d (%v)", spec, fk, err)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
		// Open again: nothing to migrate.
		db, err = OpenDB(ctx, spec)
		if err != nil {
			t.Fatalf("%s again: %v", spec, err)
		}
		db.Close()
	}
	for spec, want := range map[string]string{
		"":                  "empty",
		"memory":            "needs a database",
		"mysql://x":         "unknown store scheme",
		"sqlite:":           "without a path",
		"postgres://u:pw@:": "",
	} {
		db, err := OpenDB(ctx, spec)
		if err == nil {
			db.Close()
			t.Errorf("%q opened", spec)
			continue
		}
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "pw") {
			t.Errorf("%q: %v", spec, err)
		}
	}
	// Another application's SQLite file is refused by the store, untouched.
	other := filepath.Join(dir, "other.db")
	raw, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TABLE accounts (id INTEGER)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := OpenDB(ctx, other); !errors.Is(err, store.ErrNotRingcast) {
		t.Errorf("another application's file: %v", err)
	}

	// PostgreSQL.
	url := pgtest.Shared(t).NewDatabase(t)
	db, err := OpenDB(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Dialect != Postgres {
		t.Errorf("dialect %v", db.Dialect)
	}
	if err := db.SQL.PingContext(ctx); err != nil {
		t.Error(err)
	}
}

func TestMigrateWithoutStore(t *testing.T) {
	db, err := openSQLite(filepath.Join(t.TempDir(), "bare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wantErr(t, db.Migrate(context.Background()), ErrSchema)
}

func TestRebind(t *testing.T) {
	pg := &DB{Dialect: Postgres}
	for in, want := range map[string]string{
		`SELECT ? , ?`:                         `SELECT $1 , $2`,
		`SELECT '?' || ?`:                      `SELECT '?' || $1`,
		`SELECT 'it''s ?', ?`:                  `SELECT 'it''s ?', $1`,
		`SELECT "a?b" FROM t WHERE x = ?`:      `SELECT "a?b" FROM t WHERE x = $1`,
		"SELECT ? -- what?\n, ?":               "SELECT $1 -- what?\n, $2",
		`SELECT 1`:                             `SELECT 1`,
		`SELECT 'unterminated ?`:               `SELECT 'unterminated ?`,
		`INSERT INTO t VALUES (?, ?, ?, ?, ?)`: `INSERT INTO t VALUES ($1, $2, $3, $4, $5)`,
	} {
		if got := pg.Rebind(in); got != want {
			t.Errorf("Rebind(%q) = %q, want %q", in, got, want)
		}
	}
	lite := &DB{Dialect: SQLite}
	if got := lite.Rebind(`SELECT ?`); got != `SELECT ?` {
		t.Errorf("SQLite: %q", got)
	}
	for _, s := range []string{"sqlite", "postgres", "PostgreSQL"} {
		if _, err := ParseDialect(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseDialect("mysql"); err == nil {
		t.Error("mysql parsed")
	}
	if SQLite.String() != "sqlite" || Postgres.String() != "postgres" {
		t.Error("Dialect.String")
	}
}

func TestControlEventJSON(t *testing.T) {
	for _, c := range []struct {
		ev   ControlEvent
		wire string
	}{
		{ControlEvent{Type: EventRead, Topic: "news", ReadSeq: 7}, `{"type":"read","topic":"news","read_seq":7}`},
		{ControlEvent{Type: EventSubscribed, Topic: "news", ReadSeq: 0}, `{"type":"subscribed","topic":"news","read_seq":0}`},
		{ControlEvent{Type: EventUnsubscribed, Topic: "news"}, `{"type":"unsubscribed","topic":"news"}`},
		{ControlEvent{Type: EventReadAll}, `{"type":"read_all"}`},
	} {
		b, err := json.Marshal(c.ev)
		if err != nil || string(b) != c.wire {
			t.Errorf("%+v: %s %v, want %s", c.ev, b, err, c.wire)
		}
		back, err := ParseControlEvent(b)
		if err != nil || back != c.ev {
			t.Errorf("%s: %+v %v", b, back, err)
		}
	}
	for _, bad := range []string{`{"type":"read","topic":"news"}`, `{"type":"subscribed","read_seq":1}`, `{"type":"unsubscribed"}`, `{"type":"other"}`, `[]`} {
		if _, err := ParseControlEvent([]byte(bad)); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
	if _, err := json.Marshal(ControlEvent{Type: "other"}); err == nil {
		t.Error("an unknown type marshalled")
	}
	if RingTopic("news") != "notifications:news" || UserTopic("bob") != "users:bob" {
		t.Error("topic names")
	}
	if name, ok := TopicFromRing("notifications:news"); !ok || name != "news" {
		t.Error("TopicFromRing")
	}
	if _, ok := TopicFromRing("users:bob"); ok {
		t.Error("TopicFromRing of a user topic")
	}
}
