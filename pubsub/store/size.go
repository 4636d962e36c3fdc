package store

import "context"

// Sizer is implemented by a Store that can tell how much space it takes:
// for monitoring (the ringcast_store_size_bytes metric), never on a
// publish's path. Both stores of ringcast implement it.
type Sizer interface {
	// Size returns the bytes the store's data takes on disk: for SQLite
	// the database file and its write-ahead log, for PostgreSQL the
	// ringcast tables with their indexes and TOAST data.
	Size(ctx context.Context) (int64, error)
}
