package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ringcast/ringcast/pubsub/store"
)

// application is ringcast_meta's application value.
const application = "ringcast"

// migrationLock is the key of the transaction advisory lock that
// serialises migrations between nodes opening the same database at once
// ("ringcast" in ASCII).
const migrationLock int64 = 0x72696e6763617374

// migrations are the schema's steps, in order: step i brings the schema
// from version i to version i+1. A released step never changes; a new
// schema is a new step.
var migrations = [][]string{
	// Version 1.
	{
		`CREATE TABLE ringcast_meta (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		)`,
		`CREATE TABLE ringcast_topics (
			topic      TEXT COLLATE "C" PRIMARY KEY,
			epoch      BIGINT NOT NULL CHECK (epoch >= 0),
			seq        BIGINT NOT NULL CHECK (seq >= 0),
			token      BIGINT NOT NULL CHECK (token > 0),
			owner      TEXT NOT NULL,
			claimed_at BIGINT NOT NULL -- unix nanoseconds, the server's clock
		) WITH (fillfactor = 50)`, // room for the head's in-page (HOT) updates
		`CREATE TABLE ringcast_messages (
			topic TEXT COLLATE "C" NOT NULL,
			seq   BIGINT NOT NULL,
			time  BIGINT NOT NULL,
			data  BYTEA NOT NULL,
			PRIMARY KEY (topic, seq)
		)`,
		// Trim by age.
		`CREATE INDEX ringcast_messages_time ON ringcast_messages (topic, time)`,
		`INSERT INTO ringcast_meta (key, value) VALUES ('application', '` + application + `')`,
	},
	// Version 2: queue group cursors (store.QueueCursors).
	{
		`CREATE TABLE ringcast_queue_cursors (
			topic TEXT COLLATE "C" NOT NULL,
			grp   TEXT COLLATE "C" NOT NULL,
			epoch BIGINT NOT NULL CHECK (epoch >= 0),
			seq   BIGINT NOT NULL CHECK (seq >= 0),
			PRIMARY KEY (topic, grp)
		)`,
	},
}

// SchemaVersion is the version of the schema this build creates and uses.
func SchemaVersion() int { return len(migrations) }

// migrate brings the schema of the connection's current schema up to
// SchemaVersion, in one transaction holding the migration lock. It
// returns the versions before and after.
func migrate(ctx context.Context, conn *pgx.Conn) (from, to int, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return 0, 0, err
	}
	var schema *string
	var encoding string
	var meta, topics, messages bool
	err = tx.QueryRow(ctx, `
		SELECT current_schema(), current_setting('server_encoding'),
		       to_regclass(format('%I.ringcast_meta', current_schema())) IS NOT NULL,
		       to_regclass(format('%I.ringcast_topics', current_schema())) IS NOT NULL,
		       to_regclass(format('%I.ringcast_messages', current_schema())) IS NOT NULL`,
	).Scan(&schema, &encoding, &meta, &topics, &messages)
	if err != nil {
		return 0, 0, err
	}
	if encoding != "UTF8" && encoding != "SQL_ASCII" {
		// Topic names are UTF-8, and Topics orders them by those bytes.
		return 0, 0, fmt.Errorf("the database's encoding is %s: ringcast needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')", encoding)
	}
	if schema == nil {
		return 0, 0, errors.New("no schema to create the ringcast tables in: none of the search_path exists")
	}

	if !meta {
		if topics || messages {
			return 0, 0, fmt.Errorf("%w: schema %q has ringcast_topics or ringcast_messages but no ringcast_meta", store.ErrNotRingcast, *schema)
		}
	} else if from, err = readVersion(ctx, tx, *schema); err != nil {
		return 0, 0, err
	}
	to = SchemaVersion()
	if from > to {
		return 0, 0, fmt.Errorf("%w: schema %q holds ringcast schema version %d, newer than version %d of this build: upgrade ringcast", store.ErrNotRingcast, *schema, from, to)
	}
	if from == to {
		return from, to, nil // nothing to write: the transaction ends with a rollback
	}
	for v := from; v < to; v++ {
		for _, stmt := range migrations[v] {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return 0, 0, fmt.Errorf("migration to schema version %d: %w", v+1, err)
			}
		}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO ringcast_meta (key, value) VALUES ('schema_version', $1)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, strconv.Itoa(to)); err != nil {
		return 0, 0, err
	}
	return from, to, tx.Commit(ctx)
}

// readVersion reads ringcast_meta, which exists in schema, and returns the
// schema version it records, or ErrNotRingcast.
func readVersion(ctx context.Context, tx pgx.Tx, schema string) (int, error) {
	rows, err := tx.Query(ctx, `SELECT key::text, value::text FROM ringcast_meta WHERE key::text IN ('application', 'schema_version')`)
	if err != nil {
		return 0, notRingcastShape(schema, err)
	}
	kv, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]*string, error) {
		var p [2]*string
		return p, r.Scan(&p[0], &p[1])
	})
	if err != nil {
		return 0, notRingcastShape(schema, err)
	}
	meta := make(map[string]string, len(kv))
	for _, p := range kv {
		if p[0] != nil && p[1] != nil {
			meta[*p[0]] = *p[1]
		}
	}
	if app := meta["application"]; app != application {
		return 0, fmt.Errorf("%w: ringcast_meta of schema %q names application %q, not %q", store.ErrNotRingcast, schema, app, application)
	}
	v, err := strconv.Atoi(meta["schema_version"])
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%w: ringcast_meta of schema %q holds no valid schema_version (%q)", store.ErrNotRingcast, schema, meta["schema_version"])
	}
	return v, nil
}

// notRingcastShape reports a ringcast_meta that lacks the key and value
// columns (SQLSTATE 42703, undefined column) as another application's.
func notRingcastShape(schema string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42703" || pgErr.Code == "42883") {
		return fmt.Errorf("%w: ringcast_meta of schema %q is not ringcast's: %w", store.ErrNotRingcast, schema, err)
	}
	return err
}
