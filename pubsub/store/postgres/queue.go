package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ringcast/ringcast/pubsub/store"
)

var _ store.QueueCursors = (*Store)(nil)

// QueueCursor implements store.QueueCursors.
func (s *Store) QueueCursor(ctx context.Context, topic, group string) (store.Cursor, bool, error) {
	if err := s.checkOpen("queue cursor"); err != nil {
		return store.Cursor{}, false, err
	}
	if checkText("topic", topic) != nil || checkText("group", group) != nil {
		return store.Cursor{}, false, nil // a name text cannot hold has no cursor
	}
	var epoch, seq int64
	err := s.pool.QueryRow(ctx, `SELECT epoch, seq FROM ringcast_queue_cursors WHERE topic = $1 AND grp = $2`, topic, group).Scan(&epoch, &seq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Cursor{}, false, nil
	case err != nil:
		return store.Cursor{}, false, s.wrapErr(ctx, "queue cursor", err)
	}
	return store.Cursor{Epoch: uint64(epoch), Seq: uint64(seq)}, true, nil
}

const saveCursorSQL = `
INSERT INTO ringcast_queue_cursors AS c (topic, grp, epoch, seq) VALUES ($1, $2, $3, $4)
ON CONFLICT (topic, grp) DO UPDATE SET epoch = EXCLUDED.epoch, seq = EXCLUDED.seq
WHERE EXCLUDED.epoch > c.epoch OR (EXCLUDED.epoch = c.epoch AND EXCLUDED.seq > c.seq)`

// SaveQueueCursor implements store.QueueCursors.
func (s *Store) SaveQueueCursor(ctx context.Context, topic, group string, c store.Cursor) error {
	if err := s.checkOpen("save queue cursor"); err != nil {
		return err
	}
	if err := checkText("topic", topic); err != nil {
		return fmt.Errorf("postgres: save queue cursor: %w", err)
	}
	if err := checkText("group", group); err != nil {
		return fmt.Errorf("postgres: save queue cursor: %w", err)
	}
	epoch, err := toInt64("epoch", c.Epoch)
	if err != nil {
		return fmt.Errorf("postgres: save queue cursor: %w", err)
	}
	seq, err := toInt64("seq", c.Seq)
	if err != nil {
		return fmt.Errorf("postgres: save queue cursor: %w", err)
	}
	b := newWriteBatch(ctx)
	b.Queue(saveCursorSQL, topic, group, epoch, seq)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return s.wrapErr(ctx, "save queue cursor", err)
	}
	return nil
}
