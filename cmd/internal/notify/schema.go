package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// schemaKey is the ringcast_meta key that records the version of the
// notify_* tables.
const schemaKey = "notify_schema_version"

// migrationLock is the PostgreSQL transaction advisory lock that
// serialises migrations of the notify_* tables between processes opening
// one database at once ("notify" in ASCII; the store uses another key).
const migrationLock int64 = 0x6e6f74696679

// ErrSchema is returned by Migrate (and OpenDB) for a database whose
// notify_* tables are of a newer version than this build knows, or that
// has no ringcast store tables. Such a database is left unchanged.
var ErrSchema = errors.New("notify: unusable database schema")

// migrations are the steps of the notify_* schema in order: step i brings
// it from version i to i+1. A released step never changes; a new schema is
// a new step. In each statement {C} is a byte-order collation for text
// keys ("" on SQLite, whose default collation already is) and {ID} the
// identity column type.
var migrations = [][]string{
	// 1: accounts, topics, subscriptions, read cursors, email state.
	{
		`CREATE TABLE IF NOT EXISTS notify_users (
			id            TEXT{C} PRIMARY KEY,
			email         TEXT NOT NULL,
			password_hash TEXT NOT NULL,
			created_at    BIGINT NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS notify_tokens (
			hash       TEXT{C} PRIMARY KEY, -- hex SHA-256 of the opaque token
			user_id    TEXT{C} NOT NULL REFERENCES notify_users (id) ON DELETE CASCADE,
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS notify_tokens_user ON notify_tokens (user_id)`,
		`CREATE TABLE IF NOT EXISTS notify_topics (
			name        TEXT{C} PRIMARY KEY,
			creator     TEXT{C} NOT NULL,
			description TEXT NOT NULL DEFAULT '',
			created_at  BIGINT NOT NULL,
			base_seq    BIGINT NOT NULL DEFAULT 0 -- the ringcast topic's head when this topic was created
		)`,
		`CREATE INDEX IF NOT EXISTS notify_topics_creator ON notify_topics (creator, name)`,
		`CREATE TABLE IF NOT EXISTS notify_subscriptions (
			user_id    TEXT{C} NOT NULL,
			topic      TEXT{C} NOT NULL REFERENCES notify_topics (name) ON DELETE CASCADE,
			created_at BIGINT NOT NULL,
			PRIMARY KEY (user_id, topic)
		)`,
		`CREATE INDEX IF NOT EXISTS notify_subscriptions_topic ON notify_subscriptions (topic)`,
		`CREATE TABLE IF NOT EXISTS notify_cursors (
			user_id    TEXT{C} NOT NULL,
			topic      TEXT{C} NOT NULL,
			read_seq   BIGINT NOT NULL,
			updated_at BIGINT NOT NULL,
			PRIMARY KEY (user_id, topic)
		)`,
		`CREATE INDEX IF NOT EXISTS notify_cursors_topic ON notify_cursors (topic, read_seq)`,
		`CREATE TABLE IF NOT EXISTS notify_online (
			user_id TEXT{C} NOT NULL,
			node    TEXT{C} NOT NULL,
			until   BIGINT NOT NULL,
			PRIMARY KEY (user_id, node)
		)`,
		`CREATE TABLE IF NOT EXISTS notify_pending (
			user_id TEXT{C} NOT NULL,
			topic   TEXT{C} NOT NULL,
			seq     BIGINT NOT NULL,
			due_at  BIGINT NOT NULL,
			PRIMARY KEY (user_id, topic)
		)`,
		`CREATE INDEX IF NOT EXISTS notify_pending_due ON notify_pending (due_at)`,
		`CREATE TABLE IF NOT EXISTS notify_outbox (
			id          {ID},
			user_id     TEXT{C} NOT NULL,
			address     TEXT NOT NULL,
			subject     TEXT NOT NULL,
			body        TEXT NOT NULL,
			message_id  TEXT NOT NULL UNIQUE,
			state       TEXT NOT NULL, -- pending, sending, sent or failed
			attempts    INT NOT NULL DEFAULT 0,
			next_at     BIGINT NOT NULL,
			claimed_by  TEXT NOT NULL DEFAULT '',
			claim_until BIGINT NOT NULL DEFAULT 0,
			last_error  TEXT NOT NULL DEFAULT '',
			created_at  BIGINT NOT NULL,
			sent_at     BIGINT NOT NULL DEFAULT 0
		)`,
		`CREATE INDEX IF NOT EXISTS notify_outbox_state ON notify_outbox (state, next_at)`,
		`CREATE INDEX IF NOT EXISTS notify_outbox_user ON notify_outbox (user_id, sent_at)`,
	},
}

