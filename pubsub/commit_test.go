package pubsub

import (
	"testing"
)

// TestCommitterBounded: the committer's queue counts what it holds, and
// refuses more once maxQueuedRecs records or maxQueuedBytes wait; taking
// and purging give the room back.
func TestCommitterBounded(t *testing.T) {
	c := newCommitter(nil, 0, &counters{}, nil)
	a, b := &ownedTopic{name: "a"}, &ownedTopic{name: "b"}
	data := make([]byte, 100)
	for i := range maxQueuedRecs {
		if err := c.room(len(data)); err != nil {
			t.Fatalf("record %d refused: %v", i, err)
		}
		ot := a
		if i%2 == 1 {
			ot = b
		}
		c.add(&commitRec{ot: ot, seq: uint64(i + 1), req: &pubReq{data: data}})
	}
	if err := c.room(len(data)); err == nil {
		t.Fatal("a full queue took one more record")
	}
	if err := c.room(0); err == nil {
		t.Fatal("a full queue has room for an empty message")
	}
	if got := len(c.take()); got != maxCommitRecs {
		t.Fatalf("took %d records, want %d", got, maxCommitRecs)
	}
	if c.queued != (maxQueuedRecs-maxCommitRecs)*len(data) {
		t.Fatalf("queued %d bytes after a take", c.queued)
	}
	if err := c.room(len(data)); err != nil {
		t.Fatalf("no room after a take: %v", err)
	}
	purged := c.purge(a)
	if len(purged) != (maxQueuedRecs-maxCommitRecs)/2 || c.queued != len(c.queue)*len(data) {
		t.Fatalf("purged %d, %d bytes left for %d records", len(purged), c.queued, len(c.queue))
	}
	// Bytes bound.
	big := newCommitter(nil, 0, &counters{}, nil)
	big.add(&commitRec{ot: a, req: &pubReq{data: make([]byte, maxQueuedBytes-10)}})
	if err := big.room(11); err == nil {
		t.Fatalf("room past maxQueuedBytes: %v", err)
	}
	if err := big.room(10); err != nil {
		t.Fatalf("room up to maxQueuedBytes: %v", err)
	}
}
