package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/ringcast/ringcast/pubsub/store"
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Logger receives the store's rare log lines (opening, migrating, an
	// unexpected database error). Nil: discard.
	Logger *slog.Logger

	// BusyTimeout is how long a call waits for the file's lock held by
	// another connection or process before failing with
	// store.ErrUnavailable. Zero: 5s.
	BusyTimeout time.Duration

	// Synchronous is SQLite's synchronous setting for commits: "full" (the
	// default: an acknowledged append is on disk) or "normal" (faster; an
	// acknowledged append survives a crash of the process but may be lost
	// in a power failure).
	Synchronous string

	// MaxSize bounds the database file, in bytes (rounded down to whole
	// pages). An append that would grow the file past it fails with
	// store.ErrUnavailable until Trim frees space. Zero: no bound but the
	// disk's.
	MaxSize int64

	// ReadConns is the number of read-only connections Read and Topics
	// share. Zero: 4.
	ReadConns int
}

// Store is a store.Store in one SQLite file. Its methods are safe for
// concurrent use.
type Store struct {
	path   string
	log    *slog.Logger
	w      *sql.DB // one connection: every write, queued in the process
	r      *sql.DB // read-only connections
	closed atomic.Bool

	claimStmt, headStmt, insertStmt, insertManyStmt, stateStmt *sql.Stmt
	trimStmt, readStmt, topicsStmt                             *sql.Stmt
}

// insertMany is the number of rows insertManyStmt inserts at once: fewer,
// larger statements for long runs of one topic's messages.
const insertMany = 16

var _ store.Store = (*Store)(nil)

