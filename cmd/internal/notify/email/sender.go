package email

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sony/gobreaker/v2"

	"github.com/ringcast/ringcast/cmd/internal/notify"
)

// Outbox states (notify_outbox.state).
const (
	// StatePending: waiting for its next attempt (next_at).
	StatePending = "pending"
	// StateSending: a sender holds it under a lease (claimed_by,
	// claim_until) and is running the SMTP transaction.
	StateSending = "sending"
	// StateSent: the server accepted it (sent_at).
	StateSent = "sent"
	// StateFailed: rejected for good, or out of attempts (last_error).
	StateFailed = "failed"
)

// ringPrefix is the ringcast topic prefix of notification topic names in
// the store's ringcast_topics and ringcast_messages.
const ringPrefix = "notifications:"

// dbTimeout bounds each database round of the loops, and the marking of a
// sent email after Close.
const dbTimeout = 30 * time.Second

// Sender turns unread notifications into emails: it records reminders
// (Notified), decides which are due and sends them through a durable
// outbox. Start runs its loops; Close stops them. Several Senders, in one
// process or on several nodes, may share one database: each email is
// claimed by one of them at a time. A Sender is safe for concurrent use.
type Sender struct {
	db      *notify.DB
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	from    *mail.Address
	domain  string // From's domain, which ends every Message-ID
	host    string // the SMTP server's host
	claimer string // claimed_by of this Sender's leases: node/instance
	breaker *gobreaker.CircuitBreaker[struct{}]

	wake     chan struct{} // nudges the send loop (buffer 1)
	inflight atomic.Int64  // SMTP transactions running

	hookMu   sync.Mutex
	hooked   map[string]uint64 // OnNotify's topics not yet recorded → greatest seq
	hookWake chan struct{}     // nudges the hook loop (buffer 1)

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup // loops and sends

	// Counters of Stats.
	queued, sent, retries, failed             atomic.Uint64
	droppedRead, droppedOnline, droppedNoAddr atomic.Uint64
	droppedUnsubscribed, postponed, leaseLost atomic.Uint64
	breakerOpened                             atomic.Uint64

	errMu     sync.Mutex
	lastErr   string
	lastErrAt time.Time
}

// New returns a Sender on db, the notification system's database (its
// notify_pending and notify_outbox tables), configured by cfg. Nothing runs
// until Start.
func New(db *notify.DB, cfg Config) (*Sender, error) {
	if db == nil || db.SQL == nil {
		return nil, errors.New("email: no database")
	}
	cfg, from, host, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	var id [4]byte
	_, _ = rand.Read(id[:])
	s := &Sender{
		db:       db,
		cfg:      cfg,
		log:      cfg.Logger.With("component", "email"),
		now:      cfg.Clock,
		from:     from,
		domain:   domain,
		host:     host,
		claimer:  cfg.Node + "/" + hex.EncodeToString(id[:]),
		wake:     make(chan struct{}, 1),
		hooked:   map[string]uint64{},
		hookWake: make(chan struct{}, 1),
	}
	failures := uint32(cfg.BreakerFailures)
	s.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        cfg.Addr,
		MaxRequests: 1,
		Timeout:     cfg.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		// A permanent rejection of one email is the server working.
		IsSuccessful: func(err error) bool { return err == nil || isPermanent(err) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				s.breakerOpened.Add(1)
			}
			s.log.Info("email: SMTP circuit breaker", "server", name, "from", from.String(), "to", to.String())
			s.nudge()
		},
	})
	return s, nil
}

// Start runs the scheduler and send loops on goroutines the Sender owns,
// until Close. Calling it again, or after Close, does nothing.
func (s *Sender) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.hookLoop(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.scheduleLoop(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.sendLoop(ctx)
	}()
	s.log.Info("email: started", "smtp", s.cfg.Addr, "tls", string(s.cfg.TLS), "delay", s.cfg.Delay, "claimer", s.claimer)
}

// Close stops the loops and waits for them, and for the SMTP transactions
// in flight, which are let finish (each is bounded by SendTimeout) and
// recorded, so that a clean shutdown leaves no email in state sending.
// Reminders OnNotify took and not yet recorded are recorded before it
// returns (within a bounded time; a failure is logged). It is idempotent
// and never fails.
func (s *Sender) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
	ctx, cancelFlush := context.WithTimeout(context.Background(), dbTimeout)
	defer cancelFlush()
	if n, err := s.flushHooked(ctx); err != nil {
		s.log.Error("email: reminders lost at shutdown: the database failed", "topics", n, "err", err)
	}
	return nil
}

