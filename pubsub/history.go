package pubsub

import (
	"time"

	"github.com/ringcast/ringcast/transport"
)

// history keeps a topic's most recent messages at its owner: at most size
// entries, none older than ttl. It is a ring buffer; the owner's topic lock
// guards it.
type history struct {
	size    int
	ttl     time.Duration
	entries []transport.HistoryEntry
	head, n int
}

func newHistory(size int, ttl time.Duration) history {
	if size < 0 {
		size = 0
	}
	return history{size: size, ttl: ttl}
}

func (h *history) add(seq uint64, now int64, data []byte) {
	if h.size == 0 {
		return
	}
	if h.entries == nil {
		h.entries = make([]transport.HistoryEntry, min(h.size, 16))
	}
	if h.n == len(h.entries) {
		if len(h.entries) < h.size {
			h.grow()
		} else {
			h.head = h.slot(1)
			h.n--
		}
	}
	h.entries[h.slot(h.n)] = transport.HistoryEntry{Seq: seq, Time: now, Data: data}
	h.n++
}

// slot returns the index in entries of the i-th oldest entry, 0 <= i <
// len(entries): a subtraction, not a division, as add runs on every
// publish.
func (h *history) slot(i int) int {
	j := h.head + i
	if j >= len(h.entries) {
		j -= len(h.entries)
	}
	return j
}

func (h *history) grow() {
	next := make([]transport.HistoryEntry, min(h.size, 2*len(h.entries)))
	for i := range h.n {
		next[i] = h.entries[h.slot(i)]
	}
	h.entries, h.head = next, 0
}

// expire drops entries older than the TTL.
func (h *history) expire(now int64) {
	if h.ttl <= 0 {
		return
	}
	cut := now - int64(h.ttl)
	for h.n > 0 && h.entries[h.head].Time < cut {
		h.entries[h.head] = transport.HistoryEntry{}
		h.head = h.slot(1)
		h.n--
	}
}

// since returns the entries with Seq > seq, oldest first.
func (h *history) since(seq uint64) []transport.HistoryEntry {
	var out []transport.HistoryEntry
	for i := range h.n {
		e := h.entries[h.slot(i)]
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// all returns every entry, oldest first.
func (h *history) all() []transport.HistoryEntry { return h.since(0) }

// replace sets the entries from a hand-off, keeping the newest that fit.
func (h *history) replace(entries []transport.HistoryEntry) {
	h.entries, h.head, h.n = nil, 0, 0
	if len(entries) > h.size {
		entries = entries[len(entries)-h.size:]
	}
	for _, e := range entries {
		h.add(e.Seq, e.Time, e.Data)
	}
}

// oldest returns the lowest retained sequence number, or 0 when empty.
func (h *history) oldest() uint64 {
	if h.n == 0 {
		return 0
	}
	return h.entries[h.head].Seq
}

// window returns the entries with after < Seq <= until (until 0: no upper
// bound), oldest first, stopping once maxBytes of data is collected (always
// at least one entry when there is one).
func (h *history) window(after, until uint64, maxBytes int) []transport.HistoryEntry {
	var out []transport.HistoryEntry
	size := 0
	for i := range h.n {
		e := h.entries[h.slot(i)]
		if e.Seq <= after {
			continue
		}
		if until != 0 && e.Seq > until {
			break
		}
		if len(out) > 0 && size+len(e.Data) > maxBytes {
			break
		}
		out = append(out, e)
		size += len(e.Data) + 32
	}
	return out
}
