package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ringcast/ringcast/pubsub/store"
)

// cancelGrace is how long a call whose ctx has ended still waits for the
// server to confirm that its statement was cancelled (or that it had
// already committed) before it drops the connection.
const cancelGrace = time.Second

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// Logger receives the store's log lines: schema migrations (Info),
	// failures mapped to store.ErrUnavailable (Debug). nil: none.
	Logger *slog.Logger

	// MaxConns bounds the pool's connections to the database. 0: the
	// URL's pool_max_conns, or else the larger of 4 and the number of
	// CPUs.
	MaxConns int32

	// MaxConnIdleTime closes connections idle that long. 0: the URL's
	// pool_max_conn_idle_time, or else 30 minutes.
	MaxConnIdleTime time.Duration
}

// Store is a store.Store in a PostgreSQL database. Its methods are safe for
// concurrent use; several Stores, in one process or many, may share a
// database.
type Store struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database url names (a postgres:// URL or a libpq
// key=value string), creates or migrates the ringcast tables and returns
// the Store. It returns an error wrapping store.ErrNotRingcast for a
// database whose ringcast tables belong to another application or to a
// newer ringcast, and one wrapping store.ErrUnavailable when the database
// cannot be reached before ctx ends.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.MaxConnIdleTime > 0 {
		cfg.MaxConnIdleTime = opts.MaxConnIdleTime
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = application
	}
	// When ctx ends mid-statement, ask the server to cancel the statement
	// and wait a little for its answer, rather than drop the connection
	// at once: a dropped connection leaves the statement running, and
	// committing, after the call has returned ErrUnavailable.
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelGrace}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool, log: log}

	err = pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		from, to, err := migrate(ctx, c.Conn())
		if err == nil && from != to {
			log.Info("postgres: ringcast schema migrated", "from", from, "to", to)
		}
		return err
	})
	if err != nil {
		pool.Close()
		if errors.Is(err, store.ErrNotRingcast) {
			return nil, fmt.Errorf("postgres: open: %w", err)
		}
		return nil, s.wrapErr(ctx, "open", err)
	}
	return s, nil
}

// Close closes the pool's connections, once the calls in flight have
// returned. Calls after Close return store.ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.pool.Close()
	return nil
}

// checkOpen refuses a call on a closed store.
func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrClosed)
	}
	return nil
}

// checkText refuses a string PostgreSQL's text cannot hold.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s %q holds a NUL byte", what, s)
	}
	return nil
}

// toInt64 converts a number the schema stores as BIGINT.
func toInt64(what string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%s %d does not fit the store (at most %d)", what, v, int64(math.MaxInt64))
	}
	return int64(v), nil
}

// newWriteBatch starts the batch of a write. Without BEGIN, the statements
// of a batch run in one implicit transaction that commits at its end: one
// round trip. When ctx has a deadline, the transaction's statements get a
// timeout that ends them on the server a little before it, so that the
// call learns that nothing was committed before it must return.
func newWriteBatch(ctx context.Context) *pgx.Batch {
	b := new(pgx.Batch)
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		timeout := left - min(max(left/10, time.Millisecond), 250*time.Millisecond)
		ms := max(timeout.Milliseconds(), 1)
		b.Queue(`SELECT set_config('statement_timeout', $1, true)`, strconv.FormatInt(ms, 10))
	}
	return b
}

const claimSQL = `
INSERT INTO ringcast_topics AS t (topic, epoch, seq, token, owner, claimed_at)
VALUES ($1, $2, 0, 1, $3, (extract(epoch FROM now()) * 1000000000)::bigint)
ON CONFLICT (topic) DO UPDATE
SET token = t.token + 1, owner = EXCLUDED.owner, claimed_at = EXCLUDED.claimed_at
RETURNING epoch, seq, token`

