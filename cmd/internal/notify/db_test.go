package notify

import (
	"context"
	"testing"
)

func TestMigrateIdempotent(t *testing.T) {
	for _, d := range TestDialects {
		t.Run(d, func(t *testing.T) {
			db := OpenTestDB(t, d)
			ctx := context.Background()
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
			var v string
			if err := db.SQL.QueryRowContext(ctx, db.Rebind(`SELECT value FROM ringcast_meta WHERE key = ?`), schemaKey).Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != "1" {
				t.Fatalf("schema version %q", v)
			}
			for _, table := range []string{"notify_users", "notify_tokens", "notify_topics", "notify_subscriptions", "notify_cursors", "notify_online", "notify_pending", "notify_outbox"} {
				if _, err := db.SQL.ExecContext(ctx, "SELECT count(*) FROM "+table); err != nil {
					t.Errorf("%s: %v", table, err)
				}
			}
		})
	}
}
