package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/ringcast/ringcast/pubsub/store"
)

// failure classifies an error of the database or of reaching it.
type failure int

const (
	failPlain       failure = iota // a bug, a constraint, bad input: not transient
	failUnavailable                // transient: retry later
	failConnLost                   // transient, and the pool's idle connections are suspect
)

// classify tells what err means for the caller.
func classify(ctx context.Context, err error) failure {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return failUnavailable
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return classifyCode(pgErr.Code)
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case pgconn.Timeout(err):
		return failUnavailable
	case errors.As(err, &connectErr),
		errors.As(err, &netErr),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		pgconn.SafeToRetry(err): // failed before sending anything: a closed connection
		return failConnLost
	}
	return failPlain
}

// classifyCode classifies a SQLSTATE.
func classifyCode(code string) failure {
	class := code[:min(2, len(code))]
	switch {
	case class == "08", // connection exception
		code == "57P01", // admin_shutdown
		code == "57P02", // crash_shutdown
		code == "57P03": // cannot_connect_now (starting up, shutting down, recovering)
		return failConnLost
	case class == "40", // transaction rollback: serialization failure, deadlock
		class == "53",   // insufficient resources: disk full, out of memory, too many connections
		class == "57",   // operator intervention: query_canceled (statement_timeout), database dropped
		class == "58",   // system error: I/O error
		code == "55P03", // lock_not_available (lock_timeout)
		code == "25006", // read_only_sql_transaction: a standby, or a primary being demoted
		code == "25P03": // idle_in_transaction_session_timeout
		return failUnavailable
	}
	return failPlain
}

// wrapErr turns an error of operation op into the error the caller sees:
// store.ErrClosed after Close, store.ErrUnavailable (cause kept) for a
// transient failure, the error itself otherwise. It discards the pool's
// idle connections after a lost connection.
func (s *Store) wrapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, puddle.ErrClosedPool) || s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrClosed)
	}
	switch classify(ctx, err) {
	case failConnLost:
		// The server restarted, or the network broke: every idle
		// connection is likely dead too, and the next call had better
		// connect afresh than fail on one of them.
		s.pool.Reset()
		fallthrough
	case failUnavailable:
		s.log.Debug("postgres: store unavailable", "op", op, "err", err)
		cerr := ctx.Err()
		if _, ok := ctx.Deadline(); ok && cerr == nil && isStatementTimeout(err) {
			// The timeout newWriteBatch derived from ctx's deadline.
			cerr = context.DeadlineExceeded
		}
		if cerr != nil && !errors.Is(err, cerr) {
			return fmt.Errorf("postgres: %s: %w: %w: %w", op, store.ErrUnavailable, cerr, err)
		}
		return fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// isStatementTimeout reports the server's cancellation of a statement
// that ran out of statement_timeout.
func isStatementTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "57014" && strings.Contains(pgErr.Message, "statement timeout")
}
