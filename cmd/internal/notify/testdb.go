package notify

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/store/pgtest"
	"github.com/ringcast/ringcast/pubsub/store/postgres"
	"github.com/ringcast/ringcast/pubsub/store/sqlite"
)

// Test dialects, for OpenTestDB.
const (
	TestSQLite   = "sqlite"
	TestPostgres = "postgres"
)

// TestDialects are the dialects tests run on: a table to range over.
var TestDialects = []string{TestSQLite, TestPostgres}

// OpenTestDB returns a migrated DB for a test, on a fresh database of the
// dialect ("sqlite" or "postgres"): a SQLite file in t.TempDir(), or a new
// database on the test binary's shared PostgreSQL server (pgtest.Shared,
// whose package needs
// func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }).
// As in production, the ringcast store is opened (and closed) on it first,
// so the store's tables exist. The DB is closed when the test ends.
// TestStoreSpec tells where it is, to open a store on it.
func OpenTestDB(t testing.TB, dialect string) *DB {
	t.Helper()
	db, _ := openTestDB(t, dialect)
	return db
}

// OpenTestDBSpec is OpenTestDB that also returns the database's store spec
// (a SQLite path or a postgres:// URL), to open a ringcast store on the
// same database (sqlite.Open or postgres.Open).
func OpenTestDBSpec(t testing.TB, dialect string) (*DB, string) {
	t.Helper()
	return openTestDB(t, dialect)
}

func openTestDB(t testing.TB, dialect string) (*DB, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var db *DB
	var spec string
	var err error
	switch dialect {
	case TestSQLite:
		spec = filepath.Join(t.TempDir(), "ringcast.db")
		st, err := sqlite.Open(ctx, spec, sqlite.Options{})
		if err != nil {
			t.Fatalf("notify: open the sqlite store: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Fatalf("notify: close the sqlite store: %v", err)
		}
		db, err = openSQLite(spec)
		if err != nil {
			t.Fatalf("notify: %v", err)
		}
	case TestPostgres:
		spec = pgtest.Shared(t).NewDatabase(t)
		st, err := postgres.Open(ctx, spec, postgres.Options{})
		if err != nil {
			t.Fatalf("notify: open the postgres store: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Fatalf("notify: close the postgres store: %v", err)
		}
		db, err = openPostgres(spec)
		if err != nil {
			t.Fatalf("notify: %v", err)
		}
	default:
		t.Fatalf("notify: OpenTestDB: unknown dialect %q: want %q or %q", dialect, TestSQLite, TestPostgres)
	}
	// Registered after NewDatabase's cleanup, so it runs before the
	// database is dropped.
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("notify: close the test database: %v", err)
		}
	})
	if err = db.Migrate(ctx); err != nil {
		t.Fatalf("notify: migrate the test database: %v", err)
	}
	return db, spec
}
