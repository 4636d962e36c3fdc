// Package notifytest gives the tests of the notification system a fresh
// database: a SQLite file in the test's temporary directory, or a new
// database on the PostgreSQL server the test binary shares (package
// pgtest). It is kept apart from package notify so that the binaries do
// not link test code.
//
// OpenDB opens such a database with notify.OpenDB. It takes the opener
// as an argument because this package must not import notify: notify's
// own tests import this package.
//
// A package whose tests use Postgres wraps its testing.M with pgtest.Main:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }
package notifytest

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/store/pgtest"
)

// Dialects of Spec.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Dialects are the dialects tests run on: a table to range over.
var Dialects = []string{SQLite, Postgres}

// Spec returns where a fresh, empty database of dialect is, as --store
// takes it (a SQLite file path or a postgres:// URL): notify.OpenDB opens
// it, creating the store's tables and its own. A Postgres database is
// dropped when the test ends.
func Spec(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case SQLite:
		return filepath.Join(t.TempDir(), "ringcast.db")
	case Postgres:
		return pgtest.Shared(t).NewDatabase(t)
	}
	t.Fatalf("notifytest: unknown dialect %q: want %q or %q", dialect, SQLite, Postgres)
	return ""
}

// openTimeout bounds opening (and migrating) a test database.
const openTimeout = time.Minute

// OpenDB opens a fresh database of dialect (see Spec) with open, normally
// notify.OpenDB, and returns it with where it is (to open a ringcast store
// on the same database). It fails the test if open fails, and closes the
// database when the test ends, before the database itself is removed.
func OpenDB[DB io.Closer](t testing.TB, dialect string, open func(ctx context.Context, spec string) (DB, error)) (DB, string) {
	t.Helper()
	spec := Spec(t, dialect)
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	db, err := open(ctx, spec)
	if err != nil {
		t.Fatalf("notifytest: open the test database: %v", err)
	}
	// Registered after Spec's cleanup, so it runs first.
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("notifytest: close the test database: %v", err)
		}
	})
	return db, spec
}
