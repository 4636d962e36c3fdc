package postgres

import "context"

// sizeSQL adds up the ringcast tables of the search path, with their
// indexes and TOAST data.
const sizeSQL = `
	SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint
	FROM pg_class c
	WHERE c.relkind = 'r' AND c.relname LIKE 'ringcast\_%' AND pg_table_is_visible(c.oid)`

// Size implements store.Sizer: the bytes of the ringcast tables, their
// indexes and TOAST data.
func (s *Store) Size(ctx context.Context) (int64, error) {
	if err := s.checkOpen("size"); err != nil {
		return 0, err
	}
	var n int64
	if err := s.pool.QueryRow(ctx, sizeSQL).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}