// SchemaVersion is the version of the notify_* tables this build creates
// and uses.
func SchemaVersion() int { return len(migrations) }

// ddl returns statement for dialect d.
func (d Dialect) ddl(statement string) string {
	collate, id := "", "INTEGER PRIMARY KEY AUTOINCREMENT"
	if d == Postgres {
		collate, id = ` COLLATE "C"`, "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	return strings.NewReplacer("{C}", collate, "{ID}", id).Replace(statement)
}

// Migrate creates or brings up to date the notify_* tables, in one
// transaction serialised with every other process migrating the same
// database (SQLite BEGIN IMMEDIATE, PostgreSQL pg_advisory_xact_lock). The
// version is recorded under notify_schema_version in ringcast_meta. The
// ringcast store's tables must exist (open the store first: OpenDB does);
// a database without them, or with notify_* tables newer than this build
// knows, is refused with an error wrapping ErrSchema and left unchanged.
func (db *DB) Migrate(ctx context.Context) error {
	conn, err := db.SQL.Conn(ctx)
	if err != nil {
		return fmt.Errorf("notify: migrate: %w", wrapDB(ctx, err))
	}
	defer conn.Close()

	var tx *sql.Tx
	var committed bool
	switch db.Dialect {
	case SQLite:
		// The connection may not be in IMMEDIATE mode: take the write lock
		// explicitly, before reading the version.
		if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
			return fmt.Errorf("notify: migrate: %w", wrapDB(ctx, err))
		}
		defer func() {
			if !committed {
				_, _ = conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
			}
		}()
	case Postgres:
		if tx, err = conn.BeginTx(ctx, nil); err != nil {
			return fmt.Errorf("notify: migrate: %w", wrapDB(ctx, err))
		}
		defer func() {
			if !committed {
				_ = tx.Rollback()
			}
		}()
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("notify: migrate: %w", wrapDB(ctx, err))
		}
	default:
		return fmt.Errorf("notify: migrate: unknown dialect %v", db.Dialect)
	}
	var q queryer = conn
	if tx != nil {
		q = tx
	}

	var hasTopics bool
	if db.Dialect == SQLite {
		err = q.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'ringcast_topics'`).Scan(&hasTopics)
	} else {
		err = q.QueryRowContext(ctx, `SELECT to_regclass('ringcast_topics') IS NOT NULL`).Scan(&hasTopics)
	}
	if err != nil {
		return fmt.Errorf("notify: migrate: %w", wrapDB(ctx, err))
	}
	if !hasTopics {
		return fmt.Errorf("%w: the database has no ringcast_topics table: open the ringcast store on it first", ErrSchema)
	}
	if _, err := q.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS ringcast_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("notify: migrate: %w", wrapDB(ctx, err))
	}
	from := 0
	var v string
	switch err := q.QueryRowContext(ctx, db.Rebind(`SELECT value FROM ringcast_meta WHERE key = ?`), schemaKey).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("notify: migrate: %w", wrapDB(ctx, err))
	default:
		if from, err = strconv.Atoi(v); err != nil || from < 0 {
			return fmt.Errorf("%w: ringcast_meta holds %s %q, not a version number", ErrSchema, schemaKey, v)
		}
	}
	to := SchemaVersion()
	if from > to {
		return fmt.Errorf("%w: the notify tables are at schema version %d, newer than version %d of this build: upgrade ringcast", ErrSchema, from, to)
	}
	if from == to {
		return nil // the deferred rollback ends the transaction
	}
	for i := from; i < to; i++ {
		for _, stmt := range migrations[i] {
			if _, err := q.ExecContext(ctx, db.Dialect.ddl(stmt)); err != nil {
				return fmt.Errorf("notify: migrate to schema version %d: %w", i+1, wrapDB(ctx, err))
			}
		}
	}
	if _, err := q.ExecContext(ctx, db.Rebind(`INSERT INTO ringcast_meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`), schemaKey, strconv.Itoa(to)); err != nil {
		return fmt.Errorf("notify: migrate: %w", wrapDB(ctx, err))
	}
	if tx != nil {
		err = tx.Commit()
	} else {
		_, err = conn.ExecContext(ctx, `COMMIT`)
	}
	if err != nil {
		return fmt.Errorf("notify: migrate: commit: %w", wrapDB(ctx, err))
	}
	committed = true
	return nil
}