// Claim makes owner the topic's writer: it records the topic with epoch
// and head 0 and token 1, or increments its token, and returns the
// topic's state.
func (s *Store) Claim(ctx context.Context, topic, owner string, epoch uint64) (store.Lease, error) {
	if err := s.checkOpen("claim"); err != nil {
		return store.Lease{}, err
	}
	if topic == "" {
		return store.Lease{}, errors.New("postgres: claim: empty topic")
	}
	e, err := toInt64("epoch", epoch)
	if err == nil {
		err = cmp.Or(checkText("topic", topic), checkText("owner", owner))
	}
	if err != nil {
		return store.Lease{}, fmt.Errorf("postgres: claim: %w", err)
	}
	var l [3]int64
	b := newWriteBatch(ctx)
	b.Queue(claimSQL, topic, e, owner).QueryRow(func(r pgx.Row) error { return r.Scan(&l[0], &l[1], &l[2]) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return store.Lease{}, s.wrapErr(ctx, "claim", err)
	}
	return store.Lease{Epoch: uint64(l[0]), Seq: uint64(l[1]), Token: uint64(l[2])}, nil
}

// appendSQL is one element of an Append: the head update decides, the
// insert only inserts when it matched, and the topic's row as it was
// before the statement tells why a fenced element was.
const appendSQL = `
WITH before AS (
	SELECT token, seq FROM ringcast_topics WHERE topic = $1::text
), head AS (
	UPDATE ringcast_topics SET seq = $4::bigint
	WHERE topic = $1::text AND token = $2::bigint AND seq = $3::bigint - 1
	RETURNING topic
), ins AS (
	INSERT INTO ringcast_messages (topic, seq, time, data)
	SELECT head.topic, m.seq, m.time, m.data
	FROM head, unnest($5::bigint[], $6::bigint[], $7::bytea[]) AS m(seq, time, data)
	RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT token FROM before), (SELECT seq FROM before)`

// element is a validated element of an Append batch.
type element struct {
	index       int // in the batch
	topic       string
	token       int64
	first, last int64
	seqs, times []int64
	datas       [][]byte
}

// validate checks a batch and converts it, in execution order: by topic,
// the elements of one topic in batch order.
func validate(batch []store.Append) ([]element, error) {
	els := make([]element, len(batch))
	for i, a := range batch {
		if a.Topic == "" {
			return nil, fmt.Errorf("element %d: empty topic", i)
		}
		if err := checkText("topic", a.Topic); err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		if len(a.Messages) == 0 {
			return nil, fmt.Errorf("element %d (topic %q): no messages", i, a.Topic)
		}
		token, err := toInt64("token", a.Token)
		if err != nil {
			return nil, fmt.Errorf("element %d (topic %q): %w", i, a.Topic, err)
		}
		first := a.Messages[0].Seq
		last := first + uint64(len(a.Messages)) - 1
		if first == 0 || last < first || last > math.MaxInt64 {
			return nil, fmt.Errorf("element %d (topic %q): sequence numbers %d..%d out of range 1..%d", i, a.Topic, first, last, int64(math.MaxInt64))
		}
		e := element{
			index: i, topic: a.Topic, token: token,
			first: int64(first), last: int64(last),
			seqs:  make([]int64, len(a.Messages)),
			times: make([]int64, len(a.Messages)),
			datas: make([][]byte, len(a.Messages)),
		}
		for j, m := range a.Messages {
			if m.Seq != first+uint64(j) {
				return nil, fmt.Errorf("element %d (topic %q): message %d has sequence number %d, want %d (consecutive)", i, a.Topic, j, m.Seq, first+uint64(j))
			}
			e.seqs[j], e.times[j], e.datas[j] = int64(m.Seq), m.Time, m.Data
			if m.Data == nil {
				e.datas[j] = []byte{} // NULL is not an empty message
			}
		}
		els[i] = e
	}
	slices.SortStableFunc(els, func(a, b element) int { return strings.Compare(a.topic, b.topic) })
	return els, nil
}

// Append commits the batch in one transaction, sent in one round trip. A
// malformed batch (an element without messages, non-consecutive sequence
// numbers, a topic PostgreSQL cannot store) is refused as a whole with a
// plain error before anything is sent.
func (s *Store) Append(ctx context.Context, batch []store.Append) ([]error, error) {
	if err := s.checkOpen("append"); err != nil {
		return nil, err
	}
	els, err := validate(batch)
	if err != nil {
		return nil, fmt.Errorf("postgres: append: malformed batch: %w", err)
	}
	if len(els) == 0 {
		return []error{}, nil
	}

	b := newWriteBatch(ctx)
	results := make([]error, len(batch))
	for _, e := range els {
		b.Queue(appendSQL, e.topic, e.token, e.first, e.last, e.seqs, e.times, e.datas).QueryRow(func(r pgx.Row) error {
			var inserted int64
			var token, head *int64
			if err := r.Scan(&inserted, &token, &head); err != nil {
				return err
			}
			if inserted != int64(len(e.seqs)) {
				results[e.index] = fenced(e, token, head, inserted)
			}
			return nil
		})
	}
	// Close reports the transaction's end (the commit): only then do the
	// results stand.
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, s.wrapErr(ctx, "append", err)
	}
	return results, nil
}

// fenced explains why an element was not appended, from the topic's token
// and head as they were before its statement.
func fenced(e element, token, head *int64, inserted int64) error {
	switch {
	case inserted != 0:
		// Impossible: the head update matched a row at most once.
		return fmt.Errorf("postgres: append to %q: %d of %d messages inserted", e.topic, inserted, len(e.seqs))
	case token == nil || head == nil:
		return fmt.Errorf("%w: topic %q was never claimed", store.ErrFenced, e.topic)
	case *token != e.token:
		return fmt.Errorf("%w: topic %q: token %d is stale, the topic's is %d", store.ErrFenced, e.topic, e.token, *token)
	case *head != e.first-1:
		return fmt.Errorf("%w: topic %q: first sequence number %d does not follow the head %d", store.ErrFenced, e.topic, e.first, *head)
	default:
		return fmt.Errorf("%w: topic %q: claimed or appended to concurrently", store.ErrFenced, e.topic)
	}
}

