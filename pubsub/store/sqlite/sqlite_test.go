package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/storetest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	goleak.VerifyTestMain(m)
}

func openFile(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "ringcast.db")
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openFile(t, tempPath(t), Options{})
	})
}

func TestConformanceShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		path := tempPath(t)
		return openFile(t, path, Options{}), openFile(t, path, Options{})
	})
}

// TestConformanceNormal runs the suite with synchronous=normal, the
// faster setting.
func TestConformanceNormal(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openFile(t, tempPath(t), Options{Synchronous: "normal", ReadConns: 1})
	})
}

// rawDB opens the file with the driver directly, as another application
// would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func execAll(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	random := make([]byte, 8192)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	cases := []struct {
		name   string
		make   func(t *testing.T, path string)
		reason string
	}{
		{"random bytes", func(t *testing.T, path string) {
			writeFile(t, path, random)
		}, "not an SQLite database"},
		{"text file", func(t *testing.T, path string) {
			writeFile(t, path, []byte("topic,seq\norders,1\norders,2\n"))
		}, "not an SQLite database"},
		{"short file", func(t *testing.T, path string) {
			writeFile(t, path, []byte("x"))
		}, "not an SQLite database"},
		{"another application's tables", func(t *testing.T, path string) {
			execAll(t, rawDB(t, path), `CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)`,
				`INSERT INTO accounts (name) VALUES ('alice')`)
		}, "tables accounts, no ringcast_meta"},
		{"another application's id", func(t *testing.T, path string) {
			execAll(t, rawDB(t, path), `PRAGMA application_id = 1234`, `CREATE TABLE ringcast_meta (key TEXT PRIMARY KEY, value TEXT)`)
		}, "application_id 0x000004d2"},
		{"another application in ringcast_meta", func(t *testing.T, path string) {
			execAll(t, rawDB(t, path), `CREATE TABLE ringcast_meta (key TEXT PRIMARY KEY, value TEXT)`,
				`INSERT INTO ringcast_meta VALUES ('application', 'other'), ('schema_version', '1')`)
		}, `application "other"`},
		{"newer schema", func(t *testing.T, path string) {
			s, err := Open(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			l, err := s.Claim(t.Context(), "t", "n", 1)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(t.Context(), []store.Append{{Topic: "t", Token: l.Token, Messages: []store.Message{{Seq: 1, Data: []byte("x")}}}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db := rawDB(t, path)
			execAll(t, db, `UPDATE ringcast_meta SET value = '99' WHERE key = 'schema_version'`)
			db.Close()
		}, fmt.Sprintf("schema version 99 is newer than the newest this build knows (%d)", schemaVersion)},
		{"unreadable schema version", func(t *testing.T, path string) {
			execAll(t, rawDB(t, path), `CREATE TABLE ringcast_meta (key TEXT PRIMARY KEY, value TEXT)`,
				`INSERT INTO ringcast_meta VALUES ('application', 'ringcast'), ('schema_version', 'two')`)
		}, `schema_version "two"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := tempPath(t)
			c.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(t.Context(), path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, store.ErrNotRingcast) || errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("Open = %v, want an error wrapping ErrNotRingcast", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("Open = %q, want it to name %s and say %q", err, path, c.reason)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatal("the refused Open changed the file")
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "ringcast.db")
	s := openFile(t, path, Options{})
	if s.Path() != path {
		t.Fatalf("Path() = %q, want %q", s.Path(), path)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	var appID int64
	var mode, app, version string
	db := rawDB(t, path)
	if err := db.QueryRow(`PRAGMA application_id`).Scan(&appID); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT value FROM ringcast_meta WHERE key = 'application'`).Scan(&app); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT value FROM ringcast_meta WHERE key = 'schema_version'`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if appID != applicationID || mode != "wal" || app != "ringcast" || version != strconv.Itoa(schemaVersion) {
		t.Fatalf("new file: application_id %#x, journal_mode %s, application %s, schema_version %s", appID, mode, app, version)
	}
}

func TestOpenEmptyFile(t *testing.T) {
	path := tempPath(t)
	writeFile(t, path, nil)
	s := openFile(t, path, Options{})
	l, err := s.Claim(t.Context(), "t", "n", 3)
	if err != nil || l.Epoch != 3 {
		t.Fatalf("Claim on an initialised empty file = %+v, %v", l, err)
	}
	// A second Open of the now initialised file migrates nothing.
	openFile(t, path, Options{})
}

func TestOpenOptions(t *testing.T) {
	for _, opts := range []Options{
		{Synchronous: "off"},
		{BusyTimeout: -time.Second},
		{MaxSize: -1},
		{ReadConns: -1},
	} {
		if s, err := Open(t.Context(), tempPath(t), opts); err == nil {
			s.Close()
			t.Errorf("Open with %+v succeeded", opts)
		}
	}
	if _, err := Open(t.Context(), "", Options{}); err == nil {
		t.Error("Open of an empty path succeeded")
	}
	s := openFile(t, tempPath(t), Options{Synchronous: "NORMAL", BusyTimeout: time.Second})
	if _, err := s.Read(t.Context(), "t", 0, 0, 100); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Read with limit 0 = %v, want a plain error", err)
	}
	if _, err := s.Topics(t.Context(), "", 0); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Topics with limit 0 = %v, want a plain error", err)
	}
}

func TestReopen(t *testing.T) {
	path := tempPath(t)
	ctx := t.Context()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, "orders", "node-a", 77)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []store.Message{{Seq: 1, Time: 10, Data: []byte("one")}, {Seq: 2, Time: 20, Data: []byte("two")}}
	if res, err := s.Append(ctx, []store.Append{{Topic: "orders", Token: l.Token, Messages: msgs}}); err != nil || res[0] != nil {
		t.Fatalf("Append = %v, %v", res, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s2 := openFile(t, path, Options{})
	heads, err := s2.Topics(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != 1 || heads[0] != (store.TopicHead{Name: "orders", Epoch: 77, Seq: 2, Owner: "node-a"}) {
		t.Fatalf("Topics after reopening = %+v", heads)
	}
	got, err := s2.Read(ctx, "orders", 0, 10, 1<<20)
	if err != nil || len(got) != 2 || string(got[1].Data) != "two" || got[1].Time != 20 {
		t.Fatalf("Read after reopening = %+v, %v", got, err)
	}
	l2, err := s2.Claim(ctx, "orders", "node-b", 1)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Epoch != 77 || l2.Seq != 2 || l2.Token <= l.Token {
		t.Fatalf("Claim after reopening = %+v, want epoch 77, seq 2, token above %d", l2, l.Token)
	}
	if res, err := s2.Append(ctx, []store.Append{{Topic: "orders", Token: l.Token, Messages: []store.Message{{Seq: 3}}}}); err != nil || !errors.Is(res[0], store.ErrFenced) {
		t.Fatalf("Append with the token of before the reopening = %v, %v; want fenced", res, err)
	}
}

// appendN appends one message of size bytes at seq with token.
func appendN(ctx context.Context, s *Store, token, seq uint64, size int) error {
	res, err := s.Append(ctx, []store.Append{{Topic: "t", Token: token, Messages: []store.Message{{Seq: seq, Time: int64(seq), Data: make([]byte, size)}}}})
	if err != nil {
		return err
	}
	return res[0]
}

// fill appends messages from seq on until the store refuses one, and
// returns the seq of the refused one.
func fill(t *testing.T, s *Store, token, seq uint64) uint64 {
	t.Helper()
	for range 10000 {
		err := appendN(t.Context(), s, token, seq, 2000)
		if err == nil {
			seq++
			continue
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Append to a full store = %v, want ErrUnavailable", err)
		}
		if code, ok := sqliteCode(err); !ok || code != codeFull {
			t.Fatalf("Append to a full store = %v, want SQLITE_FULL in the chain", err)
		}
		return seq
	}
	t.Fatal("the store never filled")
	return 0
}

func TestFull(t *testing.T) {
	ctx := t.Context()
	s := openFile(t, tempPath(t), Options{MaxSize: 256 << 10})
	l, err := s.Claim(ctx, "t", "n", 1)
	if err != nil {
		t.Fatal(err)
	}
	full := fill(t, s, l.Token, 1)
	if full < 10 {
		t.Fatalf("only %d messages fit in 256 KiB", full-1)
	}
	heads, err := s.Topics(ctx, "", 10)
	if err != nil || heads[0].Seq != full-1 {
		t.Fatalf("head after the refused append = %+v, %v; want %d", heads, err, full-1)
	}
	// Trimming frees pages that later appends reuse.
	if n, err := s.Trim(ctx, "t", full-1, 0); err != nil || n != int64(full-1) {
		t.Fatalf("Trim = %d, %v", n, err)
	}
	if err := appendN(ctx, s, l.Token, full, 2000); err != nil {
		t.Fatalf("Append after Trim freed space: %v", err)
	}
	full = fill(t, s, l.Token, full+1)
	// So does a larger limit.
	if err := s.setMaxPages(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	for seq := full; seq < full+20; seq++ {
		if err := appendN(ctx, s, l.Token, seq, 2000); err != nil {
			t.Fatalf("Append after raising the limit: %v", err)
		}
	}
}

func TestBusy(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	s := openFile(t, path, Options{BusyTimeout: 100 * time.Millisecond})
	l, err := s.Claim(ctx, "t", "n", 1)
	if err != nil {
		t.Fatal(err)
	}
	// Another connection takes the write lock and holds it.
	db := rawDB(t, path)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = appendN(ctx, s, l.Token, 1, 10)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Append while another connection writes = %v, want ErrUnavailable", err)
	}
	if code, ok := sqliteCode(err); !ok || code != codeBusy {
		t.Fatalf("Append while locked = %v, want SQLITE_BUSY in the chain", err)
	}
	if waited := time.Since(start); waited < 90*time.Millisecond {
		t.Fatalf("Append gave up after %v, before the busy timeout", waited)
	}
	// Reads go on while the lock is held.
	if _, err := s.Read(ctx, "t", 0, 10, 100); err != nil {
		t.Fatalf("Read while another connection writes: %v", err)
	}
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := appendN(ctx, s, l.Token, 1, 10); err != nil {
		t.Fatalf("Append once the lock is released: %v", err)
	}
}

// TestCancelWhileWaiting cancels a call that waits for the write lock.
func TestCancelWhileWaiting(t *testing.T) {
	path := tempPath(t)
	s := openFile(t, path, Options{BusyTimeout: 10 * time.Second})
	l, err := s.Claim(t.Context(), "t", "n", 1)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rawDB(t, path).Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = appendN(ctx, s, l.Token, 1, 10)
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append cancelled while waiting = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("the cancelled Append returned after %v", waited)
	}
	if _, err := conn.ExecContext(t.Context(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := appendN(t.Context(), s, l.Token, 1, 10); err != nil {
		t.Fatalf("Append after the cancelled one: %v", err)
	}
}
