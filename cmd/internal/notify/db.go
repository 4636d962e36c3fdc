package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver

	"github.com/ringcast/ringcast/pubsub/store/postgres"
	"github.com/ringcast/ringcast/pubsub/store/sqlite"
)

// Dialect is the SQL dialect of a DB: the few places where SQLite and
// PostgreSQL differ (placeholders, identity columns, collations, the
// larger of two values).
type Dialect int

// Dialects.
const (
	// SQLite is modernc.org/sqlite, driver "sqlite".
	SQLite Dialect = iota
	// Postgres is PostgreSQL through github.com/jackc/pgx/v5/stdlib, driver
	// "pgx".
	Postgres
)

// String returns "sqlite" or "postgres".
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// ParseDialect reads "sqlite" or "postgres" (also "postgresql").
func ParseDialect(s string) (Dialect, error) {
	switch strings.ToLower(s) {
	case "sqlite":
		return SQLite, nil
	case "postgres", "postgresql":
		return Postgres, nil
	}
	return 0, fmt.Errorf("notify: unknown SQL dialect %q: want sqlite or postgres", s)
}

// DB is the notification system's database: the one that holds the
// ringcast store, with the notify_* tables beside the store's own. SQL is
// shared by every part of the notification system (package email uses it
// too); write queries with ? placeholders and pass them through Rebind.
type DB struct {
	SQL     *sql.DB
	Dialect Dialect
}

// Pool sizes of the *sql.DB OpenDB opens.
const (
	sqliteConns   = 8
	postgresConns = 16
)

// sqliteBusyMS is how long a SQLite statement waits for the file's write
// lock held by another connection or process, in milliseconds.
const sqliteBusyMS = 5000

// OpenDB opens the database of a store spec, the value of the binaries'
// --store: a SQLite file ("PATH" or "sqlite:PATH") or a PostgreSQL URL
// ("postgres://…" or "postgresql://…"). "memory" is refused: the
// notification system keeps its accounts and read state in a database.
//
// It first opens (and closes) the ringcast store of that spec, so that the
// store's tables exist and the database is known to be a ringcast store,
// then opens its own *sql.DB and applies Migrate. The caller closes the DB
// with Close.
func OpenDB(ctx context.Context, storeSpec string) (*DB, error) {
	kind, loc, err := parseSpec(storeSpec)
	if err != nil {
		return nil, err
	}
	var db *DB
	switch kind {
	case SQLite:
		abs, err := filepath.Abs(loc)
		if err != nil {
			return nil, fmt.Errorf("notify: %s: %w", loc, err)
		}
		st, err := sqlite.Open(ctx, abs, sqlite.Options{})
		if err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
		_ = st.Close() // only its schema was wanted
		if db, err = openSQLite(abs); err != nil {
			return nil, err
		}
	case Postgres:
		st, err := postgres.Open(ctx, loc, postgres.Options{})
		if err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
		_ = st.Close()
		if db, err = openPostgres(loc); err != nil {
			return nil, err
		}
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// parseSpec reads a store spec as OpenDB describes it. Its errors never
// repeat a URL, which may hold a password.
func parseSpec(spec string) (Dialect, string, error) {
	s := strings.TrimSpace(spec)
	lower := strings.ToLower(s)
	switch {
	case s == "":
		return 0, "", errors.New("notify: empty store spec: give a file, sqlite:PATH or postgres://...")
	case lower == "memory":
		return 0, "", errors.New(`notify: the notification system needs a database: --store "memory" keeps none`)
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return Postgres, s, nil
	case strings.HasPrefix(lower, "sqlite:"):
		p := strings.TrimPrefix(s[len("sqlite:"):], "//")
		if p == "" {
			return 0, "", errors.New("notify: sqlite: without a path")
		}
		return SQLite, p, nil
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return 0, "", fmt.Errorf("notify: unknown store scheme %q: want sqlite:PATH, postgres://... or postgresql://...", scheme)
	}
	return SQLite, s, nil
}

// openSQLite opens the SQLite file at abs (which exists) for package
// notify: WAL mode, foreign keys on, a busy timeout, and BEGIN IMMEDIATE
// transactions so that a transaction that writes never fails half-way on
// a lock it could not upgrade.
func openSQLite(abs string) (*DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(sqliteBusyMS)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	u := url.URL{Path: abs}
	sqldb, err := sql.Open("sqlite", "file:"+u.EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("notify: sqlite %s: %w", abs, err)
	}
	sqldb.SetMaxOpenConns(sqliteConns)
	sqldb.SetMaxIdleConns(sqliteConns)
	sqldb.SetConnMaxLifetime(0)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	return &DB{SQL: sqldb, Dialect: SQLite}, nil
}

// openPostgres opens the PostgreSQL database rawURL names.
func openPostgres(rawURL string) (*DB, error) {
	sqldb, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, errors.New("notify: postgres: the URL does not parse")
	}
	sqldb.SetMaxOpenConns(postgresConns)
	sqldb.SetMaxIdleConns(postgresConns / 2)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	sqldb.SetConnMaxLifetime(time.Hour)
	return &DB{SQL: sqldb, Dialect: Postgres}, nil
}

// Close closes the *sql.DB. It is idempotent.
func (db *DB) Close() error {
	if db == nil || db.SQL == nil {
		return nil
	}
	return db.SQL.Close()
}

// Rebind rewrites a query written with ? placeholders for the DB's
// dialect: unchanged for SQLite, $1, $2, … for PostgreSQL. A ? inside a
// single-quoted string literal, a double-quoted identifier or a comment is
// left alone.
func (db *DB) Rebind(query string) string {
	if db.Dialect != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) {
				if query[j] == c {
					if j+1 < len(query) && query[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			end := min(j+1, len(query))
			b.WriteString(query[i:end])
			i = end - 1
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j - 1
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// greatest is the SQL expression of the larger of a and b.
func (db *DB) greatest(a, b string) string {
	if db.Dialect == Postgres {
		return "GREATEST(" + a + ", " + b + ")"
	}
	return "max(" + a + ", " + b + ")"
}

// least is the SQL expression of the smaller of a and b.
func (db *DB) least(a, b string) string {
	if db.Dialect == Postgres {
		return "LEAST(" + a + ", " + b + ")"
	}
	return "min(" + a + ", " + b + ")"
}

// exec runs a statement written with ? placeholders.
func (db *DB) exec(ctx context.Context, q queryer, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, db.Rebind(query), args...)
}

// queryer is a *sql.DB, *sql.Conn or *sql.Tx.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in a transaction (BEGIN IMMEDIATE on SQLite: see
// openSQLite), committed when fn returns nil and rolled back otherwise.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
