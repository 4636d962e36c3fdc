// Package email reminds users of notifications they have not read: a user
// subscribed to a topic who has not read a notification within a delay,
// and has no live connection, gets an email over SMTP. Mail goes through
// a durable outbox in the notification system's database (the ringcast
// store's SQLite file or PostgreSQL database, tables notify_pending and
// notify_outbox), so that it survives restarts, is retried with backoff,
// and is sent by one node of a cluster at a time.
//
//	s, err := email.New(db, email.Config{Addr: "smtp.example.com:587", From: "Ringcast <ringcast@example.com>",
//		Username: "ringcast", Password: os.Getenv("RINGCAST_SMTP_PASSWORD")})
//	svc := notify.NewService(db, pub, notify.Options{OnNotify: s.OnNotify})
//	s.Start()
//	defer s.Close()
//
// # How reminders are decided
//
// When a notification commits, the core calls the hook (Sender.OnNotify,
// which never blocks, or Sender.Notified directly): one statement upserts
// a pending reminder (user, topic, seq, due_at) for every subscriber of
// the topic but its creator. A reminder already pending for a (user,
// topic) keeps its earlier due time and takes the greater seq, so a busy
// topic holds one row per subscriber, whatever its rate.
//
// Every PollInterval the scheduler takes the users with due reminders
// (BatchSize at a time) and decides each user's fate in one transaction
// (rows locked FOR UPDATE on PostgreSQL, so that two nodes never both
// mail a user):
//
//   - a user with a live connection (a notify_online row whose until is in
//     the future) sees notifications in real time: the reminders are
//     dropped;
//   - a user without an address (no notify_users row: users known only
//     from a JWT) cannot be mailed: dropped;
//   - a reminder whose topic the user left (or that was deleted) is
//     dropped, and so is one the user has read: the read cursor
//     (notify_cursors) reached its seq;
//   - the per-user cap: a user who got PerUserPerHour emails in the last
//     hour (emails queued count too) has the reminders postponed to when
//     the window has room; whatever is still unread then goes out as one
//     email;
//   - otherwise the remaining reminders become ONE email in the outbox,
//     and are deleted. Unread counts are exact: the topic's head in
//     ringcast_topics minus the cursor, and the bodies come from
//     ringcast_messages. With at most DigestAfter topics and unread
//     notifications the email shows them in full; beyond, it is a digest:
//     how many unread in which topics, the latest few of each trimmed to
//     a line.
//
// # The outbox states
//
// An email (notify_outbox row) is pending (waiting for next_at), sending
// (a sender holds it under a lease: claimed_by, claim_until), sent
// (sent_at), or failed (last_error). The send loop claims due pending
// rows, and sending rows whose lease has expired (their sender died), in
// one transaction that marks them sending with its lease and counts the
// attempt; it never claims more than MaxConcurrent minus the sends it
// runs. Each send runs on its own goroutine, then records the outcome on
// its row only if it still holds the lease. Sent and failed rows are kept
// for Retention (default 7 days), then pruned.
//
// # Retries and the breaker
//
// A connection failure, a TLS failure, a 4xx answer, or a 5xx answer
// during the session's set-up (EHLO, AUTH, MAIL FROM: a configuration
// problem, not the email's) puts the email back in pending with
// attempts+1 and next_at after a backoff: exponential from BackoffMin,
// capped at BackoffMax, with full jitter (uniform between BackoffMin and
// the current ceiling). After MaxAttempts the email is failed. A 5xx
// answer to RCPT or to the message itself is a permanent rejection of
// this email: failed at once, no retry.
//
// The SMTP server has a circuit breaker (github.com/sony/gobreaker/v2):
// BreakerFailures consecutive failed transactions open it; while open,
// nothing is claimed, so the outbox waits in the database instead of
// burning attempts; after BreakerTimeout one probe is let through
// (half-open), whose success closes it. A permanent rejection counts as
// the server working.
//
// # Exactly-once limits
//
// An email is marked sending under a lease before its SMTP transaction,
// and sent right after the server accepts it, so a restart (a clean Close
// lets the sends in flight finish and records them) or a second node
// never sends it again. One window cannot be closed by any SMTP client: a
// crash (or a lost database) between the server's acceptance of the
// message and the mark. The row then stays sending until its lease
// (2×SendTimeout) expires, and another sender sends it again, with the
// same Message-ID header, which mail clients and many servers use to
// drop the duplicate. The same holds if a transaction outlives its lease
// (Stats.LeaseLost counts those).
//
// # What Stats shows
//
// Sender.Stats returns, JSON-friendly: the pending reminders (all, and
// due); the outbox by state (pending, sending, sent, failed) across all
// nodes; this Sender's emails queued, sent, retried and failed; the
// reminders dropped (read, online, no address, unsubscribed) and
// postponed by the cap; sends in flight; the breaker's state and how
// often it opened; and the last error with its time.
//
// # Security
//
// Credentials are sent with AUTH PLAIN, and only over TLS (STARTTLS or
// implicit TLS), or to a server on the loopback interface. TLS mode
// "auto" (the default) uses STARTTLS when the server offers it,
// "require" refuses to send without it, "tls" speaks TLS from the first
// byte (port 465), "none" never uses TLS (credentials then only to a
// loopback relay; New refuses otherwise). The client is the standard
// library's net/smtp, which upgrades an open session with STARTTLS when
// offered (what "auto" needs) and reports the server's reply codes.
package email
