package notify

import (
	"testing"

	"github.com/ringcast/ringcast/cmd/internal/notify/notifytest"
)

// Test dialects.
const (
	TestSQLite   = notifytest.SQLite
	TestPostgres = notifytest.Postgres
)

// TestDialects are the dialects the tests run on.
var TestDialects = notifytest.Dialects

// OpenTestDB returns a migrated DB on a fresh database of dialect, closed
// when the test ends.
func OpenTestDB(t testing.TB, dialect string) *DB {
	t.Helper()
	db, _ := OpenTestDBSpec(t, dialect)
	return db
}

// OpenTestDBSpec is OpenTestDB that also returns where the database is,
// to open a ringcast store on it.
func OpenTestDBSpec(t testing.TB, dialect string) (*DB, string) {
	t.Helper()
	return notifytest.OpenDB(t, dialect, OpenDB)
}