// Open opens the store in the file at path, creating the file and its
// directory (mode 0700) when they are missing and initialising an empty
// file. It refuses a file that is not a ringcast store, or one of a newer
// schema, with an error wrapping store.ErrNotRingcast, and leaves such a
// file as it found it.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	busy := opts.BusyTimeout
	switch {
	case busy < 0:
		return nil, fmt.Errorf("sqlite: negative BusyTimeout %v", busy)
	case busy == 0:
		busy = 5 * time.Second
	}
	sync := strings.ToUpper(opts.Synchronous)
	switch sync {
	case "":
		sync = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("sqlite: Synchronous %q, want \"full\" or \"normal\"", opts.Synchronous)
	}
	if opts.MaxSize < 0 {
		return nil, fmt.Errorf("sqlite: negative MaxSize %d", opts.MaxSize)
	}
	readConns := opts.ReadConns
	switch {
	case readConns < 0:
		return nil, fmt.Errorf("sqlite: negative ReadConns %d", readConns)
	case readConns == 0:
		readConns = 4
	}
	if path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	unavailable := func(what string, err error) error {
		return fmt.Errorf("%w: sqlite %s: %s: %w", store.ErrUnavailable, abs, what, err)
	}
	busyMS := strconv.FormatInt(busy.Milliseconds(), 10)

	// Look at an existing file read-only first: a file Open refuses is
	// never written, not even switched to WAL mode.
	if fi, err := os.Stat(abs); err == nil && fi.Size() > 0 {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s: not a regular file", store.ErrNotRingcast, abs)
		}
		if err := checkHeader(abs); err != nil {
			return nil, err
		}
		if err := inspectFile(ctx, abs, busyMS); err != nil {
			if errors.Is(err, store.ErrNotRingcast) {
				return nil, err
			}
			return nil, unavailable("inspect", err)
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, unavailable("stat", err)
	}

	// Set the file up on a connection of its own: WAL mode, the schema,
	// the page size that MaxSize is counted in.
	pageSize, from, err := setup(ctx, abs, busyMS)
	if err != nil {
		if errors.Is(err, store.ErrNotRingcast) {
			return nil, err
		}
		return nil, unavailable("initialise", err)
	}
	if from != schemaVersion {
		log.Info("sqlite store: schema migrated", "path", abs, "from", from, "to", schemaVersion)
	}

	wq := url.Values{}
	wq.Add("_pragma", "busy_timeout("+busyMS+")")
	wq.Add("_pragma", "synchronous("+sync+")")
	// Statement journals (the undo of one statement inside a transaction)
	// in memory, not in a temporary file written on every statement.
	wq.Add("_pragma", "temp_store(MEMORY)")
	wq.Set("_txlock", "immediate")
	if opts.MaxSize > 0 {
		wq.Add("_pragma", "max_page_count("+strconv.FormatInt(max(1, opts.MaxSize/pageSize), 10)+")")
	}
	w, err := sql.Open("sqlite", dsn(abs, wq))
	if err != nil {
		return nil, unavailable("open", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	rq := url.Values{}
	rq.Add("_pragma", "busy_timeout("+busyMS+")")
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", dsn(abs, rq))
	if err != nil {
		w.Close()
		return nil, unavailable("open", err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)

	s := &Store{path: abs, log: log, w: w, r: r}
	if err := s.prepare(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, unavailable("prepare", err)
	}
	log.Debug("sqlite store: open", "path", abs, "schema_version", schemaVersion, "synchronous", sync)
	return s, nil
}

// dsn is the modernc.org/sqlite data source name of the file at abs with
// the query q.
func dsn(abs string, q url.Values) string {
	u := url.URL{Path: abs}
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// sqliteHeader starts every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// checkHeader refuses a non-empty file that does not start with the SQLite
// header. (SQLite itself would take a file shorter than its header for an
// empty database and overwrite it.)
func checkHeader(abs string) error {
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("%w: sqlite %s: %w", store.ErrUnavailable, abs, err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: sqlite %s: %w", store.ErrUnavailable, abs, err)
	}
	if string(head[:n]) != sqliteHeader {
		return fmt.Errorf("%w: %s: not an SQLite database (no SQLite header)", store.ErrNotRingcast, abs)
	}
	return nil
}

// inspectFile opens the file read-only and inspects it.
func inspectFile(ctx context.Context, abs, busyMS string) error {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout("+busyMS+")")
	db, err := sql.Open("sqlite", dsn(abs, q))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	_, err = inspect(ctx, db, abs)
	return err
}

// setup switches the file to WAL mode and migrates its schema, on a
// connection of its own. It returns the file's page size and the schema
// version the file had.
func setup(ctx context.Context, abs, busyMS string) (pageSize int64, from int, err error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+busyMS+")")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", dsn(abs, q))
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	// A file that appeared since Open looked (or a 0-byte one) is inspected
	// here, before anything is written to it.
	st, err := inspect(ctx, db, abs)
	if err != nil {
		return 0, 0, err
	}
	if st.version == 0 {
		// Set the page size of a new file before its first page exists.
		if _, err := db.ExecContext(ctx, `PRAGMA page_size = 4096`); err != nil {
			return 0, 0, err
		}
	}
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode); err != nil {
		return 0, 0, err
	}
	if !strings.EqualFold(mode, "wal") {
		return 0, 0, fmt.Errorf("journal_mode is %q, not wal (is the file on a local file system?)", mode)
	}
	if from, err = migrate(ctx, db, abs); err != nil {
		return 0, 0, err
	}
	if err := db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		return 0, 0, err
	}
	return pageSize, from, db.Close()
}

func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		db   *sql.DB
		stmt **sql.Stmt
		sql  string
	}{
		{s.w, &s.claimStmt, `INSERT INTO ringcast_topics (topic, epoch, seq, token, owner, claimed_at) VALUES (?1, ?2, 0, 1, ?3, ?4)
			ON CONFLICT (topic) DO UPDATE SET token = token + 1, owner = excluded.owner, claimed_at = excluded.claimed_at
			RETURNING epoch, seq, token`},
		{s.w, &s.headStmt, `UPDATE ringcast_topics SET seq = ?1 WHERE topic = ?2 AND token = ?3 AND seq = ?4`},
		{s.w, &s.insertStmt, `INSERT INTO ringcast_messages (topic, seq, time, data) VALUES (?1, ?2, ?3, ?4)`},
		{s.w, &s.insertManyStmt, `INSERT INTO ringcast_messages (topic, seq, time, data) VALUES (?, ?, ?, ?)` +
			strings.Repeat(`, (?, ?, ?, ?)`, insertMany-1)},
		{s.w, &s.stateStmt, `SELECT token, seq FROM ringcast_topics WHERE topic = ?1`},
		{s.w, &s.trimStmt, `DELETE FROM ringcast_messages WHERE topic = ?1 AND (seq <= ?2 OR time < ?3)`},
		{s.r, &s.readStmt, `SELECT seq, time, data FROM ringcast_messages WHERE topic = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3`},
		{s.r, &s.topicsStmt, `SELECT topic, epoch, seq, owner FROM ringcast_topics WHERE topic > ?1 ORDER BY topic LIMIT ?2`},
	} {
		st, err := p.db.PrepareContext(ctx, p.sql)
		if err != nil {
			return err
		}
		*p.stmt = st
	}
	return nil
}

