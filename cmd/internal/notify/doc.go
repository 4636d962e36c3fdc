// Package notify is ringcast's notification system: accounts and tokens,
// topics owned by their creators, durable subscriptions, read cursors, the
// inbox, read receipts, and the HTTP API over them.
//
// # Names
//
// A notification topic N is the durable ringcast topic "notifications:N"
// (RingTopic); each user U has a memory-only control topic "users:U"
// (UserTopic) on which the package publishes ControlEvents.
//
// # Database
//
// The notify_* tables live in the ringcast store's own database (SQLite
// file or PostgreSQL database): see OpenDB, DB and Migrate.
package notify
