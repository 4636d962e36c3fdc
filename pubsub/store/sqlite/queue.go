package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/ringcast/ringcast/pubsub/store"
)

var _ store.QueueCursors = (*Store)(nil)

// QueueCursor implements store.QueueCursors.
func (s *Store) QueueCursor(ctx context.Context, topic, group string) (store.Cursor, bool, error) {
	if err := s.enter(ctx, "queue cursor"); err != nil {
		return store.Cursor{}, false, err
	}
	var epoch, seq int64
	err := s.r.QueryRowContext(ctx, `SELECT epoch, seq FROM ringcast_queue_cursors WHERE topic = ?1 AND grp = ?2`, topic, group).Scan(&epoch, &seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Cursor{}, false, nil
	case err != nil:
		return store.Cursor{}, false, s.fail(ctx, "queue cursor", err)
	}
	return store.Cursor{Epoch: uint64(epoch), Seq: uint64(seq)}, true, nil
}

// SaveQueueCursor implements store.QueueCursors.
func (s *Store) SaveQueueCursor(ctx context.Context, topic, group string, c store.Cursor) error {
	if err := s.enter(ctx, "save queue cursor"); err != nil {
		return err
	}
	if c.Epoch > math.MaxInt64 || c.Seq > math.MaxInt64 {
		return fmt.Errorf("sqlite: save queue cursor %q/%q: position %d/%d is not below 2^63", topic, group, c.Epoch, c.Seq)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO ringcast_queue_cursors (topic, grp, epoch, seq) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (topic, grp) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq
		WHERE excluded.epoch > epoch OR (excluded.epoch = epoch AND excluded.seq > seq)`,
		topic, group, int64(c.Epoch), int64(c.Seq))
	if err != nil {
		return s.fail(ctx, "save queue cursor", err)
	}
	return nil
}
