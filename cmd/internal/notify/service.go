package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ringcast/ringcast/pubsub/store"
)

// Defaults of Options.
const (
	DefaultTokenTTL             = 30 * 24 * time.Hour
	DefaultBcryptCost           = 10
	DefaultMaxNotificationBytes = 64 << 10
	DefaultJWTLeeway            = 30 * time.Second
	DefaultLoginAttempts        = 10
	DefaultLoginWindow          = time.Minute
)

// Reader reads a ringcast topic's committed messages: a store.Store.
type Reader interface {
	Read(ctx context.Context, topic string, after uint64, limit, maxBytes int) ([]store.Message, error)
}

// Options configure a Service. The zero value is usable: opaque tokens
// only, the defaults above, no history reads and no trimming.
type Options struct {
	// JWTSecret, when set, makes Authenticate also accept JWTs signed with
	// it (HS256 only) whose sub is the user id and that carry an exp. The
	// user of such a token need not have an account here: an application
	// with accounts of its own mints them. Nil: opaque tokens only.
	JWTSecret []byte

	// VerifyJWT, when set, checks JWTs instead of JWTSecret: it returns
	// the user a JWT stands for, or why it does not stand for one (RS256
	// and ES256 keys of the binaries, package access).
	VerifyJWT func(token string) (user string, err error)

	// JWTLeeway is the clock skew allowed when checking a JWT's exp, nbf
	// and iat. Zero: DefaultJWTLeeway.
	JWTLeeway time.Duration

	// TokenTTL is the life of the opaque tokens POST /api/tokens issues.
	// Zero: DefaultTokenTTL.
	TokenTTL time.Duration

	// BcryptCost is the cost of password hashes. Zero: DefaultBcryptCost;
	// tests use bcrypt.MinCost.
	BcryptCost int

	// MaxNotificationBytes bounds a notification's JSON body. Zero:
	// DefaultMaxNotificationBytes.
	MaxNotificationBytes int

	// LoginAttempts is the number of POST /api/tokens attempts allowed per
	// user id, and separately per client address, in each LoginWindow;
	// more answer 429. Zero: DefaultLoginAttempts and DefaultLoginWindow;
	// negative: no limit.
	LoginAttempts int
	LoginWindow   time.Duration

	// Clock is the time. Nil: time.Now.
	Clock func() time.Time

	// Logger receives the service's log lines: failures it cannot return
	// to a caller (a control event that could not be published, stored
	// messages that could not be deleted). Nil: discard.
	Logger *slog.Logger

	// Reader reads the notifications a topic's store holds: the
	// store.Store of the binaries. Nil: Notifications fails with
	// ErrUnavailable.
	Reader Reader

	// Trimmer deletes a deleted topic's stored notifications: the
	// store.Store of the binaries. Nil: they stay in the store (a
	// topic re-created under that name never shows them, see DeleteTopic).
	Trimmer Trimmer

	// OnNotify, when set, is called after each notification a creator
	// published, with the topic's name and the notification's sequence
	// number (the email reminders' hook). It must not block.
	OnNotify func(topic string, seq uint64)
}

// Trimmer deletes a ringcast topic's committed messages: a store.Store.
type Trimmer interface {
	Trim(ctx context.Context, topic string, throughSeq uint64, before int64) (int64, error)
}

// Service is the notification system: accounts and tokens, topics and
// their creators, durable subscriptions, read cursors, and the HTTP API
// over them. It is safe for concurrent use.
type Service struct {
	db   *DB
	pub  Publisher
	opts Options
	now  func() time.Time
	log  *slog.Logger

	dummyOnce sync.Once
	dummyHash []byte // a hash no password matches, for unknown users

	loginsByUser  *limiter
	loginsByAddr  *limiter
	signupsByAddr *limiter
}

