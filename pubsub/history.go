package pubsub

import (
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// histBlock is the most entries one block of a history holds. Blocks keep a
// history's memory close to what it holds, whatever its size, and let it grow
// without copying entries. 35 entries of 40 bytes and the allocator's 8-byte
// type header fill its 1408-byte size class exactly; 32 would leave 120
// bytes of it unused.
const histBlock = 35

// histFirst is the size of a history's first block. Most topics hold a few
// messages at a time (a topic per user or per session): they should not pay
// for a full block. 4 entries of 40 bytes fill the 160-byte size class.
const histFirst = 4

// history keeps a topic's most recent messages at its owner: at most size
// entries, none older than ttl. It is a ring of blocks of min(size,
// histBlock) entries each, but for a first block of histFirst; the owner's
// topic lock guards it.
//
// The live blocks are blocks[first:]: the oldest entry is blocks[first][head],
// the newest blocks[len(blocks)-1][tail-1]. A dropped entry is zeroed at once
// so its data can be collected, and a block that empties is kept as the
// spare for the next one the tail needs, so a full history in steady state
// allocates nothing. The zero value of every field but size and ttl is an
// empty history.
type history struct {
	size  int
	ttl   time.Duration
	n     int // entries held
	head  int // index in blocks[first] of the oldest entry
	tail  int // entries used in the last block
	first int // index in blocks of the oldest live block; == len(blocks) when empty

	// blocks[:first] are nil: indexing rather than re-slicing from the front
	// lets a full slice be compacted in place instead of reallocated.
	blocks [][]wire.HistoryEntry
	spare  []wire.HistoryEntry // a zeroed block, or nil
}

func newHistory(size int, ttl time.Duration) history {
	if size < 0 {
		size = 0
	}
	return history{size: size, ttl: ttl}
}

func (h *history) add(seq uint64, now int64, data []byte) {
	if h.size <= 0 {
		return
	}
	if h.n == h.size {
		h.drop()
	}
	if h.first == len(h.blocks) || h.tail == len(h.blocks[len(h.blocks)-1]) {
		h.push()
	}
	// Field by field: a struct store goes through the bulk write barrier
	// while the collector runs.
	e := &h.blocks[len(h.blocks)-1][h.tail]
	e.Seq, e.Time, e.Data = seq, now, data
	h.tail++
	h.n++
}

// push appends a block for the tail: the spare if there is one and it is
// large enough. The only block of a history is small (histFirst entries);
// the blocks that follow are full ones, and a small spare is let go rather
// than reused after the first. The slice of blocks grows as append grows it;
// when it is full and blocks have left its front, the live ones are moved
// down instead, so a history that has reached its size never reallocates
// it.
func (h *history) push() {
	want := min(h.size, histBlock)
	if h.first == len(h.blocks) {
		want = min(h.size, histFirst)
	}
	b := h.spare
	h.spare = nil
	if len(b) < want {
		b = make([]wire.HistoryEntry, want)
	}
	if h.blocks == nil {
		h.blocks = make([][]wire.HistoryEntry, 0, 2)
	} else if len(h.blocks) == cap(h.blocks) && h.first > 0 {
		k := copy(h.blocks, h.blocks[h.first:])
		clear(h.blocks[k:])
		h.blocks, h.first = h.blocks[:k], 0
	}
	h.blocks = append(h.blocks, b)
	h.tail = 0
}

// drop removes the oldest entry; the history must not be empty. A block left
// with nothing in it is detached, which also makes an empty history hold no
// live block: its last one becomes the spare.
func (h *history) drop() {
	b := h.blocks[h.first]
	e := &b[h.head]
	e.Seq, e.Time, e.Data = 0, 0, nil
	h.head++
	h.n--
	if h.head == len(b) || h.n == 0 {
		h.blocks[h.first] = nil
		h.first++
		h.head = 0
		if len(b) > len(h.spare) {
			// Keep the larger: a small first block as the spare would
			// make the next burst allocate a full block again.
			h.spare = b
		}
	}
}

// span returns the entries held in blocks[i], first <= i < len(blocks).
func (h *history) span(i int) []wire.HistoryEntry {
	b := h.blocks[i]
	if i == len(h.blocks)-1 {
		b = b[:h.tail]
	}
	if i == h.first {
		b = b[h.head:]
	}
	return b
}

// expire drops entries older than the TTL.
func (h *history) expire(now int64) {
	if h.ttl <= 0 {
		return
	}
	cut := now - int64(h.ttl)
	for h.n > 0 && h.blocks[h.first][h.head].Time < cut {
		h.drop()
	}
}

// since returns the entries with Seq > seq, oldest first. It counts them
// before copying, as a hand-off or a new subscriber often takes them all.
func (h *history) since(seq uint64) []wire.HistoryEntry {
	k := 0
	for i := h.first; i < len(h.blocks); i++ {
		s := h.span(i)
		for j := range s {
			if s[j].Seq > seq {
				k++
			}
		}
	}
	if k == 0 {
		return nil
	}
	out := make([]wire.HistoryEntry, 0, k)
	for i := h.first; i < len(h.blocks); i++ {
		s := h.span(i)
		for j := range s {
			if s[j].Seq > seq {
				out = append(out, s[j])
			}
		}
	}
	return out
}

// all returns every entry, oldest first.
func (h *history) all() []wire.HistoryEntry { return h.since(0) }

// replace sets the entries from a hand-off, keeping the newest that fit.
func (h *history) replace(entries []wire.HistoryEntry) {
	spare := h.spare
	if last := len(h.blocks) - 1; last >= h.first && len(h.blocks[last]) > len(spare) {
		spare = h.blocks[last] // the newest block is a full one, unless it is the only one
		clear(spare)
	}
	*h = history{size: h.size, ttl: h.ttl, spare: spare}
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
	return h.blocks[h.first][h.head].Seq
}

// newest returns the highest retained sequence number, or 0 when empty.
func (h *history) newest() uint64 {
	if h.n == 0 {
		return 0
	}
	return h.blocks[len(h.blocks)-1][h.tail-1].Seq
}

// window returns the entries with after < Seq <= until (until 0: no upper
// bound), oldest first, stopping once maxBytes of data is collected (always
// at least one entry when there is one).
func (h *history) window(after, until uint64, maxBytes int) []wire.HistoryEntry {
	var out []wire.HistoryEntry
	size := 0
	for i := h.first; i < len(h.blocks); i++ {
		s := h.span(i)
		for j := range s {
			e := &s[j]
			if e.Seq <= after {
				continue
			}
			if until != 0 && e.Seq > until {
				return out
			}
			if len(out) > 0 && size+len(e.Data) > maxBytes {
				return out
			}
			out = append(out, *e)
			size += len(e.Data) + 32
		}
	}
	return out
}
