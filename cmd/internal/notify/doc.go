// Package notify is ringcast's notification system: accounts and tokens,
// topics that their creators own, durable subscriptions, read cursors, the
// inbox with exact unread counts, read receipts, and the HTTP API over
// them. Package email (unread reminders) and package inbox (the real-time
// Phoenix channel) build on it.
//
// # Names
//
// A notification topic N (1 to 200 bytes of ASCII letters, digits and
// "._-:", not "." or "..") is the durable ringcast topic
// "notifications:N" (RingTopic): a notification is the JSON body its
// creator posted, verbatim, committed in the store with a gapless sequence
// number. The binaries must keep "notifications:*" durable.
//
// Each user U has a memory-only control topic "users:U" (UserTopic). After
// every change of U's read state or subscriptions has committed, the
// package publishes a ControlEvent there, so every session of U, on any
// gateway, learns it at once:
//
//	{"type":"read","topic":T,"read_seq":S}
//	{"type":"read_all"}
//	{"type":"subscribed","topic":T,"read_seq":S}
//	{"type":"unsubscribed","topic":T}
//
// # HTTP API
//
// Service.Handler serves these routes, JSON in and out. Every route but
// the first two needs "Authorization: Bearer <token>" (else 401 with
// WWW-Authenticate). Errors are {"error":"…"}: 400 bad input (unknown JSON
// fields and trailing data included), 401, 403, 404, 405 (with Allow), 409,
// 413 (a request body over 16 KiB, a notification over
// Options.MaxNotificationBytes), 429 (with Retry-After), 503 (database or
// cluster unreachable; with Retry-After), 500 (logged, detail withheld).
//
//	Method Path                                            Success and body
//	POST   /api/users {"id","email","password"}            201 {"id","email"}; 409 id taken
//	POST   /api/tokens {"id","password"}                   200 {"token","expires_at"}; 401 wrong id or password
//	DELETE /api/tokens/current                             204; 400 for a JWT
//	POST   /api/topics {"name","description"}              201 topic; 409 exists
//	GET    /api/topics?mine=1&subscribed=1&limit=&cursor=  200 {"topics":[topic…],"next":cursor|null}
//	GET    /api/topics/{name}                              200 topic
//	DELETE /api/topics/{name}                              204; creator only (403)
//	POST   /api/topics/{name}/notifications (any JSON)     201 {"seq":N,"epoch":"E"}; creator only (403)
//	GET    /api/topics/{name}/notifications?after=&before=&limit=
//	                                                       200 {"notifications":[{"seq","epoch","time","body"}…],"next":N|null}
//	GET    /api/topics/{name}/notifications/{seq}/receipts 200 {"subscribers":n,"read":k}; creator only
//	GET    /api/topics/{name}/subscription                 200 state; 404 not subscribed
//	PUT    /api/topics/{name}/subscription                 201 state (new) or 200 state (already)
//	DELETE /api/topics/{name}/subscription                 204; 404 not subscribed
//	POST   /api/topics/{name}/read {"seq":N}               200 state; 404 not subscribed
//	POST   /api/read                                       200 inbox (after marking everything read)
//	GET    /api/inbox                                      200 {"unread":total,"topics":[state…]}
//
// A topic is {"name","description","creator","created_at","last_seq",
// "subscribed"}; a state is {"name","unread","last_seq","read_seq"}; an
// epoch is a decimal string, as the gateway writes epochs; times are
// RFC 3339 in UTC.
//
// Choices the API makes:
//   - Any user may subscribe to any topic and list every topic: GET
//     /api/topics without filters is the directory of all topics (name
//     order); mine=1 keeps those the caller created, subscribed=1 those it
//     subscribes to. Pages: limit (default 100, at most 1000) and cursor,
//     the previous page's next (the last name it listed).
//   - Only the creator publishes, deletes and sees receipts; subscribers
//     and the creator read a topic's history. The creator is not
//     subscribed by creating a topic.
//   - History pages hold the notifications with after < seq < before
//     (before omitted: up to the head), at most limit (default 50, at most
//     1000); next, when not null, is the after of the following page.
//     Notifications trimmed by the store's retention are skipped.
//   - A read mark beyond the topic's head is clamped to the head (a client
//     cannot have seen more), and one below the cursor changes nothing:
//     both answer 200 with the resulting state.
//   - Deleting a topic deletes its metadata, subscriptions, cursors and
//     pending reminders in one transaction, then the stored notifications
//     (Options.Trimmer, through the head). A topic created again under the
//     same name is the same ringcast topic: its sequence numbers go on
//     where they were, and the new topic starts at that head: nothing
//     before it is listed, counted or shown.
//   - Unsubscribing drops the cursor: subscribing again starts at the
//     head, with nothing unread.
//   - Receipts count the subscribers whose cursor has reached seq; one who
//     subscribed after seq was published counts as having read it.
//   - POST /api/tokens is limited per user id and per client address
//     (Options.LoginAttempts per LoginWindow, default 10 a minute), POST
//     /api/users per address; the address is the TCP peer's, forwarding
//     headers are not trusted.
//
// # Accounts and tokens
//
// Passwords (8 to 72 bytes) are hashed with bcrypt (Options.BcryptCost,
// default 10). A login issues an opaque token, 32 random bytes in
// base64url, of which the database keeps only the SHA-256 (hex); it lives
// Options.TokenTTL (default 30 days) unless revoked. A wrong password and
// an unknown user answer the same 401 after the same bcrypt work.
//
// With Options.JWTSecret, a bearer token may also be a JWT that an
// application with accounts of its own mints: HS256 only (none and every
// other algorithm are refused), exp required, nbf and iat honoured with
// Options.JWTLeeway, sub the user id (a valid user id). Such a user need
// not exist in notify_users: they subscribe, read and create topics like
// any other, but have no email address here, so email reminders skip
// them. A JWT cannot be revoked before its exp.
//
// # Read state
//
// A user's read state of a topic is one cursor, notify_cursors.read_seq:
// every notification up to it is read. The unread count is the topic's
// committed head (the store's own ringcast_topics.seq, joined in the same
// query) minus the cursor: exact and uncapped, however many notifications
// there are, and never out of step with the store, because the store's
// head is the very row a publish commits. A cursor never moves back. A
// new subscriber's cursor starts at the head. Marking a topic read is one
// row written; marking everything read is one UPDATE statement for all of
// the user's topics.
//
// There is no row per message and user, and no distributed transaction.
// This replaces the seed's design, where a persistence service stored
// each message and a separate counter service kept unread counts, the two
// kept in step by a two-phase commit: here the store's committed head is
// the only count of what was sent, and the cursor the only record of what
// was read, so there is nothing to keep in step.
//
// # Database
//
// The notify_* tables live in the ringcast store's own database, the one
// --store names (SQLite file or PostgreSQL database): OpenDB opens the
// store on it first, so its tables exist, then its own *sql.DB (SQLite:
// WAL, foreign keys, busy timeout 5s, BEGIN IMMEDIATE transactions;
// PostgreSQL: pgx). Migrate applies the versioned schema (SchemaVersion),
// recorded as notify_schema_version in ringcast_meta, serialised between
// processes (SQLite BEGIN IMMEDIATE, PostgreSQL pg_advisory_xact_lock); a
// newer schema is refused with ErrSchema and left unchanged. Times are
// unix nanoseconds. Queries are written with ? placeholders and rebound
// for PostgreSQL (DB.Rebind).
//
// # Tests
//
// OpenTestDB gives other packages' tests a fresh migrated database of
// either dialect, the store's tables included.
package notify
