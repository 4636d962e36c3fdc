// Package postgres is a ringcast store (package store) in a PostgreSQL
// database that every node of a cluster shares.
//
// # Opening
//
// Open connects a pool to the database a connection URL names
// ("postgres://user:password@host:5432/db?sslmode=verify-full"; every
// parameter libpq knows, such as search_path, connect_timeout or
// application_name, is honoured) and brings the ringcast tables up to the
// schema this build knows. The tables live in the first schema of the
// search path (normally public) beside whatever else the database holds.
//
// # Schema
//
//	ringcast_meta(key, value)                            application = 'ringcast', schema_version
//	ringcast_topics(topic, epoch, seq, token, owner, claimed_at)   claimed_at in unix nanoseconds
//	ringcast_messages(topic, seq, time, data)            primary key (topic, seq), index (topic, time)
//
// Migrations are an ordered list of steps applied at Open in one
// transaction, serialised between nodes starting at once by a transaction
// advisory lock, and recorded in schema_version. Open refuses a database
// whose ringcast_meta names another application or a schema version newer
// than this build's (store.ErrNotRingcast) and then never modifies it.
// Topic names sort by their bytes (collation "C"), as Topics lists them.
//
// # Appends
//
// An Append call is one transaction sent in one round trip: one statement
// per element, which moves the topic's head only if the element's token is
// the topic's and its first message follows the head, and inserts the
// messages only if the head moved. A fenced element therefore inserts
// nothing, while the others commit. Elements run in topic order, so that
// concurrent batches lock topics in the same order and cannot deadlock.
//
// # Errors
//
// Failures to reach or write the database wrap store.ErrUnavailable with
// the cause kept in the chain: refused or lost connections, timeouts and
// cancelled contexts (ctx.Err() is in the chain), and the server errors of
// SQLSTATE classes 08 (connection), 40 (transaction rolled back, such as a
// deadlock), 53 (insufficient resources: disk full, out of memory, too
// many connections), 57 (operator intervention: shutdown, cancelled
// statement), 58 (system error), 55P03 (lock timeout) and 25006 (a
// read-only standby). After a lost connection the pool's idle connections
// are discarded and the next call connects afresh, so that calls succeed
// again as soon as the database is back.
//
// When a connection is lost while a transaction commits, the client cannot
// know whether the commit happened: the call returns ErrUnavailable, and a
// new Claim tells the caller where the topic's head is.
package postgres
