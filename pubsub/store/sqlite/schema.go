package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/ringcast/ringcast/pubsub/store"
)

// applicationID is the file's PRAGMA application_id: "RCST".
const applicationID = 0x52435354

// applicationName is ringcast_meta's application value.
const applicationName = "ringcast"

// migrations are the schema's steps in order: step i brings a store from
// schema_version i to i+1. A step is never changed once released; a new
// schema is a new step.
var migrations = [][]string{
	// 1: the tables every ringcast store shares.
	{
		`CREATE TABLE ringcast_meta (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		) STRICT`,
		`CREATE TABLE ringcast_topics (
			topic      TEXT PRIMARY KEY,
			epoch      INTEGER NOT NULL,
			seq        INTEGER NOT NULL,
			token      INTEGER NOT NULL,
			owner      TEXT NOT NULL,
			claimed_at INTEGER NOT NULL
		) STRICT`,
		`CREATE TABLE ringcast_messages (
			topic TEXT NOT NULL,
			seq   INTEGER NOT NULL,
			time  INTEGER NOT NULL,
			data  BLOB NOT NULL,
			PRIMARY KEY (topic, seq)
		) STRICT, WITHOUT ROWID`,
		`CREATE INDEX ringcast_messages_time ON ringcast_messages (topic, time)`,
		`PRAGMA application_id = ` + strconv.Itoa(applicationID),
	},
	// 2: queue group cursors (store.QueueCursors).
	{
		`CREATE TABLE ringcast_queue_cursors (
			topic TEXT NOT NULL,
			grp   TEXT NOT NULL,
			epoch INTEGER NOT NULL,
			seq   INTEGER NOT NULL,
			PRIMARY KEY (topic, grp)
		) STRICT, WITHOUT ROWID`,
	},
}

// schemaVersion is the version this build creates and understands.
var schemaVersion = len(migrations)

// fileState is what inspect found in an existing file.
type fileState struct {
	version int // 0: empty, to be initialised
}

// queryer is what inspect needs of a connection or transaction.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// inspect reads the file's application id, tables and ringcast_meta and
// says whether it is a ringcast store this build can open. An error
// wrapping store.ErrNotRingcast means it is not; any other error is a
// failure to read it.
func inspect(ctx context.Context, q queryer, path string) (fileState, error) {
	refuse := func(format string, args ...any) (fileState, error) {
		return fileState{}, fmt.Errorf("%w: %s: %s", store.ErrNotRingcast, path, fmt.Sprintf(format, args...))
	}
	var appID int64
	if err := q.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&appID); err != nil {
		if isNotADatabase(err) {
			return refuse("not an SQLite database (%v)", err)
		}
		return fileState{}, err
	}
	rows, err := q.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		if isNotADatabase(err) {
			return refuse("not an SQLite database (%v)", err)
		}
		return fileState{}, err
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fileState{}, err
		}
		tables = append(tables, name)
	}
	if err := rows.Close(); err != nil {
		return fileState{}, err
	}
	if err := rows.Err(); err != nil {
		return fileState{}, err
	}

	if appID != 0 && appID != applicationID {
		return refuse("an SQLite database of another application (application_id 0x%08x, ringcast's is 0x%08x)", uint32(appID), applicationID)
	}
	hasMeta := false
	for _, name := range tables {
		if name == "ringcast_meta" {
			hasMeta = true
		}
	}
	switch {
	case len(tables) == 0:
		return fileState{version: 0}, nil
	case !hasMeta:
		shown := tables
		if len(shown) > 5 {
			shown = append(shown[:5:5], "...")
		}
		return refuse("an SQLite database of another application (tables %s, no ringcast_meta)", strings.Join(shown, ", "))
	}

	meta := map[string]string{}
	mrows, err := q.QueryContext(ctx, `SELECT key, value FROM ringcast_meta WHERE key IN ('application', 'schema_version')`)
	if err != nil {
		return fileState{}, err
	}
	for mrows.Next() {
		var k, v string
		if err := mrows.Scan(&k, &v); err != nil {
			mrows.Close()
			return fileState{}, err
		}
		meta[k] = v
	}
	if err := mrows.Close(); err != nil {
		return fileState{}, err
	}
	if err := mrows.Err(); err != nil {
		return fileState{}, err
	}
	if app := meta["application"]; app != applicationName {
		return refuse("ringcast_meta names application %q, not %q", app, applicationName)
	}
	v, err := strconv.Atoi(meta["schema_version"])
	if err != nil || v < 1 {
		return refuse("ringcast_meta holds schema_version %q, not a version number", meta["schema_version"])
	}
	if v > schemaVersion {
		return refuse("schema version %d is newer than the newest this build knows (%d); open it with a newer ringcast", v, schemaVersion)
	}
	return fileState{version: v}, nil
}

// migrate brings the store to schemaVersion in one BEGIN IMMEDIATE
// transaction, so that processes opening one file at once apply each step
// once. It re-inspects the file inside the transaction and refuses, without
// writing, what inspect refuses. It returns the version the store had.
func migrate(ctx context.Context, db *sql.DB, path string) (from int, err error) {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: see the writer's DSN
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	st, err := inspect(ctx, tx, path)
	if err != nil {
		return 0, err
	}
	if st.version == schemaVersion {
		return st.version, tx.Rollback()
	}
	for i := st.version; i < schemaVersion; i++ {
		for _, stmt := range migrations[i] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return 0, fmt.Errorf("schema step %d: %w", i+1, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ringcast_meta (key, value) VALUES ('application', ?), ('schema_version', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, applicationName, strconv.Itoa(schemaVersion)); err != nil {
		return 0, err
	}
	return st.version, tx.Commit()
}

// isNotADatabase reports whether err is SQLite's SQLITE_NOTADB (or
// SQLITE_CORRUPT on the first read): the file is not a database.
func isNotADatabase(err error) bool {
	code, ok := sqliteCode(err)
	return ok && (code == codeNotADB || code == codeCorrupt)
}
