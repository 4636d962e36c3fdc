// Package store is the contract between a ringcast node and the database
// that makes its durable topics survive failover, rebalancing and a full
// restart.
//
// The store is the single source of truth for a durable topic's order. A
// topic's row holds its epoch (fixed when the store first records the
// topic), the sequence number of its last committed message (the head), and
// a fencing token. The node that owns the topic on the ring takes the token
// with Claim before it sequences anything: Claim returns a token greater
// than every token handed out for the topic before, and from then on an
// Append carrying an older token fails with ErrFenced. So two nodes that
// both believe they own a topic (two sides of a network partition, an old
// owner slow to notice that the ring moved on) can never both append: the
// one that claimed last wins, the other's writes fail and it steps down.
//
// Appends are batched across topics by the caller (group commit): one
// Append call is one transaction, in which each topic's messages either
// all commit or, if that topic is fenced, none of them do, while the other
// topics of the batch commit.
//
// Two implementations ship with ringcast: package sqlite (embedded, one
// file, shared by the processes of one host) and package postgres (one
// database shared by every node of a cluster). Package storetest is the
// suite both pass; a third implementation should pass it too.
package store

import (
	"context"
	"errors"
)

// Errors. Implementations wrap these so that callers test with errors.Is.
var (
	// ErrFenced is returned for an append whose token is no longer the
	// topic's (another node claimed the topic since) or whose first sequence
	// number does not follow the topic's head.
	ErrFenced = errors.New("store: fenced: another node has claimed the topic")

	// ErrUnavailable wraps every failure to reach or write the database:
	// connection refused or lost, timeout, disk full, database locked for
	// too long. Nothing of the call that returned it was committed.
	ErrUnavailable = errors.New("store: unavailable")

	// ErrNotRingcast is returned by Open for a file or database that is not
	// a ringcast store (corrupt, or another application's) or holds a schema
	// newer than this build knows. Open never modifies such a database.
	ErrNotRingcast = errors.New("store: not a ringcast store")

	// ErrClosed is returned by calls on a closed Store.
	ErrClosed = errors.New("store: closed")
)

// Lease is a topic's state in the store, as Claim returns it to the new
// owner.
type Lease struct {
	// Epoch is the topic's epoch: the one Claim was given when the store
	// first recorded the topic, unchanged ever after.
	Epoch uint64
	// Seq is the sequence number of the topic's last committed message (0:
	// none yet). The owner's next message is Seq+1.
	Seq uint64
	// Token fences the topic's appends: Append must carry it.
	Token uint64
}

// Message is one committed message of a topic.
type Message struct {
	Seq  uint64
	Time int64 // unix nanoseconds at which the owner sequenced it
	Data []byte
}

// Append is one topic's part of a batch: messages with consecutive
// sequence numbers, the first of which is the topic's head + 1.
type Append struct {
	Topic    string
	Token    uint64
	Messages []Message
}

// TopicHead is a topic as Topics lists it.
type TopicHead struct {
	Name  string
	Epoch uint64
	Seq   uint64 // last committed sequence number
	Owner string // the node that last claimed it
}

// Store is a database holding durable topics. Every method is safe for
// concurrent use; several Store values (in one process or several) may
// share one database. Methods honour ctx and wrap ErrUnavailable when the
// database cannot be reached or written.
type Store interface {
	// Claim makes owner the topic's only writer and returns the topic's
	// state with a new fencing token. When the store does not hold the
	// topic yet, it records it with the given epoch and head 0.
	Claim(ctx context.Context, topic, owner string, epoch uint64) (Lease, error)

	// Append commits a batch in one transaction. results has one entry per
	// element of batch: nil when that topic's messages committed, an error
	// wrapping ErrFenced when they did not. err is non-nil (and results
	// nil) when the transaction failed as a whole: nothing was committed.
	Append(ctx context.Context, batch []Append) (results []error, err error)

	// Read returns the topic's committed messages with sequence numbers
	// greater than after, in order, at most limit of them and no more than
	// about maxBytes of data (at least one message when there is one). A
	// topic that retention trimmed starts later than after+1; an unknown
	// topic has none.
	Read(ctx context.Context, topic string, after uint64, limit, maxBytes int) ([]Message, error)

	// Trim deletes the topic's messages with a sequence number up to
	// throughSeq or a Time before before (unix nanoseconds; 0: no age
	// bound). It never changes the topic's head or epoch. It returns the
	// number of messages deleted.
	Trim(ctx context.Context, topic string, throughSeq uint64, before int64) (int64, error)

	// Topics lists the topics the store holds, ordered by name, the first
	// limit of those whose name is greater than after.
	Topics(ctx context.Context, after string, limit int) ([]TopicHead, error)

	// Close releases the database. Calls after Close return ErrClosed.
	Close() error
}
