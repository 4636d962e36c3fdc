package pubsub

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
)

// refHistory is the plain model history is checked against: a slice trimmed
// to size from the front.
type refHistory struct {
	size    int
	ttl     time.Duration
	entries []wire.HistoryEntry
}

func (r *refHistory) add(seq uint64, now int64, data []byte) {
	if r.size <= 0 {
		return
	}
	r.entries = append(r.entries, wire.HistoryEntry{Seq: seq, Time: now, Data: data})
	if len(r.entries) > r.size {
		r.entries = r.entries[len(r.entries)-r.size:]
	}
}

func (r *refHistory) expire(now int64) {
	if r.ttl <= 0 {
		return
	}
	for len(r.entries) > 0 && r.entries[0].Time < now-int64(r.ttl) {
		r.entries = r.entries[1:]
	}
}

func (r *refHistory) since(seq uint64) []wire.HistoryEntry {
	var out []wire.HistoryEntry
	for _, e := range r.entries {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

func (r *refHistory) replace(entries []wire.HistoryEntry) {
	r.entries = nil
	for _, e := range entries {
		r.add(e.Seq, e.Time, e.Data)
	}
}

func (r *refHistory) oldest() uint64 {
	if len(r.entries) == 0 {
		return 0
	}
	return r.entries[0].Seq
}

func (r *refHistory) window(after, until uint64, maxBytes int) []wire.HistoryEntry {
	var out []wire.HistoryEntry
	size := 0
	for _, e := range r.entries {
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

// checkBlocks checks history's layout: the entry count, that no slot outside
// the live range (nor the spare) still holds anything, that no detached
// block is referenced, and that the live blocks are no more than the entries
// need, nor the slice holding them larger than size needs.
func checkBlocks(t *testing.T, h *history) {
	t.Helper()
	held := 0
	for i, b := range h.blocks[:cap(h.blocks)] {
		live := i >= h.first && i < len(h.blocks)
		if !live {
			if b != nil {
				t.Fatalf("blocks[%d] outside [%d,%d) is still referenced", i, h.first, len(h.blocks))
			}
			continue
		}
		if len(b) != min(h.size, histBlock) && (i != h.first || len(b) != min(h.size, histFirst)) {
			t.Fatalf("blocks[%d] has %d entries, want %d (or %d as the oldest)", i, len(b), min(h.size, histBlock), min(h.size, histFirst))
		}
		lo, hi := 0, len(b)
		if i == h.first {
			lo = h.head
		}
		if i == len(h.blocks)-1 {
			hi = h.tail
		}
		if lo >= hi {
			t.Fatalf("blocks[%d] is live but holds nothing (%d..%d)", i, lo, hi)
		}
		held += hi - lo
		for j, e := range b {
			if (j < lo || j >= hi) && !isZero(e) {
				t.Fatalf("blocks[%d][%d] outside the live range %d..%d holds %+v", i, j, lo, hi, e)
			}
		}
	}
	if held != h.n {
		t.Fatalf("blocks hold %d entries, n = %d", held, h.n)
	}
	if h.n == 0 && h.first != len(h.blocks) {
		t.Fatalf("empty history keeps %d live blocks", len(h.blocks)-h.first)
	}
	if live, most := len(h.blocks)-h.first, (h.n+histBlock-1)/histBlock+1; live > most {
		t.Fatalf("%d live blocks for %d entries, want at most %d", live, h.n, most)
	}
	// The slice of blocks is compacted rather than grown while the history
	// keeps its length: its capacity stays within what append gives for the
	// most blocks size entries can span.
	if bl := min(h.size, histBlock); bl > 0 {
		if most := (h.size+bl-1)/bl + 1; cap(h.blocks) > 2*most {
			t.Fatalf("slice of blocks has capacity %d for at most %d live blocks", cap(h.blocks), most)
		}
	}
	for j, e := range h.spare {
		if !isZero(e) {
			t.Fatalf("spare[%d] holds %+v", j, e)
		}
	}
}

func isZero(e wire.HistoryEntry) bool { return e.Seq == 0 && e.Time == 0 && e.Data == nil }

// sameEntries checks got against want, including that each entry's data is
// the very slice given to add, not a copy.
func sameEntries(t *testing.T, what string, got, want []wire.HistoryEntry) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b wire.HistoryEntry) bool {
		return a.Seq == b.Seq && a.Time == b.Time && len(a.Data) == len(b.Data) &&
			(len(a.Data) == 0 || &a.Data[0] == &b.Data[0])
	}) || (got == nil) != (want == nil) {
		t.Fatalf("%s = %v, want %v", what, entrySeqs(got), entrySeqs(want))
	}
}

func entrySeqs(es []wire.HistoryEntry) []uint64 {
	if es == nil {
		return nil
	}
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func TestHistoryMatchesModel(t *testing.T) {
	for _, size := range []int{0, 1, 31, 32, 33, histBlock - 1, histBlock, histBlock + 1, 256, 1000} {
		for _, ttl := range []time.Duration{0, 40, 1500} {
			t.Run(fmt.Sprintf("size=%d/ttl=%d", size, ttl), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(size), uint64(ttl)))
				h := newHistory(size, ttl)
				ref := refHistory{size: max(size, 0), ttl: ttl}
				seq, now := uint64(0), int64(0)
				entry := func() (uint64, int64, []byte) {
					seq += 1 + rng.Uint64N(2)
					now += rng.Int64N(3)
					var data []byte
					if n := rng.IntN(41); n > 0 {
						data = make([]byte, n)
						data[0] = byte(seq)
					}
					return seq, now, data
				}
				for op := range 6000 {
					switch r := rng.IntN(100); {
					case r < 70:
						s, n, d := entry()
						h.add(s, n, d)
						ref.add(s, n, d)
					case r < 80:
						at := now + rng.Int64N(60) - 20
						h.expire(at)
						ref.expire(at)
					case r < 88:
						after := rng.Uint64N(seq + 2)
						sameEntries(t, fmt.Sprintf("op %d: since(%d)", op, after), h.since(after), ref.since(after))
					case r < 96:
						after, until := rng.Uint64N(seq+2), uint64(0)
						if rng.IntN(2) == 0 {
							until = after + rng.Uint64N(seq+2)
						}
						maxBytes := rng.IntN(2000)
						sameEntries(t, fmt.Sprintf("op %d: window(%d, %d, %d)", op, after, until, maxBytes),
							h.window(after, until, maxBytes), ref.window(after, until, maxBytes))
					case r < 98:
						entries := make([]wire.HistoryEntry, rng.IntN(2*size+3))
						for i := range entries {
							s, n, d := entry()
							entries[i] = wire.HistoryEntry{Seq: s, Time: n, Data: d}
						}
						h.replace(entries)
						ref.replace(entries)
					default:
						h = newHistory(size, ttl)
						ref.entries = nil
					}
					if got, want := h.oldest(), ref.oldest(); got != want {
						t.Fatalf("op %d: oldest() = %d, want %d", op, got, want)
					}
					sameEntries(t, fmt.Sprintf("op %d: all()", op), h.all(), ref.since(0))
					checkBlocks(t, &h)
				}
			})
		}
	}
}

