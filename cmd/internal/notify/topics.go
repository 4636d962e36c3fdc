package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ringcast/ringcast/pubsub/store"
)

// Topic is a notification topic as the API lists it.
type Topic struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Creator     string    `json:"creator"`
	CreatedAt   time.Time `json:"created_at"`
	LastSeq     uint64    `json:"last_seq"`   // the ringcast topic's committed head
	Subscribed  bool      `json:"subscribed"` // whether the caller subscribes to it
}

// TopicQuery selects topics for Topics.
type TopicQuery struct {
	Mine       bool   // only the topics the caller created
	Subscribed bool   // only the topics the caller subscribes to
	After      string // only the topics whose name is greater (the previous page's Next)
	Limit      int    // at most this many; 0: DefaultTopicLimit, at most MaxTopicLimit
}

// Page sizes of Topics and Notifications.
const (
	DefaultTopicLimit        = 100
	MaxTopicLimit            = 1000
	DefaultNotificationLimit = 50
	MaxNotificationLimit     = 1000
)

// notificationPageBytes bounds the notification bodies of one page.
const notificationPageBytes = 8 << 20

// CreateTopic creates the topic name, with user as its creator: only they
// may publish to it or delete it. It fails with ErrInvalid for a bad name
// or description, ErrConflict when the topic exists.
//
// A topic deleted and created again under the same name is the same
// ringcast topic: its sequence numbers go on from where they were (they
// are the store's, and never go back). The new topic records that head as
// its start and never shows, counts or lists what came before it.
func (s *Service) CreateTopic(ctx context.Context, user, name, description string) (Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return Topic{}, err
	}
	if err := validateDescription(description); err != nil {
		return Topic{}, err
	}
	now := s.now()
	res, err := s.db.exec(ctx, s.db.SQL, `
		INSERT INTO notify_topics (name, creator, description, created_at, base_seq)
		VALUES (?, ?, ?, ?, `+headSQL("CAST(? AS TEXT)")+`)
		ON CONFLICT (name) DO NOTHING`, name, user, description, now.UnixNano(), name)
	if err != nil {
		return Topic{}, wrapDB(ctx, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Topic{}, wrapDB(ctx, err)
	} else if n == 0 {
		return Topic{}, fmt.Errorf("%w: topic %q exists", ErrConflict, name)
	}
	return s.Topic(ctx, user, name)
}

// Topic returns the topic name as user sees it (Subscribed is theirs), or
// ErrNotFound.
func (s *Service) Topic(ctx context.Context, user, name string) (Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return Topic{}, err
	}
	ts, _, err := s.topics(ctx, user, `t.name = ?`, []any{name}, 1)
	if err != nil {
		return Topic{}, err
	}
	if len(ts) == 0 {
		return Topic{}, fmt.Errorf("%w: no topic %q", ErrNotFound, name)
	}
	return ts[0], nil
}

// Topics lists topics, ordered by name, as user sees them: every topic, or
// only those user created (Mine) or subscribes to (Subscribed). next is the
// After of the following page, "" when this is the last.
func (s *Service) Topics(ctx context.Context, user string, q TopicQuery) (topics []Topic, next string, err error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultTopicLimit
	case limit < 0 || limit > MaxTopicLimit:
		return nil, "", fmt.Errorf("%w: limit must be 1 to %d", ErrInvalid, MaxTopicLimit)
	}
	where, args := `t.name > ?`, []any{q.After}
	if q.Mine {
		where += ` AND t.creator = ?`
		args = append(args, user)
	}
	if q.Subscribed {
		where += ` AND s.user_id IS NOT NULL`
	}
	return s.topics(ctx, user, where, args, limit)
}

