package postgres

import (
	"fmt"
	"testing"

	"github.com/ringcast/ringcast/pubsub/store"
)

// TestMigratesVersion1 opens a database of schema version 1, as the first
// release wrote it: Open adds the queue cursor table, keeps the topics,
// and records the current version.
func TestMigratesVersion1(t *testing.T) {
	t.Parallel()
	u := newDB(t)
	sql(t, u, migrations[0]...)
	sql(t, u, `INSERT INTO ringcast_meta (key, value) VALUES ('schema_version', '1')`,
		`INSERT INTO ringcast_topics VALUES ('t', 7, 3, 1, 'n', 0)`)
	s := openURL(t, u)
	if l := claim(t, s, "t"); l.Epoch != 7 || l.Seq != 3 {
		t.Fatalf("topic after migration: %+v", l)
	}
	ctx := testCtx(t)
	if err := s.SaveQueueCursor(ctx, "t", "g", store.Cursor{Epoch: 7, Seq: 2}); err != nil {
		t.Fatal(err)
	}
	if c, ok, err := s.QueueCursor(ctx, "t", "g"); err != nil || !ok || c != (store.Cursor{Epoch: 7, Seq: 2}) {
		t.Fatalf("QueueCursor = %v, %v, %v", c, ok, err)
	}
	if got := queryString(t, u, `SELECT value FROM ringcast_meta WHERE key = 'schema_version'`); got != fmt.Sprint(SchemaVersion()) {
		t.Fatalf("schema_version %s after migration, want %d", got, SchemaVersion())
	}
}
