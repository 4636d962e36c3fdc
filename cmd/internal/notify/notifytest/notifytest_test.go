package notifytest_test

import (
	"context"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/ringcast/ringcast/cmd/internal/notify/notifytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDB records whether it was closed.
type fakeDB struct {
	spec   string
	closed int
}

func (db *fakeDB) Close() error { db.closed++; return nil }

// TestOpenDB: OpenDB hands the opener a SQLite path in the test's
// temporary directory, a context with a deadline, returns the opener's
// database with that path, and closes it once when the test ends.
func TestOpenDB(t *testing.T) {
	var db *fakeDB
	var spec string
	t.Run("open", func(t *testing.T) {
		dir := t.TempDir()
		db, spec = notifytest.OpenDB(t, notifytest.SQLite, func(ctx context.Context, s string) (*fakeDB, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Errorf("the opener's context has no deadline")
			}
			return &fakeDB{spec: s}, nil
		})
		if db.spec != spec || filepath.Base(spec) != "ringcast.db" || filepath.Dir(filepath.Dir(spec)) != filepath.Dir(dir) {
			t.Errorf("spec %q (opener got %q); want ringcast.db in a temporary directory of the test", spec, db.spec)
		}
		if db.closed != 0 {
			t.Errorf("closed %d times before the test ended", db.closed)
		}
	})
	if db == nil || db.closed != 1 {
		t.Fatalf("database %+v; want it closed once when the test ended", db)
	}
}
