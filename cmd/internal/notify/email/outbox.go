package email

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/mail"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ringcast/ringcast/cmd/internal/notify"
)

// maxErrorLen bounds last_error.
const maxErrorLen = 1000

// outboxRow is an email a sender has claimed.
type outboxRow struct {
	id        int64
	user      string
	address   string
	subject   string
	body      string
	messageID string
	attempts  int   // including this one
	createdAt int64 // unix nanoseconds
}

// sendLoop claims due emails and sends them, at most MaxConcurrent at
// once, every PollInterval or when woken, until ctx ends. Sends in flight
// at the end are let finish (Close waits for them).
func (s *Sender) sendLoop(ctx context.Context) {
	ticker := time.NewTicker(s.cfg.PollInterval)
	defer ticker.Stop()
	for {
		s.claimAndSend(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-s.wake:
		}
	}
}

// claimAndSend claims as many due emails as there are free send slots
// (one probe while the breaker is half-open, none while it is open) and
// starts a send for each.
func (s *Sender) claimAndSend(ctx context.Context) {
	free := s.cfg.MaxConcurrent - int(s.inflight.Load())
	switch s.breaker.State() {
	case gobreaker.StateOpen:
		return
	case gobreaker.StateHalfOpen:
		if s.inflight.Load() > 0 {
			return
		}
		free = 1
	}
	if free <= 0 || ctx.Err() != nil {
		return
	}
	rows, err := s.claim(ctx, free)
	if err != nil {
		if ctx.Err() == nil {
			s.noteError(err)
			s.log.Warn("email: claiming emails", "err", err)
		}
		return
	}
	for _, r := range rows {
		s.inflight.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.nudge()
			defer s.inflight.Add(-1)
			s.send(r)
		}()
	}
}