// readSQL reads a page: at most $3 messages, and of those the prefix
// whose data add up to at most $4 bytes, or the first message alone.
const readSQL = `
SELECT seq, time, data FROM (
	SELECT seq, time, data,
	       row_number() OVER w AS n,
	       sum(octet_length(data)) OVER w AS total
	FROM ringcast_messages
	WHERE topic = $1 AND seq > $2
	WINDOW w AS (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
	ORDER BY seq
	LIMIT $3
) page
WHERE n = 1 OR total <= $4
ORDER BY seq`

// Read returns the topic's messages after the sequence number after, at
// most limit of them and at most maxBytes of data, but at least one when
// there is one (limit > 0).
func (s *Store) Read(ctx context.Context, topic string, after uint64, limit, maxBytes int) ([]store.Message, error) {
	if err := s.checkOpen("read"); err != nil {
		return nil, err
	}
	if limit <= 0 || after >= math.MaxInt64 || checkText("topic", topic) != nil {
		return nil, nil // nothing can follow; a name text cannot hold is no topic's
	}
	rows, err := s.pool.Query(ctx, readSQL, topic, int64(after), int64(limit), int64(max(maxBytes, 0)))
	if err != nil {
		return nil, s.wrapErr(ctx, "read", err)
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Message, error) {
		var seq int64
		var m store.Message
		err := r.Scan(&seq, &m.Time, &m.Data)
		m.Seq = uint64(seq)
		return m, err
	})
	if err != nil {
		return nil, s.wrapErr(ctx, "read", err)
	}
	return msgs, nil
}

const trimSQL = `DELETE FROM ringcast_messages WHERE topic = $1 AND (seq <= $2 OR time < $3)`

// Trim deletes the topic's messages up to throughSeq, and those whose
// Time is before before (0: no age bound). The head stays.
func (s *Store) Trim(ctx context.Context, topic string, throughSeq uint64, before int64) (int64, error) {
	if err := s.checkOpen("trim"); err != nil {
		return 0, err
	}
	if checkText("topic", topic) != nil {
		return 0, nil // a name text cannot hold is no topic's
	}
	through := int64(min(throughSeq, math.MaxInt64))
	if before == 0 {
		before = math.MinInt64 // no message is older
	}
	var n int64
	b := newWriteBatch(ctx)
	b.Queue(trimSQL, topic, through, before).Exec(func(tag pgconn.CommandTag) error {
		n = tag.RowsAffected()
		return nil
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, s.wrapErr(ctx, "trim", err)
	}
	return n, nil
}

const topicsSQL = `
SELECT topic, epoch, seq, owner FROM ringcast_topics
WHERE topic > $1 ORDER BY topic LIMIT $2`

const topicsAfterBytesSQL = `
SELECT topic, epoch, seq, owner FROM ringcast_topics
WHERE topic >= $1 AND convert_to(topic, 'UTF8') > $2 ORDER BY topic LIMIT $3`

// textPrefix returns the longest prefix of s that PostgreSQL's text can
// hold: valid UTF-8 without NUL.
func textPrefix(s string) string {
	for i, r := range s {
		if r == 0 || (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) {
			return s[:i]
		}
	}
	return s
}

// Topics lists at most limit topics whose name is greater than after, in
// the byte order of their names.
func (s *Store) Topics(ctx context.Context, after string, limit int) ([]store.TopicHead, error) {
	if err := s.checkOpen("topics"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	var rows pgx.Rows
	var err error
	if valid := textPrefix(after); len(valid) == len(after) {
		rows, err = s.pool.Query(ctx, topicsSQL, after, int64(limit))
	} else {
		// after is no text (invalid UTF-8 or a NUL): the index finds the
		// names after its longest text prefix, and their bytes decide.
		rows, err = s.pool.Query(ctx, topicsAfterBytesSQL, valid, []byte(after), int64(limit))
	}
	if err != nil {
		return nil, s.wrapErr(ctx, "topics", err)
	}
	heads, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.TopicHead, error) {
		var h store.TopicHead
		var epoch, seq int64
		err := r.Scan(&h.Name, &epoch, &seq, &h.Owner)
		h.Epoch, h.Seq = uint64(epoch), uint64(seq)
		return h, err
	})
	if err != nil {
		return nil, s.wrapErr(ctx, "topics", err)
	}
	return heads, nil
}
