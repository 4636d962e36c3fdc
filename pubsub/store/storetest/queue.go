package storetest

import (
	"context"
	"testing"

	"github.com/ringcast/ringcast/pubsub/store"
)

// testQueueCursors checks store.QueueCursors, for a store that implements
// it: an unknown group has no cursor, a saved one reads back, and a cursor
// only moves forward (a later epoch, or a greater seq in one epoch).
func testQueueCursors(t *testing.T, s store.Store) {
	qc, ok := s.(store.QueueCursors)
	if !ok {
		t.Skip("the store keeps no queue cursors")
	}
	ctx := context.Background()
	read := func(topic, group string) (store.Cursor, bool) {
		t.Helper()
		c, ok, err := qc.QueueCursor(ctx, topic, group)
		if err != nil {
			t.Fatalf("QueueCursor(%q, %q): %v", topic, group, err)
		}
		return c, ok
	}
	save := func(topic, group string, c store.Cursor) {
		t.Helper()
		if err := qc.SaveQueueCursor(ctx, topic, group, c); err != nil {
			t.Fatalf("SaveQueueCursor(%q, %q, %v): %v", topic, group, c, err)
		}
	}
	if _, ok := read("jobs", "workers"); ok {
		t.Fatal("a cursor for a group never saved")
	}
	steps := []struct {
		save, want store.Cursor
	}{
		{store.Cursor{Epoch: 5, Seq: 10}, store.Cursor{Epoch: 5, Seq: 10}},
		{store.Cursor{Epoch: 5, Seq: 12}, store.Cursor{Epoch: 5, Seq: 12}},
		{store.Cursor{Epoch: 5, Seq: 11}, store.Cursor{Epoch: 5, Seq: 12}}, // behind: ignored
		{store.Cursor{Epoch: 4, Seq: 99}, store.Cursor{Epoch: 5, Seq: 12}}, // older epoch: ignored
		{store.Cursor{Epoch: 6, Seq: 1}, store.Cursor{Epoch: 6, Seq: 1}},   // later epoch
	}
	for _, st := range steps {
		save("jobs", "workers", st.save)
		if got, ok := read("jobs", "workers"); !ok || got != st.want {
			t.Fatalf("after saving %v: cursor %v (found %v), want %v", st.save, got, ok, st.want)
		}
	}
	// Groups and topics are apart.
	save("jobs", "audit", store.Cursor{Epoch: 1, Seq: 3})
	if got, _ := read("jobs", "workers"); got != (store.Cursor{Epoch: 6, Seq: 1}) {
		t.Fatalf("another group's save moved this one to %v", got)
	}
	if _, ok := read("other", "workers"); ok {
		t.Fatal("a cursor for another topic")
	}
}
