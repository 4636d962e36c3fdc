// Package notifytest gives the tests of the notification system a fresh
// database: a SQLite file in the test's temporary directory, or a new
// database on the PostgreSQL server the test binary shares (package
// pgtest). It is kept apart from package notify so that the binaries do
// not link test code.
//
// A package whose tests use Postgres wraps its testing.M with pgtest.Main:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }
package notifytest

import (
	"path/filepath"
	"testing"

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