// topics runs the topic listing with a condition on t (notify_topics) and
// s (the caller's subscription, or NULLs), and returns at most limit
// topics and the next page's start.
func (s *Service) topics(ctx context.Context, user, where string, args []any, limit int) ([]Topic, string, error) {
	q := `
		SELECT t.name, t.description, t.creator, t.created_at, ` + headSQL("t.name") + `, s.user_id IS NOT NULL
		FROM notify_topics t
		LEFT JOIN notify_subscriptions s ON s.topic = t.name AND s.user_id = ?
		WHERE ` + where + `
		ORDER BY t.name
		LIMIT ?`
	all := append([]any{user}, args...)
	all = append(all, limit+1)
	rows, err := s.db.SQL.QueryContext(ctx, s.db.Rebind(q), all...)
	if err != nil {
		return nil, "", wrapDB(ctx, err)
	}
	defer rows.Close()
	out := []Topic{}
	for rows.Next() {
		var t Topic
		var created, head int64
		if err := rows.Scan(&t.Name, &t.Description, &t.Creator, &created, &head, &t.Subscribed); err != nil {
			return nil, "", wrapDB(ctx, err)
		}
		t.CreatedAt = time.Unix(0, created).UTC()
		t.LastSeq = uint64(max(head, 0))
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", wrapDB(ctx, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].Name
	}
	return out, next, nil
}

// topicRow is what the checks of the topic calls read.
type topicRow struct {
	creator    string
	base       int64 // base_seq
	head       int64
	epoch      int64
	subscribed bool // the caller subscribes
}

// Row locks a transaction takes on a topic's notify_topics row
// (PostgreSQL only: SQLite's write transactions are serialised already).
// Every transaction that writes rows of a topic locks the topic's row
// first, and then touches subscriptions before cursors before pending
// reminders, so that concurrent calls wait for each other instead of
// deadlocking: DeleteTopic takes lockUpdate, Subscribe and Unsubscribe
// lockShare; MarkRead locks the subscription row alone.
const (
	lockNone   = ""
	lockShare  = " FOR SHARE OF t"
	lockUpdate = " FOR UPDATE OF t"
)

// lookup reads topic name for user, or ErrNotFound. With a lock (inside a
// transaction) it also locks the topic's row on PostgreSQL until the
// transaction ends; a row deleted meanwhile is not found.
func (s *Service) lookup(ctx context.Context, q queryer, user, name, lock string) (topicRow, error) {
	var r topicRow
	if s.db.Dialect != Postgres {
		lock = lockNone
	}
	err := q.QueryRowContext(ctx, s.db.Rebind(`
		SELECT t.creator, t.base_seq, COALESCE(rt.seq, 0), COALESCE(rt.epoch, 0),
		       EXISTS (SELECT 1 FROM notify_subscriptions s WHERE s.topic = t.name AND s.user_id = ?)
		FROM notify_topics t
		LEFT JOIN ringcast_topics rt ON rt.topic = '`+RingPrefix+`' || t.name
		WHERE t.name = ?`+lock), user, name).Scan(&r.creator, &r.base, &r.head, &r.epoch, &r.subscribed)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("%w: no topic %q", ErrNotFound, name)
	}
	if err != nil {
		return r, wrapDB(ctx, err)
	}
	return r, nil
}