// Path returns the absolute path of the store's file.
func (s *Store) Path() string { return s.path }

// Claim implements store.Store.
func (s *Store) Claim(ctx context.Context, topic, owner string, epoch uint64) (store.Lease, error) {
	if err := s.enter(ctx, "claim"); err != nil {
		return store.Lease{}, err
	}
	if epoch > math.MaxInt64 {
		return store.Lease{}, fmt.Errorf("sqlite: claim %q: epoch %d is not below 2^63", topic, epoch)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Lease{}, s.fail(ctx, "claim", err)
	}
	defer tx.Rollback()
	var e, q, t int64
	err = tx.StmtContext(ctx, s.claimStmt).QueryRowContext(ctx, topic, int64(epoch), owner, time.Now().UnixNano()).Scan(&e, &q, &t)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return store.Lease{}, s.fail(ctx, "claim", err)
	}
	return store.Lease{Epoch: uint64(e), Seq: uint64(q), Token: uint64(t)}, nil
}

// validate checks a batch before it touches the database.
func validate(batch []store.Append) error {
	for i, a := range batch {
		if len(a.Messages) == 0 {
			return fmt.Errorf("sqlite: append: batch element %d (topic %q) has no messages", i, a.Topic)
		}
		first := a.Messages[0].Seq
		for j, m := range a.Messages[1:] {
			if m.Seq != first+uint64(j)+1 {
				return fmt.Errorf("sqlite: append: batch element %d (topic %q): seq %d follows seq %d", i, a.Topic, m.Seq, a.Messages[j].Seq)
			}
		}
		if first == 0 {
			return fmt.Errorf("sqlite: append: batch element %d (topic %q) starts at seq 0", i, a.Topic)
		}
		if last := a.Messages[len(a.Messages)-1].Seq; last > math.MaxInt64 || last < first {
			return fmt.Errorf("sqlite: append: batch element %d (topic %q): seq %d is not below 2^63", i, a.Topic, last)
		}
	}
	return nil
}

// Append implements store.Store. The batch is one BEGIN IMMEDIATE
// transaction; per element, the head update decides whether its messages
// are inserted.
func (s *Store) Append(ctx context.Context, batch []store.Append) ([]error, error) {
	if err := s.enter(ctx, "append"); err != nil {
		return nil, err
	}
	if err := validate(batch); err != nil {
		return nil, err
	}
	if len(batch) == 0 {
		return []error{}, nil
	}
	results, err := s.append(ctx, batch)
	if err != nil {
		return nil, s.fail(ctx, "append", err)
	}
	return results, nil
}