// OnNotify is Notified for the core's OnNotify hook (notify.Options),
// which must not block: it only notes the topic's greatest seq in memory,
// and a loop of the Sender records it with Notified at once. Several
// notifications of a topic noted before the loop gets to them merge into
// one statement (the reminder takes the greatest seq), so the memory used
// is bounded by the number of topics, and nothing is dropped. A reminder
// that cannot be recorded (the database is down) is retried every
// PollInterval, and once more by Close.
func (s *Sender) OnNotify(topic string, seq uint64) {
	if topic == "" || seq == 0 {
		return
	}
	s.hookMu.Lock()
	if seq > s.hooked[topic] {
		s.hooked[topic] = seq
	}
	s.hookMu.Unlock()
	select {
	case s.hookWake <- struct{}{}:
	default:
	}
}

// hookLoop records what OnNotify noted, until ctx ends.
func (s *Sender) hookLoop(ctx context.Context) {
	ticker := time.NewTicker(s.cfg.PollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.hookWake:
		case <-ticker.C:
		}
		rctx, cancel := context.WithTimeout(ctx, dbTimeout)
		if _, err := s.flushHooked(rctx); err != nil && ctx.Err() == nil {
			s.noteError(err)
			s.log.Warn("email: recording reminders", "err", err)
		}
		cancel()
	}
}

// flushHooked records every topic OnNotify noted; those that fail go back
// to be retried. It returns how many failed and the first error.
func (s *Sender) flushHooked(ctx context.Context) (int, error) {
	s.hookMu.Lock()
	batch := s.hooked
	s.hooked = map[string]uint64{}
	s.hookMu.Unlock()
	var firstErr error
	failed := 0
	for topic, seq := range batch {
		if firstErr == nil {
			if err := s.Notified(ctx, topic, seq); err == nil {
				continue
			} else {
				firstErr = err
			}
		}
		failed++
		s.hookMu.Lock()
		if seq > s.hooked[topic] {
			s.hooked[topic] = seq
		}
		s.hookMu.Unlock()
	}
	return failed, firstErr
}

// Notified records that notification seq of topic has been committed: one
// statement upserts a pending reminder for every subscriber of the topic
// but its creator, due Delay from now. A reminder already pending for a
// (user, topic) keeps its earlier due time and takes the greater seq. It
// is the core's OnNotify hook; call it after the notification commits.
func (s *Sender) Notified(ctx context.Context, topic string, seq uint64) error {
	if topic == "" || seq == 0 {
		return fmt.Errorf("email: Notified(%q, %d): want a topic and a sequence number", topic, seq)
	}
	due := s.now().Add(s.cfg.Delay).UnixNano()
	q := `INSERT INTO notify_pending (user_id, topic, seq, due_at)
		SELECT s.user_id, s.topic, ?, ? FROM notify_subscriptions s
		JOIN notify_topics t ON t.name = s.topic
		WHERE s.topic = ? AND s.user_id <> t.creator
		ON CONFLICT (user_id, topic) DO UPDATE SET
			seq = ` + s.greatest("notify_pending.seq", "excluded.seq") + `,
			due_at = ` + s.least("notify_pending.due_at", "excluded.due_at")
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if _, err = s.db.SQL.ExecContext(ctx, s.db.Rebind(q), int64(seq), due, topic); err == nil || !retryableTx(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("email: recording reminders for %s #%d: %w", topic, seq, err)
	}
	return nil
}

// greatest is the SQL expression of the larger of a and b.
func (s *Sender) greatest(a, b string) string {
	if s.db.Dialect == notify.Postgres {
		return "GREATEST(" + a + ", " + b + ")"
	}
	return "max(" + a + ", " + b + ")"
}

// least is the SQL expression of the smaller of a and b.
func (s *Sender) least(a, b string) string {
	if s.db.Dialect == notify.Postgres {
		return "LEAST(" + a + ", " + b + ")"
	}
	return "min(" + a + ", " + b + ")"
}