// DeleteTopic deletes topic name, which user created (else ErrForbidden;
// ErrNotFound when there is none): its metadata, every subscription,
// cursor and pending reminder in one transaction, then, through
// Options.Trimmer, the notifications the store holds (a failure there is
// logged: the deleted topic is gone all the same, and a topic created
// again under the name never shows them). Each former subscriber gets an
// EventUnsubscribed control event.
func (s *Service) DeleteTopic(ctx context.Context, user, name string) error {
	if err := ValidateTopicName(name); err != nil {
		return err
	}
	var head int64
	var subscribers []string
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		r, err := s.lookup(ctx, tx, user, name, lockUpdate)
		if err != nil {
			return err
		}
		if r.creator != user {
			return fmt.Errorf("%w: only the creator of topic %q may delete it", ErrForbidden, name)
		}
		head = r.head
		rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT user_id FROM notify_subscriptions WHERE topic = ? ORDER BY user_id`), name)
		if err != nil {
			return err
		}
		for rows.Next() {
			var u string
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return err
			}
			subscribers = append(subscribers, u)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, stmt := range []string{
			`DELETE FROM notify_subscriptions WHERE topic = ?`,
			`DELETE FROM notify_cursors WHERE topic = ?`,
			`DELETE FROM notify_pending WHERE topic = ?`,
			`DELETE FROM notify_topics WHERE name = ?`,
		} {
			if _, err := s.db.exec(ctx, tx, stmt, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrapDB(ctx, err)
	}
	if s.opts.Trimmer != nil && head > 0 {
		if n, err := s.opts.Trimmer.Trim(context.WithoutCancel(ctx), RingTopic(name), uint64(head), 0); err != nil {
			s.log.Warn("notify: deleted topic's notifications not deleted from the store", "topic", name, "through_seq", head, "err", err)
		} else {
			s.log.Debug("notify: deleted topic's notifications deleted", "topic", name, "count", n)
		}
	}
	for _, u := range subscribers {
		s.publishControl(ctx, u, ControlEvent{Type: EventUnsubscribed, Topic: name})
	}
	return nil
}

// Published is a notification's place in its topic's order.
type Published struct {
	Epoch uint64
	Seq   uint64
}

// Publish publishes a notification, body (a JSON value, verbatim), to
// topic name, which user created (else ErrForbidden; ErrNotFound when
// there is none). It fails with ErrTooLarge beyond
// Options.MaxNotificationBytes and ErrInvalid for a body that is not
// JSON. Once the store has committed it, it calls Options.OnNotify.
func (s *Service) Publish(ctx context.Context, user, name string, body []byte) (Published, error) {
	if err := ValidateTopicName(name); err != nil {
		return Published{}, err
	}
	switch {
	case len(body) > s.opts.MaxNotificationBytes:
		return Published{}, fmt.Errorf("%w: a notification is at most %d bytes", ErrTooLarge, s.opts.MaxNotificationBytes)
	case !json.Valid(body):
		return Published{}, fmt.Errorf("%w: the notification is not a JSON value", ErrInvalid)
	}
	var creator string
	err := s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`SELECT creator FROM notify_topics WHERE name = ?`), name).Scan(&creator)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Published{}, fmt.Errorf("%w: no topic %q", ErrNotFound, name)
	case err != nil:
		return Published{}, wrapDB(ctx, err)
	case creator != user:
		return Published{}, fmt.Errorf("%w: only the creator of topic %q may publish to it", ErrForbidden, name)
	case s.pub == nil:
		return Published{}, fmt.Errorf("%w: no publisher", ErrUnavailable)
	}
	epoch, seq, err := s.pub.Publish(ctx, RingTopic(name), body)
	if err != nil {
		return Published{}, publishError(err)
	}
	if s.opts.OnNotify != nil {
		s.opts.OnNotify(name, seq)
	}
	return Published{Epoch: epoch, Seq: seq}, nil
}

// Subscribe subscribes user to topic name, durably: the subscription
// lasts until Unsubscribe, connected or not. A new subscriber's cursor
// starts at the topic's head (nothing unread yet). Subscribing again
// changes nothing; created tells which. A new subscription publishes an
// EventSubscribed control event. ErrNotFound: no such topic.
func (s *Service) Subscribe(ctx context.Context, user, name string) (st TopicState, created bool, err error) {
	if err := ValidateTopicName(name); err != nil {
		return TopicState{}, false, err
	}
	err = s.db.inTx(ctx, func(tx *sql.Tx) error {
		r, err := s.lookup(ctx, tx, user, name, lockShare)
		if err != nil {
			return err
		}
		now := s.nowNano()
		res, err := s.db.exec(ctx, tx, `INSERT INTO notify_subscriptions (user_id, topic, created_at) VALUES (?, ?, ?)
			ON CONFLICT (user_id, topic) DO NOTHING`, user, name, now)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		created = n > 0
		// A new subscription starts at the head, whatever cursor was
		// left; an existing one keeps its cursor (or gets one if it had
		// none).
		conflict := `DO NOTHING`
		if created {
			conflict = `DO UPDATE SET read_seq = excluded.read_seq, updated_at = excluded.updated_at`
		}
		start := max(r.head, r.base)
		if _, err := s.db.exec(ctx, tx, `INSERT INTO notify_cursors (user_id, topic, read_seq, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (user_id, topic) `+conflict, user, name, start, now); err != nil {
			return err
		}
		var read int64
		if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT read_seq FROM notify_cursors WHERE user_id = ? AND topic = ?`),
			user, name).Scan(&read); err != nil {
			return err
		}
		st = stateOf(name, r.head, read)
		return nil
	})
	if err != nil {
		return TopicState{}, false, wrapDB(ctx, err)
	}
	if created {
		s.publishControl(ctx, user, ControlEvent{Type: EventSubscribed, Topic: name, ReadSeq: st.ReadSeq})
	}
	return st, created, nil
}