func (s *Store) append(ctx context.Context, batch []store.Append) ([]error, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	head := tx.StmtContext(ctx, s.headStmt)
	insert := tx.StmtContext(ctx, s.insertStmt)
	results := make([]error, len(batch))
	var insertN *sql.Stmt // prepared for the transaction when first needed
	// The rows of the elements whose head moved, inserted insertMany at a
	// time across topics, the rest one by one.
	rows := make([]any, 0, 4*insertMany)
	flush := func() error {
		if insertN == nil {
			insertN = tx.StmtContext(ctx, s.insertManyStmt)
		}
		_, err := insertN.ExecContext(ctx, rows...)
		rows = rows[:0]
		return err
	}
	for i, a := range batch {
		first := a.Messages[0].Seq
		last := a.Messages[len(a.Messages)-1].Seq
		if a.Token > math.MaxInt64 {
			results[i] = fmt.Errorf("%w: topic %q: token %d was never handed out", store.ErrFenced, a.Topic, a.Token)
			continue
		}
		res, err := head.ExecContext(ctx, int64(last), a.Topic, int64(a.Token), int64(first-1))
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			if results[i], err = s.fenced(ctx, tx, a); err != nil {
				return nil, err
			}
			continue
		}
		for _, m := range a.Messages {
			rows = append(rows, a.Topic, int64(m.Seq), m.Time, blob(m.Data))
			if len(rows) == cap(rows) {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	for r := 0; r < len(rows); r += 4 {
		if _, err := insert.ExecContext(ctx, rows[r:r+4]...); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return results, nil
}

// blob returns data as the driver binds a zero-length blob rather than
// NULL.
func blob(data []byte) []byte {
	if data == nil {
		return []byte{}
	}
	return data
}

// fenced says why an element's head update matched no row.
func (s *Store) fenced(ctx context.Context, tx *sql.Tx, a store.Append) (error, error) {
	var token, seq int64
	err := tx.StmtContext(ctx, s.stateStmt).QueryRowContext(ctx, a.Topic).Scan(&token, &seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: topic %q has never been claimed", store.ErrFenced, a.Topic), nil
	case err != nil:
		return nil, err
	case uint64(token) != a.Token:
		return fmt.Errorf("%w: topic %q: token %d is not the current %d", store.ErrFenced, a.Topic, a.Token, token), nil
	default:
		return fmt.Errorf("%w: topic %q: append starts at seq %d but the head is %d", store.ErrFenced, a.Topic, a.Messages[0].Seq, seq), nil
	}
}

// Read implements store.Store. limit must be positive; maxBytes <= 0
// returns one message.
func (s *Store) Read(ctx context.Context, topic string, after uint64, limit, maxBytes int) ([]store.Message, error) {
	if err := s.enter(ctx, "read"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("sqlite: read %q: limit %d is not positive", topic, limit)
	}
	if after >= math.MaxInt64 {
		return nil, nil
	}
	rows, err := s.readStmt.QueryContext(ctx, topic, int64(after), limit)
	if err != nil {
		return nil, s.fail(ctx, "read", err)
	}
	defer rows.Close()
	var out []store.Message
	size := 0
	for rows.Next() {
		var seq, t int64
		var data []byte
		if err := rows.Scan(&seq, &t, &data); err != nil {
			return nil, s.fail(ctx, "read", err)
		}
		if len(out) > 0 && size+len(data) > maxBytes {
			break
		}
		size += len(data)
		out = append(out, store.Message{Seq: uint64(seq), Time: t, Data: data})
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "read", err)
	}
	return out, nil
}

// Trim implements store.Store.
func (s *Store) Trim(ctx context.Context, topic string, throughSeq uint64, before int64) (int64, error) {
	if err := s.enter(ctx, "trim"); err != nil {
		return 0, err
	}
	through := int64(min(throughSeq, math.MaxInt64))
	if before == 0 {
		before = math.MinInt64 // no time is before it
	}
	res, err := s.trimStmt.ExecContext(ctx, topic, through, before)
	if err != nil {
		return 0, s.fail(ctx, "trim", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail(ctx, "trim", err)
	}
	return n, nil
}

// Topics implements store.Store. limit must be positive.
func (s *Store) Topics(ctx context.Context, after string, limit int) ([]store.TopicHead, error) {
	if err := s.enter(ctx, "topics"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("sqlite: topics: limit %d is not positive", limit)
	}
	rows, err := s.topicsStmt.QueryContext(ctx, after, limit)
	if err != nil {
		return nil, s.fail(ctx, "topics", err)
	}
	defer rows.Close()
	var out []store.TopicHead
	for rows.Next() {
		var h store.TopicHead
		var epoch, seq int64
		if err := rows.Scan(&h.Name, &epoch, &seq, &h.Owner); err != nil {
			return nil, s.fail(ctx, "topics", err)
		}
		h.Epoch, h.Seq = uint64(epoch), uint64(seq)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "topics", err)
	}
	return out, nil
}

// Close implements store.Store: it waits for the calls in progress and
// releases the file. Closing twice is not an error.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, st := range []*sql.Stmt{s.claimStmt, s.headStmt, s.insertStmt, s.insertManyStmt, s.stateStmt, s.trimStmt, s.readStmt, s.topicsStmt} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, s.r.Close(), s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite %s: close: %w", s.path, err)
	}
	s.log.Debug("sqlite store: closed", "path", s.path)
	return nil
}

// setMaxPages sets the writer connection's max_page_count: a hook for
// tests that fill the file and free space again.
func (s *Store) setMaxPages(ctx context.Context, pages int64) error {
	_, err := s.w.ExecContext(ctx, `PRAGMA max_page_count = `+strconv.FormatInt(pages, 10))
	return err
}