func TestHistoryWindow(t *testing.T) {
	h := newHistory(100, 0)
	for i := range 10 {
		h.add(uint64(i+1), int64(i), make([]byte, 10))
	}
	for _, c := range []struct {
		after, until uint64
		maxBytes     int
		want         []uint64
	}{
		{0, 0, 1 << 20, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{4, 0, 1 << 20, []uint64{5, 6, 7, 8, 9, 10}},
		{4, 6, 1 << 20, []uint64{5, 6}},
		{10, 0, 1 << 20, nil},
		{0, 0, 0, []uint64{1}},     // always at least one entry
		{0, 0, 42, []uint64{1}},    // 42 + 10 > 51: the second does not fit
		{0, 0, 52, []uint64{1, 2}}, // each entry counts its data and 32
		{7, 0, 94, []uint64{8, 9, 10}},
	} {
		if got := entrySeqs(h.window(c.after, c.until, c.maxBytes)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("window(%d, %d, %d) = %v, want %v", c.after, c.until, c.maxBytes, got, c.want)
		}
	}
}

func TestHistoryDropZeroes(t *testing.T) {
	h := newHistory(70, time.Duration(100))
	for i := range 500 {
		h.add(uint64(i+1), int64(i), []byte{byte(i)})
		checkBlocks(t, &h)
	}
	if h.n != 70 || h.oldest() != 431 {
		t.Fatalf("full history holds %d entries from %d, want 70 from 431", h.n, h.oldest())
	}
	h.expire(499 + 100 - 20) // keeps Time >= 479: seq 480..500
	checkBlocks(t, &h)
	if h.n != 21 || h.oldest() != 480 {
		t.Fatalf("after expire: %d entries from %d, want 21 from 480", h.n, h.oldest())
	}
	if h.spare == nil {
		t.Fatal("no spare kept after blocks emptied")
	}
	h.expire(1 << 40)
	checkBlocks(t, &h)
	if h.n != 0 || h.all() != nil || h.oldest() != 0 {
		t.Fatalf("expired history holds %d entries (%v)", h.n, entrySeqs(h.all()))
	}
	if len(h.blocks) != h.first || h.spare == nil {
		t.Fatalf("empty history keeps %d live blocks, spare %v", len(h.blocks)-h.first, h.spare != nil)
	}
}

func TestHistorySizeZero(t *testing.T) {
	for _, size := range []int{0, -1} {
		h := newHistory(size, time.Second)
		data := []byte("x")
		allocs := testing.AllocsPerRun(100, func() { h.add(1, 1, data) })
		if allocs != 0 {
			t.Errorf("size %d: add allocates %v times", size, allocs)
		}
		h.replace([]wire.HistoryEntry{{Seq: 1}})
		if h.all() != nil || h.oldest() != 0 || h.window(0, 0, 1<<20) != nil || h.blocks != nil || h.spare != nil {
			t.Errorf("size %d: history holds %v", size, entrySeqs(h.all()))
		}
	}
}

func TestHistorySteadyStateAllocs(t *testing.T) {
	data := []byte("payload")
	for _, size := range []int{1, 31, 32, 33, histBlock - 1, histBlock, histBlock + 1, 256, 1000} {
		for _, expiring := range []bool{false, true} {
			ttl := time.Duration(0)
			if expiring {
				ttl = time.Duration(size / 2) // holds about half of size
			}
			h := newHistory(size, ttl)
			seq := uint64(0)
			add := func() {
				seq++
				h.add(seq, int64(seq), data)
				h.expire(int64(seq))
			}
			for range 4*size + 2*histBlock {
				add()
			}
			if allocs := testing.AllocsPerRun(2000, add); allocs != 0 {
				t.Errorf("size %d, ttl %d: %v allocs per add", size, ttl, allocs)
			}
			checkBlocks(t, &h)
		}
	}
}

// TestHistoryBurstsAllocateNothing empties a history between bursts of
// messages (its TTL passes), as a topic that is used now and then sees: once
// warm, a burst that fits in a block reuses the block of the last one. (An
// empty history keeps one spare block, so a longer burst allocates the
// blocks it needs beyond it.)
func TestHistoryBurstsAllocateNothing(t *testing.T) {
	data := []byte("payload")
	for _, burst := range []int{1, histFirst, histFirst + 1, 10, histBlock} {
		h := newHistory(256, 10)
		now := int64(0)
		cycle := func() {
			for range burst {
				now++
				h.add(uint64(now), now, data)
			}
			now += 100
			h.expire(now)
			if h.n != 0 {
				t.Fatalf("burst %d: %d entries left after the TTL", burst, h.n)
			}
		}
		for range 3 {
			cycle()
		}
		if allocs := testing.AllocsPerRun(200, cycle); allocs != 0 {
			t.Errorf("burst of %d: %v allocs per burst", burst, allocs)
		}
		checkBlocks(t, &h)
	}
}

// BenchmarkHistoryAdd measures a topic's history from its first message:
// fill is a new history taken to twice its size, steady one add to a full one.
func BenchmarkHistoryAdd(b *testing.B) {
	data := make([]byte, 64)
	b.Run("fill", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h := newHistory(256, 0)
			for i := range 512 {
				h.add(uint64(i+1), int64(i), data)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*512), "ns/add")
	})
	b.Run("steady", func(b *testing.B) {
		b.ReportAllocs()
		h := newHistory(256, 0)
		seq := uint64(0)
		for range 256 {
			seq++
			h.add(seq, int64(seq), data)
		}
		for b.Loop() {
			seq++
			h.add(seq, int64(seq), data)
		}
	})
}
