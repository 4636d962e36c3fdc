package email

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ringcast/ringcast/cmd/internal/notify"
)

// Scheduler bounds.
const (
	maxRoundsPerTick = 10          // full batches handled back to back per tick
	maxTopicsPerMail = 500         // pending topics one email covers; the rest wait a round
	pruneEvery       = time.Minute // how often sent and failed emails past Retention are deleted
	capWindow        = time.Hour   // the per-user cap's window
)

// scheduleLoop turns due reminders into outbox emails every PollInterval,
// and prunes the outbox, until ctx ends.
func (s *Sender) scheduleLoop(ctx context.Context) {
	ticker := time.NewTicker(s.cfg.PollInterval)
	defer ticker.Stop()
	var lastPrune time.Time
	for {
		for range maxRoundsPerTick {
			n, err := s.scheduleRound(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.noteError(err)
					s.log.Warn("email: scheduling reminders", "err", err)
				}
				break
			}
			if n < s.cfg.BatchSize {
				break
			}
		}
		if time.Since(lastPrune) >= pruneEvery {
			lastPrune = time.Now()
			if err := s.prune(ctx); err != nil && ctx.Err() == nil {
				s.noteError(err)
				s.log.Warn("email: pruning the outbox", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// scheduleRound handles the users with due reminders, at most BatchSize of
// them, and returns how many it found.
func (s *Sender) scheduleRound(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	now := s.now().UnixNano()
	rows, err := s.db.SQL.QueryContext(ctx, s.db.Rebind(`SELECT user_id FROM notify_pending WHERE due_at <= ?
		GROUP BY user_id ORDER BY MIN(due_at), user_id LIMIT ?`), now, s.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("email: due reminders: %w", err)
	}
	var users []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			rows.Close()
			return 0, fmt.Errorf("email: due reminders: %w", err)
		}
		users = append(users, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("email: due reminders: %w", err)
	}
	for _, u := range users {
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if err = s.scheduleUser(ctx, u); err == nil || !retryableTx(err) {
				break
			}
		}
		if err != nil {
			return len(users), fmt.Errorf("email: reminders of %s: %w", u, err)
		}
	}
	return len(users), nil
}

// pendingRow is one due reminder of a user.
type pendingRow struct {
	topic string
	seq   uint64
}

// scheduleUser decides, in one transaction, what becomes of a user's due
// reminders: dropped (read, online, unsubscribed, no address), postponed
// (per-user cap), or turned into one outbox email.
func (s *Sender) scheduleUser(ctx context.Context, user string) error {
	tx, err := s.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var counts scheduleCounts
	queued, err := s.scheduleUserTx(ctx, tx, user, &counts)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.droppedRead.Add(counts.read)
	s.droppedOnline.Add(counts.online)
	s.droppedNoAddr.Add(counts.noAddress)
	s.droppedUnsubscribed.Add(counts.unsubscribed)
	s.postponed.Add(counts.postponed)
	if queued {
		s.queued.Add(1)
		s.nudge()
	}
	return nil
}

// scheduleCounts are one user's outcomes, added to the Sender's counters
// once the transaction commits.
type scheduleCounts struct {
	read, online, noAddress, unsubscribed, postponed uint64
}

// scheduleUserTx is scheduleUser's work inside tx; it reports whether it
// queued an email.
func (s *Sender) scheduleUserTx(ctx context.Context, tx *sql.Tx, user string, counts *scheduleCounts) (bool, error) {
	nowT := s.now()
	now := nowT.UnixNano()
	q := `SELECT topic, seq FROM notify_pending WHERE user_id = ? AND due_at <= ? ORDER BY topic LIMIT ?`
	if s.db.Dialect == notify.Postgres {
		// Concurrent schedulers (other nodes) wait for this one and then
		// find the rows gone; Notified's upserts wait too.
		q += ` FOR UPDATE`
	}
	rows, err := tx.QueryContext(ctx, s.db.Rebind(q), user, now, maxTopicsPerMail)
	if err != nil {
		return false, err
	}
	var due []pendingRow
	for rows.Next() {
		var p pendingRow
		var seq int64
		if err := rows.Scan(&p.topic, &seq); err != nil {
			rows.Close()
			return false, err
		}
		p.seq = uint64(seq)
		due = append(due, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	if len(due) == 0 {
		return false, nil // another scheduler took them
	}
	drop := func(rows []pendingRow) error {
		for _, p := range rows {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM notify_pending WHERE user_id = ? AND topic = ? AND seq = ?`), user, p.topic, int64(p.seq)); err != nil {
				return err
			}
		}
		return nil
	}

	// A live connection shows the notifications in real time.
	var online int64
	if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM notify_online WHERE user_id = ? AND until > ?`), user, now).Scan(&online); err != nil {
		return false, err
	}
	if online > 0 {
		counts.online += uint64(len(due))
		return false, drop(due)
	}

	var address string
	switch err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT email FROM notify_users WHERE id = ?`), user).Scan(&address); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, err
	}
	if address == "" {
		counts.noAddress += uint64(len(due))
		return false, drop(due)
	}

	// Each topic's read state: subscribed still, cursor, head.
	var topics []topicUnread
	var dropped, mailed []pendingRow
	for _, p := range due {
		var subscribed, readSeq, head int64
		err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT
			(SELECT COUNT(*) FROM notify_subscriptions WHERE user_id = ? AND topic = ?),
			COALESCE((SELECT read_seq FROM notify_cursors WHERE user_id = ? AND topic = ?), 0),
			COALESCE((SELECT seq FROM ringcast_topics WHERE topic = ?), 0)`),
			user, p.topic, user, p.topic, ringPrefix+p.topic).Scan(&subscribed, &readSeq, &head)
		if err != nil {
			return false, err
		}
		switch {
		case subscribed == 0:
			counts.unsubscribed++
			dropped = append(dropped, p)
		case uint64(readSeq) >= p.seq:
			counts.read++
			dropped = append(dropped, p)
		default:
			topics = append(topics, topicUnread{topic: p.topic, readSeq: uint64(readSeq), head: max(uint64(head), p.seq)})
			mailed = append(mailed, p)
		}
	}
	if err := drop(dropped); err != nil {
		return false, err
	}
	if len(topics) == 0 {
		return false, nil
	}

	// The per-user cap: emails sent in the last hour, and those queued.
	if s.cfg.PerUserPerHour > 0 {
		allowed, err := s.capAllows(ctx, tx, user, nowT)
		if err != nil {
			return false, err
		}
		if allowed.After(nowT) {
			// Put the reminders off until the window has room; whatever is
			// still unread then merges into one email.
			for _, p := range mailed {
				if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE notify_pending SET due_at = ? WHERE user_id = ? AND topic = ? AND seq = ?`),
					allowed.UnixNano(), user, p.topic, int64(p.seq)); err != nil {
					return false, err
				}
			}
			counts.postponed += uint64(len(mailed))
			return false, nil
		}
	}

	digest := isDigest(topics, s.cfg.DigestAfter)
	perTopic := excerptsPerTopic
	if !digest {
		perTopic = s.cfg.DigestAfter
	}
	for i := range topics {
		latest, err := s.latest(ctx, tx, topics[i], perTopic)
		if err != nil {
			return false, err
		}
		topics[i].latest = latest
	}
	subject, body := reminder{user: user, topics: topics, digest: digest, delay: s.cfg.Delay, link: s.cfg.Link}.render()
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO notify_outbox
		(user_id, address, subject, body, message_id, state, attempts, next_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`),
		user, address, subject, body, s.newMessageID(), StatePending, now, now); err != nil {
		return false, err
	}
	return true, drop(mailed)
}

// capAllows returns when the user may get the next email under the
// per-user cap: now when fewer than PerUserPerHour emails were sent in the
// last hour or are queued, else an hour after the oldest of the
// PerUserPerHour most recent (a queued email counts from its creation).
func (s *Sender) capAllows(ctx context.Context, tx *sql.Tx, user string, now time.Time) (time.Time, error) {
	since := now.Add(-capWindow).UnixNano()
	rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT CASE WHEN state = ? THEN sent_at ELSE created_at END AS t
		FROM notify_outbox WHERE user_id = ? AND (sent_at > ? OR state IN (?, ?))
		ORDER BY t DESC LIMIT ?`), StateSent, user, since, StatePending, StateSending, s.cfg.PerUserPerHour)
	if err != nil {
		return time.Time{}, err
	}
	defer rows.Close()
	var times []int64
	for rows.Next() {
		var t int64
		if err := rows.Scan(&t); err != nil {
			return time.Time{}, err
		}
		times = append(times, t)
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, err
	}
	if len(times) < s.cfg.PerUserPerHour {
		return now, nil
	}
	return time.Unix(0, times[len(times)-1]).Add(capWindow), nil
}

// latest returns up to n of a topic's newest unread notifications, newest
// first (fewer when the store has trimmed them).
func (s *Sender) latest(ctx context.Context, tx *sql.Tx, t topicUnread, n int) ([]excerpt, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT seq, data FROM ringcast_messages
		WHERE topic = ? AND seq > ? ORDER BY seq DESC LIMIT ?`), ringPrefix+t.topic, int64(t.readSeq), n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []excerpt
	for rows.Next() {
		var e excerpt
		var seq int64
		if err := rows.Scan(&seq, &e.data); err != nil {
			return nil, err
		}
		e.seq = uint64(seq)
		out = append(out, e)
	}
	return out, rows.Err()
}

// prune deletes sent and failed emails older than Retention, in bounded
// batches.
func (s *Sender) prune(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	before := s.now().Add(-s.cfg.Retention).UnixNano()
	for range maxRoundsPerTick {
		res, err := s.db.SQL.ExecContext(ctx, s.db.Rebind(`DELETE FROM notify_outbox WHERE id IN (
			SELECT id FROM notify_outbox WHERE (state = ? AND sent_at < ?) OR (state = ? AND next_at < ?) LIMIT ?)`),
			StateSent, before, StateFailed, before, s.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("email: prune: %w", err)
		}
		if n, _ := res.RowsAffected(); n < int64(s.cfg.BatchSize) {
			return nil
		}
	}
	return nil
}
