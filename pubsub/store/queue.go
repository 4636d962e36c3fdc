package store

import "context"

// QueueCursors is implemented by a Store that keeps the cursors of queue
// groups: for each (topic, group), the position up to which the group has
// acknowledged every message. The owner of a durable topic saves a
// group's cursor as acknowledgements make it advance, and a new owner (a
// failover, a hand-off, a restart) reads it to deliver again what the
// group had not acknowledged. Both stores of ringcast implement it; with
// a Store that does not, cursors live in the owner's memory only.
type QueueCursors interface {
	// QueueCursor returns the group's cursor; ok is false when the store
	// holds none for it.
	QueueCursor(ctx context.Context, topic, group string) (c Cursor, ok bool, err error)

	// SaveQueueCursor records the group's cursor. It only moves forward:
	// a cursor of a later epoch, or of the same epoch and a greater
	// sequence number, replaces the stored one; any other is ignored, so
	// that a late write of an owner that has moved on changes nothing.
	SaveQueueCursor(ctx context.Context, topic, group string, c Cursor) error
}

// Cursor is a queue group's position in a topic: every message of Epoch
// up to and including Seq is done.
type Cursor struct {
	Epoch uint64
	Seq   uint64
}
