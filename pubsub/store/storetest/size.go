package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/store"
)

// testSize checks store.Sizer: a store holds something from the start (its
// schema), and grows by at least what was appended.
func testSize(t *testing.T, s store.Store) {
	sz, ok := s.(store.Sizer)
	if !ok {
		t.Skip("the store does not tell its size")
	}
	size := func() int64 {
		t.Helper()
		n, err := sz.Size(ctxFor(t))
		if err != nil {
			t.Fatalf("Size: %v", err)
		}
		return n
	}
	before := size()
	if before <= 0 {
		t.Fatalf("Size of a new store = %d, want its schema's bytes", before)
	}
	l := claim(t, s, "sized", "node-a", 1)
	const msgs, each = 256, 1 << 10
	batch := make([]store.Message, msgs)
	now := time.Now().UnixNano()
	for i := range batch {
		batch[i] = store.Message{Seq: uint64(i + 1), Time: now, Data: bytes.Repeat([]byte{byte('a' + i%26)}, each)}
	}
	mustAppend(t, s, "sized", l.Token, batch)
	if after := size(); after < before+msgs*each/2 {
		t.Fatalf("Size after %d KiB appended = %d, before %d", msgs*each>>10, after, before)
	}
}