// NewService returns the Service over db that publishes notifications and
// control events with pub.
func NewService(db *DB, pub Publisher, opts Options) *Service {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.BcryptCost == 0 {
		opts.BcryptCost = DefaultBcryptCost
	}
	opts.BcryptCost = max(bcrypt.MinCost, min(bcrypt.MaxCost, opts.BcryptCost))
	if opts.MaxNotificationBytes <= 0 {
		opts.MaxNotificationBytes = DefaultMaxNotificationBytes
	}
	if opts.JWTLeeway <= 0 {
		opts.JWTLeeway = DefaultJWTLeeway
	}
	if opts.LoginAttempts == 0 {
		opts.LoginAttempts = DefaultLoginAttempts
	}
	if opts.LoginWindow <= 0 {
		opts.LoginWindow = DefaultLoginWindow
	}
	opts.JWTSecret = append([]byte(nil), opts.JWTSecret...)
	s := &Service{db: db, pub: pub, opts: opts, now: opts.Clock, log: opts.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.dummy() // now, not on the first unknown user's login
	if opts.LoginAttempts > 0 {
		s.loginsByUser = newLimiter(opts.LoginAttempts, opts.LoginWindow)
		s.loginsByAddr = newLimiter(opts.LoginAttempts, opts.LoginWindow)
		s.signupsByAddr = newLimiter(opts.LoginAttempts, opts.LoginWindow)
	}
	return s
}

// DB returns the service's database.
func (s *Service) DB() *DB { return s.db }

// nowNano is the current time in unix nanoseconds.
func (s *Service) nowNano() int64 { return s.now().UnixNano() }

// publishControl publishes ev on the user's control topic. The change it
// reports has committed: a failure is logged, not returned.
func (s *Service) publishControl(ctx context.Context, user string, ev ControlEvent) {
	if s.pub == nil {
		return
	}
	data, err := json.Marshal(ev)
	if err != nil {
		s.log.Error("notify: control event", "user", user, "err", err)
		return
	}
	if _, _, err := s.pub.Publish(context.WithoutCancel(ctx), UserTopic(user), data); err != nil {
		s.log.Warn("notify: control event not published", "user", user, "type", ev.Type, "topic", ev.Topic, "err", err)
	}
}

// headSQL is the committed head of the notification topic whose name is
// the SQL expression name.
func headSQL(name string) string {
	return "COALESCE((SELECT rt.seq FROM ringcast_topics rt WHERE rt.topic = '" + RingPrefix + "' || " + name + "), 0)"
}

// stateOf completes a TopicState from its head and cursor.
func stateOf(name string, head, read int64) TopicState {
	h, r := uint64(max(head, 0)), uint64(max(read, 0))
	st := TopicState{Name: name, LastSeq: h, ReadSeq: r}
	if h > r {
		st.Unread = h - r
	}
	return st
}

// Subscriptions returns the user's read state of every topic they
// subscribe to, ordered by name.
func (s *Service) Subscriptions(ctx context.Context, user string) ([]TopicState, error) {
	rows, err := s.db.SQL.QueryContext(ctx, s.db.Rebind(`
		SELECT s.topic, `+headSQL("s.topic")+`, COALESCE(c.read_seq, t.base_seq)
		FROM notify_subscriptions s
		JOIN notify_topics t ON t.name = s.topic
		LEFT JOIN notify_cursors c ON c.user_id = s.user_id AND c.topic = s.topic
		WHERE s.user_id = ?
		ORDER BY s.topic`), user)
	if err != nil {
		return nil, wrapDB(ctx, err)
	}
	defer rows.Close()
	out := []TopicState{}
	for rows.Next() {
		var name string
		var head, read int64
		if err := rows.Scan(&name, &head, &read); err != nil {
			return nil, wrapDB(ctx, err)
		}
		out = append(out, stateOf(name, head, read))
	}
	if err := rows.Err(); err != nil {
		return nil, wrapDB(ctx, err)
	}
	return out, nil
}

// Inbox returns the user's read state of every topic they subscribe to and
// the total of their unread notifications.
func (s *Service) Inbox(ctx context.Context, user string) (Inbox, error) {
	topics, err := s.Subscriptions(ctx, user)
	if err != nil {
		return Inbox{}, err
	}
	in := Inbox{Topics: topics}
	for _, t := range topics {
		in.Unread += t.Unread
	}
	return in, nil
}

// MarkRead moves the user's cursor of topic to seq: every notification up
// to seq counts as read. The cursor never moves back (a smaller seq
// changes nothing), and a seq beyond the topic's head is clamped to the
// head. It returns the topic's state after the change and, when the cursor
// moved, publishes an EventRead control event. It fails with ErrNotFound
// when the user does not subscribe to topic.
func (s *Service) MarkRead(ctx context.Context, user, topic string, seq uint64) (TopicState, error) {
	if err := ValidateTopicName(topic); err != nil {
		return TopicState{}, err
	}
	want := int64(min(seq, maxSeq))
	var st TopicState
	var moved bool
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		var head, read int64
		err := tx.QueryRowContext(ctx, s.db.Rebind(`
			SELECT `+headSQL("s.topic")+`, COALESCE(c.read_seq, t.base_seq)
			FROM notify_subscriptions s
			JOIN notify_topics t ON t.name = s.topic
			LEFT JOIN notify_cursors c ON c.user_id = s.user_id AND c.topic = s.topic
			WHERE s.user_id = ? AND s.topic = ?`+s.lockSubscription()), user, topic).Scan(&head, &read)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: you do not subscribe to topic %q", ErrNotFound, topic)
		}
		if err != nil {
			return err
		}
		target := max(read, min(want, head))
		if target != read {
			if _, err := s.db.exec(ctx, tx, `
				INSERT INTO notify_cursors (user_id, topic, read_seq, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (user_id, topic) DO UPDATE
				SET read_seq = `+s.db.greatest("notify_cursors.read_seq", "excluded.read_seq")+`, updated_at = excluded.updated_at`,
				user, topic, target, s.nowNano()); err != nil {
				return err
			}
			moved = true
		}
		st = stateOf(topic, head, target)
		return nil
	})
	if err != nil {
		return TopicState{}, wrapDB(ctx, err)
	}
	if moved {
		s.publishControl(ctx, user, ControlEvent{Type: EventRead, Topic: topic, ReadSeq: st.ReadSeq})
	}
	return st, nil
}

