package sqlite

import (
	"strconv"
	"testing"

	"github.com/ringcast/ringcast/pubsub/store"
)

// TestMigratesVersion1 opens a file of schema version 1, as the first
// release wrote it: Open adds the queue cursor table, keeps the topics,
// and records the current version.
func TestMigratesVersion1(t *testing.T) {
	path := tempPath(t)
	db := rawDB(t, path)
	execAll(t, db, migrations[0]...)
	execAll(t, db, `INSERT INTO ringcast_meta VALUES ('application', 'ringcast'), ('schema_version', '1')`,
		`INSERT INTO ringcast_topics VALUES ('t', 7, 3, 1, 'n', 0)`)
	db.Close()

	s := openFile(t, path, Options{})
	l, err := s.Claim(t.Context(), "t", "n", 1)
	if err != nil {
		t.Fatal(err)
	}
	if l.Epoch != 7 || l.Seq != 3 {
		t.Fatalf("topic after migration: %+v", l)
	}
	if err := s.SaveQueueCursor(t.Context(), "t", "g", store.Cursor{Epoch: 7, Seq: 2}); err != nil {
		t.Fatal(err)
	}
	if c, ok, err := s.QueueCursor(t.Context(), "t", "g"); err != nil || !ok || c != (store.Cursor{Epoch: 7, Seq: 2}) {
		t.Fatalf("QueueCursor = %v, %v, %v", c, ok, err)
	}
	var version string
	if err := rawDB(t, path).QueryRow(`SELECT value FROM ringcast_meta WHERE key = 'schema_version'`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != strconv.Itoa(schemaVersion) {
		t.Fatalf("schema_version %s after migration, want %d", version, schemaVersion)
	}
}
