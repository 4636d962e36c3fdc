package postgres

import (
	"testing"

	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/internal/pgtest"
	"github.com/ringcast/ringcast/pubsub/store/storetest"
)

// TestConformance runs the store suite, each subtest on a database of its
// own.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openStore(t)
		return s
	})
}

// TestConformanceShared runs the suite of two Stores sharing a database,
// as two nodes do.
func TestConformanceShared(t *testing.T) {
	t.Parallel()
	storetest.RunShared(t, func(t *testing.T) (a, b store.Store) {
		u := pgtest.Shared(t).NewDatabase(t)
		return openURL(t, u), openURL(t, u)
	})
}
