package sqlite

import (
	"context"
	"errors"
	"fmt"

	msqlite "modernc.org/sqlite"

	"github.com/ringcast/ringcast/pubsub/store"
)

// SQLite's primary result codes that this package tells apart.
const (
	codeBusy      = 5
	codeLocked    = 6
	codeNoMem     = 7
	codeInterrupt = 9
	codeIOErr     = 10
	codeCorrupt   = 11
	codeFull      = 13
	codeCantOpen  = 14
	codeProtocol  = 15
	codeNotADB    = 26
)

// sqliteCode returns the primary SQLite result code in err's chain.
func sqliteCode(err error) (int, bool) {
	var e *msqlite.Error
	if errors.As(err, &e) {
		return e.Code() & 0xff, true
	}
	return 0, false
}

// expected reports whether err is a failure a healthy store meets now and
// then (the file locked, the disk full, an I/O error, a call interrupted),
// as opposed to one that points at a damaged file or a bug.
func expected(err error) bool {
	code, ok := sqliteCode(err)
	if !ok {
		return true
	}
	switch code {
	case codeBusy, codeLocked, codeNoMem, codeInterrupt, codeIOErr, codeFull, codeCantOpen, codeProtocol:
		return true
	}
	return false
}

// fail turns a failed database call into the error the Store returns:
// store.ErrClosed once the Store is closed, otherwise an error wrapping
// store.ErrUnavailable, the context's error when the context is done, and
// the cause.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlite %s: %s: %w", s.path, op, store.ErrClosed)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: sqlite %s: %s: %w (%w)", store.ErrUnavailable, s.path, op, cerr, err)
	}
	if !expected(err) {
		s.log.Error("sqlite store: unexpected database error", "path", s.path, "op", op, "err", err)
	}
	return fmt.Errorf("%w: sqlite %s: %s: %w", store.ErrUnavailable, s.path, op, err)
}

// enter checks that the Store is open and ctx not done before a call.
func (s *Store) enter(ctx context.Context, op string) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlite %s: %s: %w", s.path, op, store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: sqlite %s: %s: %w", store.ErrUnavailable, s.path, op, err)
	}
	return nil
}