// lockSubscription is the clause that locks, on PostgreSQL, the
// subscription row a transaction read (alias s) against a concurrent
// Unsubscribe or DeleteTopic until the transaction ends; SQLite's
// transactions are serialised already.
func (s *Service) lockSubscription() string {
	if s.db.Dialect == Postgres {
		return " FOR SHARE OF s"
	}
	return ""
}

// maxSeq is the largest sequence number a BIGINT column holds.
const maxSeq = uint64(1<<63 - 1)

// MarkAllRead moves the user's cursor of every topic they subscribe to to
// the topic's head, in one statement, and publishes an EventReadAll
// control event.
func (s *Service) MarkAllRead(ctx context.Context, user string) error {
	_, err := s.db.exec(ctx, s.db.SQL, `
		UPDATE notify_cursors SET read_seq = rt.seq, updated_at = ?
		FROM ringcast_topics rt
		WHERE notify_cursors.user_id = ?
		  AND rt.topic = '`+RingPrefix+`' || notify_cursors.topic
		  AND notify_cursors.read_seq < rt.seq`, s.nowNano(), user)
	if err != nil {
		return wrapDB(ctx, err)
	}
	s.publishControl(ctx, user, ControlEvent{Type: EventReadAll})
	return nil
}

// SetOnline records that the user has a live connection on node until the
// given time (the connection renews it while it lasts): email reminders
// skip users who are online.
func (s *Service) SetOnline(ctx context.Context, user, node string, until time.Time) error {
	_, err := s.db.exec(ctx, s.db.SQL, `
		INSERT INTO notify_online (user_id, node, until) VALUES (?, ?, ?)
		ON CONFLICT (user_id, node) DO UPDATE SET until = excluded.until`,
		user, node, until.UnixNano())
	return wrapDB(ctx, err)
}

// ClearOnline removes the user's live-connection marker on node (their
// last connection there closed).
func (s *Service) ClearOnline(ctx context.Context, user, node string) error {
	_, err := s.db.exec(ctx, s.db.SQL, `DELETE FROM notify_online WHERE user_id = ? AND node = ?`, user, node)
	return wrapDB(ctx, err)
}

// Online reports whether the user has a live connection on some node: a
// marker of SetOnline that has not expired.
func (s *Service) Online(ctx context.Context, user string) (bool, error) {
	var n int
	err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT count(*) FROM notify_online WHERE user_id = ? AND until > ?`),
		user, s.nowNano()).Scan(&n)
	if err != nil {
		return false, wrapDB(ctx, err)
	}
	return n > 0, nil
}