// retryableTx reports whether err is a PostgreSQL deadlock or
// serialisation failure, which running the transaction again cures.
func retryableTx(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// nudge wakes the send loop.
func (s *Sender) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// noteError records the last error for Stats.
func (s *Sender) noteError(err error) {
	s.errMu.Lock()
	s.lastErr = err.Error()
	s.lastErrAt = s.now()
	s.errMu.Unlock()
}

// Stats is the state of the email system, for GET /api/stats and metrics.
// Pending and Outbox count the database's rows (every node's); the other
// counters are this Sender's since it was created.
type Stats struct {
	// Pending is the reminders not yet due or not yet handled
	// (notify_pending rows); PendingDue those already due.
	Pending    int64 `json:"pending"`
	PendingDue int64 `json:"pending_due"`
	// Outbox counts emails by state: pending, sending, sent, failed (sent
	// and failed emails are kept for Config.Retention).
	Outbox map[string]int64 `json:"outbox"`
	// Queued is the emails this Sender's scheduler put in the outbox.
	Queued uint64 `json:"queued"`
	// Sent, Retries and Failed count this Sender's SMTP outcomes: accepted,
	// failed and rescheduled, failed for good.
	Sent    uint64 `json:"sent"`
	Retries uint64 `json:"retries"`
	Failed  uint64 `json:"failed"`
	// Dropped counts reminders not sent, by reason.
	Dropped DroppedStats `json:"dropped"`
	// Postponed counts reminders put off by the per-user cap.
	Postponed uint64 `json:"postponed"`
	// LeaseLost counts sends whose lease had expired and been taken by
	// another sender before they were recorded (SendTimeout too short).
	LeaseLost uint64 `json:"lease_lost"`
	// InFlight is the SMTP transactions running now.
	InFlight int64 `json:"in_flight"`
	// Breaker is the SMTP server's circuit breaker: "closed", "open" or
	// "half-open"; BreakerOpened counts its openings.
	Breaker       string `json:"breaker"`
	BreakerOpened uint64 `json:"breaker_opened"`
	// LastError and LastErrorAt are the last failure (SMTP or database)
	// and when it happened.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// DroppedStats counts reminders dropped without an email.
type DroppedStats struct {
	// Read: the user's cursor had reached the notification.
	Read uint64 `json:"read"`
	// Online: the user had a live connection (saw it in real time).
	Online uint64 `json:"online"`
	// NoAddress: the user has no email address (no notify_users row, as
	// for users known only from a JWT).
	NoAddress uint64 `json:"no_address"`
	// Unsubscribed: the user left the topic (or it was deleted).
	Unsubscribed uint64 `json:"unsubscribed"`
}

// Stats returns the email system's state: row counts from the database
// and this Sender's counters.
func (s *Sender) Stats(ctx context.Context) (Stats, error) {
	st := Stats{
		Outbox:        map[string]int64{StatePending: 0, StateSending: 0, StateSent: 0, StateFailed: 0},
		Queued:        s.queued.Load(),
		Sent:          s.sent.Load(),
		Retries:       s.retries.Load(),
		Failed:        s.failed.Load(),
		Postponed:     s.postponed.Load(),
		LeaseLost:     s.leaseLost.Load(),
		InFlight:      s.inflight.Load(),
		Breaker:       s.breaker.State().String(),
		BreakerOpened: s.breakerOpened.Load(),
		Dropped: DroppedStats{
			Read:         s.droppedRead.Load(),
			Online:       s.droppedOnline.Load(),
			NoAddress:    s.droppedNoAddr.Load(),
			Unsubscribed: s.droppedUnsubscribed.Load(),
		},
	}
	s.errMu.Lock()
	st.LastError, st.LastErrorAt = s.lastErr, s.lastErrAt
	s.errMu.Unlock()
	now := s.now().UnixNano()
	err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN due_at <= ? THEN 1 ELSE 0 END), 0) FROM notify_pending`), now).Scan(&st.Pending, &st.PendingDue)
	if err != nil {
		return st, fmt.Errorf("email: stats: %w", err)
	}
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT state, COUNT(*) FROM notify_outbox GROUP BY state`)
	if err != nil {
		return st, fmt.Errorf("email: stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return st, fmt.Errorf("email: stats: %w", err)
		}
		st.Outbox[state] = n
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("email: stats: %w", err)
	}
	return st, nil
}

// newMessageID returns a fresh Message-ID (without the angle brackets):
// random, ending with From's domain.
func (s *Sender) newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "ringcast." + hex.EncodeToString(b[:]) + "@" + s.domain
}
