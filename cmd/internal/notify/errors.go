package notify

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	msqlite "modernc.org/sqlite"
)

// Errors. The errors of Service wrap one of these (test with errors.Is);
// the text after the sentinel says what was wrong. The HTTP API answers
// each with its status code.
var (
	// ErrUnauthorized: no credentials, or credentials that are wrong,
	// expired or revoked (HTTP 401).
	ErrUnauthorized = errors.New("notify: unauthorized")
	// ErrForbidden: the caller may not do that (HTTP 403), for example
	// publish to a topic it did not create.
	ErrForbidden = errors.New("notify: forbidden")
	// ErrNotFound: no such user, topic, subscription or notification
	// (HTTP 404).
	ErrNotFound = errors.New("notify: not found")
	// ErrConflict: the name is taken (HTTP 409).
	ErrConflict = errors.New("notify: conflict")
	// ErrInvalid: the request is malformed or a value is out of range
	// (HTTP 400).
	ErrInvalid = errors.New("notify: invalid request")
	// ErrTooLarge: a body or a notification is larger than allowed (HTTP
	// 413).
	ErrTooLarge = errors.New("notify: too large")
	// ErrRateLimited: too many attempts; try again later (HTTP 429).
	ErrRateLimited = errors.New("notify: too many requests")
	// ErrUnavailable: the database or the pub/sub cluster could not be
	// reached or written in time; nothing was changed, try again later
	// (HTTP 503).
	ErrUnavailable = errors.New("notify: unavailable")
)

// SQLite's primary result codes of a database that is busy, full or
// unreachable for now.
const (
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteNoMem    = 7
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteCantOpen = 14
)

// transient reports whether err is a failure to reach or write the
// database that may pass (connection lost, timeout, database locked or
// full), as opposed to a bug or a constraint.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqliteBusy, sqliteLocked, sqliteNoMem, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return true
		}
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := pgErr.Code
		class := code[:min(2, len(code))]
		switch {
		case class == "08", class == "40", class == "53", class == "57", class == "58",
			code == "55P03", code == "25006":
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		pgconn.Timeout(err) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// wrapDB returns a database error as the caller sees it: wrapping
// ErrUnavailable (cause kept) when it is transient or ctx has ended,
// unchanged otherwise. nil stays nil.
func wrapDB(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	if ctx.Err() != nil || transient(err) {
		return fmt.Errorf("%w: database: %w", ErrUnavailable, err)
	}
	return err
}