// claim takes up to n emails due now, or whose lease has expired (a sender
// that died mid-send), into state sending under this Sender's lease,
// counting the attempt. It runs in a transaction on a context Close does
// not cancel (bounded by dbTimeout): claimed rows are either all handed to
// the caller or not claimed at all, never left under a lease nobody works
// on.
func (s *Sender) claim(ctx context.Context, n int) (out []outboxRow, err error) {
	if ctx.Err() != nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	now := s.now().UnixNano()
	until := s.now().Add(2 * s.cfg.SendTimeout).UnixNano()
	// A read first: most polls find nothing, and need no write lock (on
	// SQLite, the store's appends share it).
	var due int64
	if err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM (SELECT id FROM notify_outbox
		WHERE (state = ? AND next_at <= ?) OR (state = ? AND claim_until <= ?) LIMIT 1) AS due`),
		StatePending, now, StateSending, now).Scan(&due); err != nil {
		return nil, fmt.Errorf("email: claim: %w", err)
	}
	if due == 0 {
		return nil, nil
	}
	lock := ""
	if s.db.Dialect == notify.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	tx, err := s.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("email: claim: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	rows, err := tx.QueryContext(ctx, s.db.Rebind(`UPDATE notify_outbox
		SET state = ?, claimed_by = ?, claim_until = ?, attempts = attempts + 1
		WHERE id IN (SELECT id FROM notify_outbox
			WHERE (state = ? AND next_at <= ?) OR (state = ? AND claim_until <= ?)
			ORDER BY next_at, id LIMIT ?`+lock+`)
		RETURNING id, user_id, address, subject, body, message_id, attempts, created_at`),
		StateSending, s.claimer, until, StatePending, now, StateSending, now, n)
	if err != nil {
		return nil, fmt.Errorf("email: claim: %w", err)
	}
	for rows.Next() {
		var r outboxRow
		if err = rows.Scan(&r.id, &r.user, &r.address, &r.subject, &r.body, &r.messageID, &r.attempts, &r.createdAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("email: claim: %w", err)
		}
		out = append(out, r)
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("email: claim: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("email: claim: %w", err)
	}
	return out, nil
}

// send runs one claimed email's SMTP transaction through the breaker and
// records the outcome.
func (s *Sender) send(r outboxRow) {
	if r.attempts > 1 {
		s.log.Debug("email: retrying", "id", r.id, "attempt", r.attempts)
	}
	to, err := mail.ParseAddress(r.address)
	if err != nil {
		s.record(r, &permanentError{fmt.Errorf("recipient address %q: %v", r.address, err)})
		return
	}
	data, err := compose(s.from, to, r.subject, r.body, r.messageID, s.now())
	if err != nil {
		s.record(r, &permanentError{fmt.Errorf("composing the message: %v", err)})
		return
	}
	env := envelope{from: s.from.Address, to: to.Address, data: data}
	_, err = s.breaker.Execute(func() (struct{}, error) {
		return struct{}{}, s.transmit(context.Background(), env)
	})
	s.record(r, err)
}

// record writes a send's outcome: sent; failed (a permanent rejection, or
// out of attempts); back to pending without counting the attempt (the
// breaker refused it); or pending for a retry after a backoff. Only this
// Sender's lease is updated: an email whose lease expired and was taken by
// another sender is left to it.
func (s *Sender) record(r outboxRow, sendErr error) {
	now := s.now()
	var (
		query string
		args  []any
		what  string
	)
	switch {
	case sendErr == nil:
		query = `UPDATE notify_outbox SET state = ?, sent_at = ?, claimed_by = '', claim_until = 0, last_error = ''
			WHERE id = ? AND state = ? AND claimed_by = ?`
		args = []any{StateSent, now.UnixNano(), r.id, StateSending, s.claimer}
		what = "sent"
	case errors.Is(sendErr, gobreaker.ErrOpenState) || errors.Is(sendErr, gobreaker.ErrTooManyRequests):
		query = `UPDATE notify_outbox SET state = ?, attempts = attempts - 1, next_at = ?, claimed_by = '', claim_until = 0
			WHERE id = ? AND state = ? AND claimed_by = ?`
		args = []any{StatePending, now.UnixNano(), r.id, StateSending, s.claimer}
		what = "released"
	case isPermanent(sendErr) || r.attempts >= s.cfg.MaxAttempts:
		query = `UPDATE notify_outbox SET state = ?, next_at = ?, claimed_by = '', claim_until = 0, last_error = ?
			WHERE id = ? AND state = ? AND claimed_by = ?`
		args = []any{StateFailed, now.UnixNano(), truncate(sendErr.Error()), r.id, StateSending, s.claimer}
		what = "failed"
	default:
		next := now.Add(s.backoff(r.attempts))
		query = `UPDATE notify_outbox SET state = ?, next_at = ?, claimed_by = '', claim_until = 0, last_error = ?
			WHERE id = ? AND state = ? AND claimed_by = ?`
		args = []any{StatePending, next.UnixNano(), truncate(sendErr.Error()), r.id, StateSending, s.claimer}
		what = "retry"
	}
	// The outcome must be recorded even while the Sender closes, and
	// despite a database hiccup: a sent email left in state sending is
	// sent again once its lease expires.
	var n int64
	var err error
	deadline := time.Now().Add(dbTimeout)
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		var res interface{ RowsAffected() (int64, error) }
		res, err = s.db.SQL.ExecContext(ctx, s.db.Rebind(query), args...)
		cancel()
		if err == nil {
			n, _ = res.RowsAffected()
			break
		}
		if attempt == 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
	}
	if err != nil {
		s.noteError(fmt.Errorf("email: recording email %d as %s: %w", r.id, what, err))
		s.log.Error("email: recording an email's outcome", "id", r.id, "outcome", what, "err", err)
		return
	}
	if n == 0 {
		s.leaseLost.Add(1)
		s.log.Warn("email: lease lost before recording the outcome (SendTimeout too short?)", "id", r.id, "outcome", what)
	}
	switch what {
	case "sent":
		s.sent.Add(1)
		s.log.Debug("email: sent", "id", r.id, "user", r.user, "message_id", r.messageID)
	case "released":
	case "failed":
		s.failed.Add(1)
		s.noteError(sendErr)
		s.log.Warn("email: failed for good", "id", r.id, "user", r.user, "attempts", r.attempts, "err", sendErr)
	case "retry":
		s.retries.Add(1)
		s.noteError(sendErr)
		s.log.Info("email: send failed, will retry", "id", r.id, "attempt", r.attempts, "err", sendErr)
	}
}

// backoff is the delay before the retry that follows attempt (1-based):
// exponential from BackoffMin, capped at BackoffMax, with full jitter
// above BackoffMin (uniform between BackoffMin and the ceiling).
func (s *Sender) backoff(attempt int) time.Duration {
	ceiling := s.cfg.BackoffMin
	for i := 1; i < attempt && ceiling < s.cfg.BackoffMax; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, s.cfg.BackoffMax)
	spread := ceiling - s.cfg.BackoffMin
	if spread <= 0 {
		return s.cfg.BackoffMin
	}
	return s.cfg.BackoffMin + rand.N(spread+1)
}

// truncate bounds an error message for last_error.
func truncate(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	return trimRunes(s, maxErrorLen/4)
}