// Unsubscribe ends user's subscription to topic name, with its cursor and
// pending reminder, and publishes an EventUnsubscribed control event. A
// later Subscribe starts afresh at the head. ErrNotFound: no such topic,
// or no subscription.
func (s *Service) Unsubscribe(ctx context.Context, user, name string) error {
	if err := ValidateTopicName(name); err != nil {
		return err
	}
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		r, err := s.lookup(ctx, tx, user, name, lockShare)
		if err != nil {
			return err
		}
		if !r.subscribed {
			return fmt.Errorf("%w: you do not subscribe to topic %q", ErrNotFound, name)
		}
		for _, stmt := range []string{
			`DELETE FROM notify_subscriptions WHERE user_id = ? AND topic = ?`,
			`DELETE FROM notify_cursors WHERE user_id = ? AND topic = ?`,
			`DELETE FROM notify_pending WHERE user_id = ? AND topic = ?`,
		} {
			if _, err := s.db.exec(ctx, tx, stmt, user, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrapDB(ctx, err)
	}
	s.publishControl(ctx, user, ControlEvent{Type: EventUnsubscribed, Topic: name})
	return nil
}

// Subscribers returns the users who subscribe to topic name, ordered, the
// first limit of those greater than after (limit ≤ 0: 1000).
func (s *Service) Subscribers(ctx context.Context, name, after string, limit int) ([]string, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.SQL.QueryContext(ctx, s.db.Rebind(`
		SELECT user_id FROM notify_subscriptions WHERE topic = ? AND user_id > ? ORDER BY user_id LIMIT ?`), name, after, limit)
	if err != nil {
		return nil, wrapDB(ctx, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, wrapDB(ctx, err)
		}
		out = append(out, u)
	}
	return out, wrapDB(ctx, rows.Err())
}

// Notification is a stored notification.
type Notification struct {
	Seq   uint64          `json:"seq"`
	Epoch string          `json:"epoch"` // decimal, as the gateway writes epochs
	Time  time.Time       `json:"time"`  // when the topic's owner sequenced it
	Body  json.RawMessage `json:"body"`  // as published
}

// NotificationQuery selects a page of a topic's notifications: those with
// After < seq < Before (Before 0: no upper bound), at most Limit (0:
// DefaultNotificationLimit; at most MaxNotificationLimit).
type NotificationQuery struct {
	After, Before uint64
	Limit         int
}

// NotificationPage is a page of notifications, oldest first. Next, when
// not nil, is the After of the following page.
type NotificationPage struct {
	Notifications []Notification `json:"notifications"`
	Next          *uint64        `json:"next"`
}

// Notifications reads a page of topic name's notifications from the store
// (Options.Reader), for a subscriber or the creator (else ErrForbidden;
// ErrNotFound: no such topic). Notifications the store's retention trimmed
// are skipped; what came before the topic was (re)created is never shown.
func (s *Service) Notifications(ctx context.Context, user, name string, q NotificationQuery) (NotificationPage, error) {
	if err := ValidateTopicName(name); err != nil {
		return NotificationPage{}, err
	}
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultNotificationLimit
	case limit < 0 || limit > MaxNotificationLimit:
		return NotificationPage{}, fmt.Errorf("%w: limit must be 1 to %d", ErrInvalid, MaxNotificationLimit)
	}
	r, err := s.lookup(ctx, s.db.SQL, user, name, lockNone)
	if err != nil {
		return NotificationPage{}, err
	}
	if r.creator != user && !r.subscribed {
		return NotificationPage{}, fmt.Errorf("%w: only subscribers and the creator of topic %q may read it", ErrForbidden, name)
	}
	page := NotificationPage{Notifications: []Notification{}}
	after := max(q.After, uint64(max(r.base, 0)))
	upper := uint64(max(r.head, 0))
	if q.Before > 0 {
		upper = min(upper, q.Before-1)
	}
	if after >= upper {
		return page, nil
	}
	if s.opts.Reader == nil {
		return NotificationPage{}, fmt.Errorf("%w: no store to read notifications from", ErrUnavailable)
	}
	n := int(min(uint64(limit), upper-after))
	msgs, err := s.opts.Reader.Read(ctx, RingTopic(name), after, n, notificationPageBytes)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrClosed) {
			return NotificationPage{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return NotificationPage{}, fmt.Errorf("notify: read topic %q: %w", name, err)
	}
	epoch := strconv.FormatUint(uint64(max(r.epoch, 0)), 10)
	for _, m := range msgs {
		if m.Seq <= after || m.Seq > upper {
			continue
		}
		page.Notifications = append(page.Notifications, Notification{
			Seq: m.Seq, Epoch: epoch, Time: time.Unix(0, m.Time).UTC(), Body: bodyJSON(m.Data),
		})
	}
	if k := len(page.Notifications); k > 0 && page.Notifications[k-1].Seq < upper {
		next := page.Notifications[k-1].Seq
		page.Next = &next
	}
	return page, nil
}

// bodyJSON returns a stored notification as JSON: itself when it is a JSON
// value (every notification the API published is), else a JSON string of
// it (a message that reached the ringcast topic another way).
func bodyJSON(data []byte) json.RawMessage {
	if json.Valid(data) {
		return json.RawMessage(data)
	}
	b, _ := json.Marshal(string(data)) // invalid UTF-8 becomes U+FFFD
	return b
}

// Receipts is how many of a topic's subscribers have read a notification.
type Receipts struct {
	Subscribers int64 `json:"subscribers"`
	Read        int64 `json:"read"`
}

// Receipts counts the subscribers of topic name, and those whose cursor
// has reached seq, for its creator (else ErrForbidden). A subscriber who
// subscribed after seq was published counts as having read it (their
// cursor started past it). ErrNotFound: no such topic, or seq is not one
// of its notifications.
func (s *Service) Receipts(ctx context.Context, user, name string, seq uint64) (Receipts, error) {
	if err := ValidateTopicName(name); err != nil {
		return Receipts{}, err
	}
	r, err := s.lookup(ctx, s.db.SQL, user, name, lockNone)
	if err != nil {
		return Receipts{}, err
	}
	if r.creator != user {
		return Receipts{}, fmt.Errorf("%w: only the creator of topic %q may see its receipts", ErrForbidden, name)
	}
	if seq <= uint64(max(r.base, 0)) || seq > uint64(max(r.head, 0)) {
		return Receipts{}, fmt.Errorf("%w: topic %q has no notification %d", ErrNotFound, name, seq)
	}
	var rc Receipts
	err = s.db.SQL.QueryRowContext(ctx, s.db.Rebind(`
		SELECT count(*), count(CASE WHEN c.read_seq >= ? THEN 1 END)
		FROM notify_subscriptions s
		LEFT JOIN notify_cursors c ON c.user_id = s.user_id AND c.topic = s.topic
		WHERE s.topic = ?`), int64(seq), name).Scan(&rc.Subscribers, &rc.Read)
	if err != nil {
		return Receipts{}, wrapDB(ctx, err)
	}
	return rc, nil
}
