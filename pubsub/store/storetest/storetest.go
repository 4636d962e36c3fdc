package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/store"
)

// Run runs the conformance suite against the stores open makes. open must
// return a fresh, empty store each time it is called; Run calls it once
// per subtest and closes the store when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s store.Store)
	}{
		{"ClaimNew", testClaimNew},
		{"Reclaim", testReclaim},
		{"AppendRead", testAppendRead},
		{"ConsecutiveAppends", testConsecutiveAppends},
		{"FencedAfterClaim", testFencedAfterClaim},
		{"FencedHeadMismatch", testFencedHeadMismatch},
		{"MixedBatch", testMixedBatch},
		{"MalformedBatch", testMalformedBatch},
		{"ReadPaging", testReadPaging},
		{"ReadNothing", testReadNothing},
		{"TrimBySeq", testTrimBySeq},
		{"TrimByTime", testTrimByTime},
		{"TopicsPaging", testTopicsPaging},
		{"LargeValues", testLargeValues},
		{"ConcurrentAppenders", testConcurrentAppenders},
		{"ContextCancelled", testContextCancelled},
		{"Closed", testClosed},
		{"QueueCursors", testQueueCursors},
		{"Size", testSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if s == nil {
				t.Fatal("open returned a nil store")
			}
			closeAtEnd(t, s)
			tc.f(t, s)
		})
	}
}

func testClaimNew(t *testing.T, s store.Store) {
	l := claim(t, s, "orders", "node-a", 42)
	if l.Epoch != 42 || l.Seq != 0 || l.Token == 0 {
		t.Fatalf("Claim of a new topic = %+v, want epoch 42, seq 0, a token > 0", l)
	}
	o := claim(t, s, "other", "node-b", 7)
	if o.Epoch != 7 || o.Seq != 0 || o.Token == 0 {
		t.Fatalf("Claim of a second new topic = %+v, want epoch 7, seq 0, a token > 0", o)
	}
	h, ok := topicHead(t, s, "orders")
	if !ok || h != (store.TopicHead{Name: "orders", Epoch: 42, Seq: 0, Owner: "node-a"}) {
		t.Fatalf("Topics lists orders as %+v (listed: %v), want epoch 42, seq 0, owner node-a", h, ok)
	}
}

func testReclaim(t *testing.T, s store.Store) {
	first := claim(t, s, "t", "node-a", 5)
	mustAppend(t, s, "t", first.Token, messages(1, 3, 10))
	prev := first.Token
	for i, owner := range []string{"node-b", "node-b", "node-a", "node-c", "node-c"} {
		l := claim(t, s, "t", owner, 99+uint64(i))
		if l.Epoch != 5 || l.Seq != 3 {
			t.Fatalf("re-claim %d = %+v, want the epoch (5) and head (3) kept", i, l)
		}
		if l.Token <= prev {
			t.Fatalf("re-claim %d token %d, want more than the previous %d", i, l.Token, prev)
		}
		prev = l.Token
		if h, _ := topicHead(t, s, "t"); h.Owner != owner {
			t.Fatalf("after a claim by %s, Topics says owner %q", owner, h.Owner)
		}
	}
}

func testAppendRead(t *testing.T, s store.Store) {
	l := claim(t, s, "t", "node-a", 1)
	want := []store.Message{
		{Seq: 1, Time: 1_700_000_000_000_000_001, Data: []byte("hello")},
		{Seq: 2, Time: 0, Data: []byte{}},
		{Seq: 3, Time: -5, Data: nil},
		{Seq: 4, Time: 1_700_000_000_000_000_004, Data: payload(4, 1<<20)},
		{Seq: 5, Time: math.MaxInt64, Data: []byte{0, 0, 0xff, 0, '\'', '"', '\\'}},
		{Seq: 6, Time: math.MinInt64, Data: []byte("\x00")},
	}
	mustAppend(t, s, "t", l.Token, want)
	equalMessages(t, "Read after the append", readAll(t, s, "t", 0), want)
	wantHead(t, s, "t", 6)

	// The caller's slices may be reused once Append returns.
	mine := []byte("abc")
	mustAppend(t, s, "t", l.Token, []store.Message{{Seq: 7, Time: 7, Data: mine}})
	copy(mine, "xyz")
	got := readAll(t, s, "t", 6)
	if len(got) != 1 || string(got[0].Data) != "abc" {
		t.Fatalf("message 7 read back as %d messages (%s), want one holding %q", len(got), seqRange(got), "abc")
	}
	// Neither are the returned slices the store's.
	got[0].Data[0] = 'z'
	if again := readAll(t, s, "t", 6); string(again[0].Data) != "abc" {
		t.Fatalf("changing a message Read returned changed the store: %q", again[0].Data)
	}
}

func testConsecutiveAppends(t *testing.T, s store.Store) {
	l := claim(t, s, "t", "node-a", 1)
	var want []store.Message
	next := uint64(1)
	for i := range 20 {
		ms := messages(next, 1+i%5, 50+i)
		mustAppend(t, s, "t", l.Token, ms)
		want = append(want, ms...)
		next += uint64(len(ms))
		wantHead(t, s, "t", next-1)
	}
	equalMessages(t, "Read after 20 appends", readAll(t, s, "t", 0), want)
	if again := claim(t, s, "t", "node-b", 2); again.Seq != next-1 || again.Epoch != 1 {
		t.Fatalf("Claim after the appends = %+v, want epoch 1, seq %d", again, next-1)
	}
}

func testFencedAfterClaim(t *testing.T, s store.Store) {
	a := claim(t, s, "t", "node-a", 1)
	mustAppend(t, s, "t", a.Token, messages(1, 2, 10))
	b := claim(t, s, "t", "node-b", 1)
	mustFence(t, s, "t", a.Token, messages(3, 2, 10))
	wantHead(t, s, "t", 2)
	if got := readAll(t, s, "t", 2); len(got) != 0 {
		t.Fatalf("a fenced append inserted %s", seqRange(got))
	}
	// No token is 0, and none beyond the current one has been handed out.
	mustFence(t, s, "t", 0, messages(3, 1, 10))
	mustFence(t, s, "t", b.Token+1, messages(3, 1, 10))
	// A topic never claimed has no token at all.
	mustFence(t, s, "never-claimed", 1, messages(1, 1, 10))
	if _, ok := topicHead(t, s, "never-claimed"); ok {
		t.Fatal("a fenced append to an unknown topic created it")
	}

	mustAppend(t, s, "t", b.Token, messages(3, 2, 10))
	wantHead(t, s, "t", 4)
	equalMessages(t, "Read after the fenced and the committed appends", readAll(t, s, "t", 0), messages(1, 4, 10))
}

func testFencedHeadMismatch(t *testing.T, s store.Store) {
	l := claim(t, s, "t", "node-a", 1)
	mustAppend(t, s, "t", l.Token, messages(1, 3, 10))
	for _, first := range []uint64{5, 3, 1, 2, 100} {
		ms := messages(first, 2, 11) // different data: an overwrite would show
		mustFence(t, s, "t", l.Token, ms)
		wantHead(t, s, "t", 3)
	}
	equalMessages(t, "Read after the fenced appends", readAll(t, s, "t", 0), messages(1, 3, 10))
	mustAppend(t, s, "t", l.Token, messages(4, 1, 10))
	equalMessages(t, "Read after the next append", readAll(t, s, "t", 0), messages(1, 4, 10))
}

func testMixedBatch(t *testing.T, s store.Store) {
	ax := claim(t, s, "x", "node-a", 1)
	ay := claim(t, s, "y", "node-a", 1)
	claim(t, s, "x", "node-b", 1) // fences node-a's x
	batch := []store.Append{
		{Topic: "x", Token: ax.Token, Messages: messages(1, 2, 10)},
		{Topic: "y", Token: ay.Token, Messages: messages(1, 3, 10)},
		{Topic: "z", Token: 1, Messages: messages(1, 1, 10)},
	}
	res, err := s.Append(ctxFor(t), batch)
	if err != nil {
		t.Fatalf("Append of a mixed batch: %v", err)
	}
	if len(res) != 3 {
		t.Fatalf("Append returned %d results for a batch of 3", len(res))
	}
	if !errors.Is(res[0], store.ErrFenced) || res[1] != nil || !errors.Is(res[2], store.ErrFenced) {
		t.Fatalf("results = %v, want [fenced, nil, fenced]", res)
	}
	equalMessages(t, "y", readAll(t, s, "y", 0), messages(1, 3, 10))
	if got := readAll(t, s, "x", 0); len(got) != 0 {
		t.Fatalf("fenced x has %s", seqRange(got))
	}
	if got := readAll(t, s, "z", 0); len(got) != 0 {
		t.Fatalf("unknown z has %s", seqRange(got))
	}
	wantHead(t, s, "x", 0)
	wantHead(t, s, "y", 3)
}

func testMalformedBatch(t *testing.T, s store.Store) {
	l := claim(t, s, "ok", "node-a", 1)
	m := claim(t, s, "bad", "node-a", 1)
	msg := func(seq uint64) store.Message { return store.Message{Seq: seq, Time: 1, Data: []byte("x")} }
	cases := []struct {
		name string
		msgs []store.Message
	}{
		{"gap", []store.Message{msg(1), msg(3)}},
		{"descending", []store.Message{msg(2), msg(1)}},
		{"duplicate", []store.Message{msg(1), msg(1)}},
		{"empty", []store.Message{}},
		{"nil", nil},
	}
	for _, c := range cases {
		batch := []store.Append{
			{Topic: "ok", Token: l.Token, Messages: messages(1, 2, 10)},
			{Topic: "bad", Token: m.Token, Messages: c.msgs},
		}
		res, err := s.Append(ctxFor(t), batch)
		if err == nil || res != nil {
			t.Fatalf("%s: Append = %v, %v; want a malformed batch refused as a whole", c.name, res, err)
		}
		if errors.Is(err, store.ErrFenced) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: Append error %v wraps ErrFenced or ErrUnavailable; a malformed batch is the caller's error", c.name, err)
		}
		wantHead(t, s, "ok", 0)
		wantHead(t, s, "bad", 0)
		if got := readAll(t, s, "ok", 0); len(got) != 0 {
			t.Fatalf("%s: the refused batch committed %s of ok", c.name, seqRange(got))
		}
	}

	// A first sequence number of 0 cannot follow any head: refused or
	// fenced, never committed.
	res, err := s.Append(ctxFor(t), []store.Append{{Topic: "bad", Token: m.Token, Messages: []store.Message{msg(0), msg(1)}}})
	if err == nil && (len(res) != 1 || res[0] == nil) {
		t.Fatalf("Append from seq 0 = %v, %v; want it refused or fenced", res, err)
	}
	wantHead(t, s, "bad", 0)

	mustAppend(t, s, "ok", l.Token, messages(1, 2, 10))
	equalMessages(t, "ok after the refused batches", readAll(t, s, "ok", 0), messages(1, 2, 10))
}

func testReadPaging(t *testing.T, s store.Store) {
	l := claim(t, s, "t", "node-a", 1)
	all := messages(1, 10, 100)
	mustAppend(t, s, "t", l.Token, all)
	read := func(after uint64, limit, maxBytes int) []store.Message {
		t.Helper()
		got, err := s.Read(ctxFor(t), "t", after, limit, maxBytes)
		if err != nil {
			t.Fatalf("Read(after %d, limit %d, maxBytes %d): %v", after, limit, maxBytes, err)
		}
		return got
	}
	equalMessages(t, "limit 3 from 0", read(0, 3, 1<<20), all[0:3])
	equalMessages(t, "limit 3 from 3", read(3, 3, 1<<20), all[3:6])
	equalMessages(t, "limit 3 from 9", read(9, 3, 1<<20), all[9:10])
	equalMessages(t, "limit 100 from 4", read(4, 100, 1<<20), all[4:])

	// About 250 bytes of 100-byte messages: at least one, at most three.
	got := read(0, 100, 250)
	if len(got) < 1 || len(got) > 3 {
		t.Fatalf("Read with maxBytes 250 returned %d messages of 100 bytes", len(got))
	}
	equalMessages(t, "maxBytes 250", got, all[:len(got)])
	// At least one message, whatever maxBytes says.
	equalMessages(t, "maxBytes 1", read(5, 100, 1), all[5:6])

	big := claim(t, s, "big", "node-a", 1)
	bigs := messages(1, 3, 1<<20)
	mustAppend(t, s, "big", big.Token, bigs)
	got, err := s.Read(ctxFor(t), "big", 0, 100, 1000)
	if err != nil {
		t.Fatal(err)
	}
	equalMessages(t, "a 1 MiB message with maxBytes 1000", got, bigs[:1])
}

func testReadNothing(t *testing.T, s store.Store) {
	got, err := s.Read(ctxFor(t), "unknown", 0, 10, 1<<20)
	if err != nil || len(got) != 0 {
		t.Fatalf("Read of an unknown topic = %d messages, %v; want none, no error", len(got), err)
	}
	l := claim(t, s, "t", "node-a", 1)
	if got := readAll(t, s, "t", 0); len(got) != 0 {
		t.Fatalf("a claimed topic without appends has %s", seqRange(got))
	}
	mustAppend(t, s, "t", l.Token, messages(1, 3, 10))
	for _, after := range []uint64{3, 4, 1000, math.MaxUint64} {
		got, err := s.Read(ctxFor(t), "t", after, 10, 1<<20)
		if err != nil || len(got) != 0 {
			t.Fatalf("Read after %d (head 3) = %d messages, %v; want none, no error", after, len(got), err)
		}
	}
}

func trim(t testing.TB, s store.Store, topic string, throughSeq uint64, before int64) int64 {
	t.Helper()
	n, err := s.Trim(ctxFor(t), topic, throughSeq, before)
	if err != nil {
		t.Fatalf("Trim(%q, %d, %d): %v", topic, throughSeq, before, err)
	}
	return n
}

func testTrimBySeq(t *testing.T, s store.Store) {
	l := claim(t, s, "t", "node-a", 9)
	all := messages(1, 10, 20)
	mustAppend(t, s, "t", l.Token, all)
	if n := trim(t, s, "t", 0, 0); n != 0 {
		t.Fatalf("Trim through 0 with no age bound deleted %d", n)
	}
	if n := trim(t, s, "t", 4, 0); n != 4 {
		t.Fatalf("Trim through 4 deleted %d, want 4", n)
	}
	equalMessages(t, "Read after Trim through 4", readAll(t, s, "t", 0), all[4:])
	if n := trim(t, s, "t", 4, 0); n != 0 {
		t.Fatalf("a second Trim through 4 deleted %d", n)
	}
	if n := trim(t, s, "unknown", 100, 0); n != 0 {
		t.Fatalf("Trim of an unknown topic deleted %d", n)
	}
	wantHead(t, s, "t", 10)
	again := claim(t, s, "t", "node-b", 1)
	if again.Epoch != 9 || again.Seq != 10 {
		t.Fatalf("Claim after Trim = %+v, want epoch 9 and head 10 kept", again)
	}
	// Trimming everything keeps the head: the next append follows it.
	if n := trim(t, s, "t", 10, 0); n != 6 {
		t.Fatalf("Trim through 10 deleted %d, want 6", n)
	}
	wantHead(t, s, "t", 10)
	mustFence(t, s, "t", again.Token, messages(1, 1, 20))
	mustAppend(t, s, "t", again.Token, messages(11, 2, 20))
	equalMessages(t, "Read after trimming all and appending", readAll(t, s, "t", 0), messages(11, 2, 20))
}

func testTrimByTime(t *testing.T, s store.Store) {
	l := claim(t, s, "t", "node-a", 3)
	all := messages(1, 10, 20) // Time 1000*seq
	mustAppend(t, s, "t", l.Token, all)
	o := claim(t, s, "other", "node-a", 3)
	mustAppend(t, s, "other", o.Token, messages(1, 10, 20))

	if n := trim(t, s, "t", 0, 1000); n != 0 {
		t.Fatalf("Trim before 1000 deleted %d, want 0 (strictly before)", n)
	}
	if n := trim(t, s, "t", 0, 5500); n != 5 {
		t.Fatalf("Trim before 5500 deleted %d, want 5", n)
	}
	equalMessages(t, "Read after Trim by time", readAll(t, s, "t", 0), all[5:])
	// Either bound deletes: through 7 or before 3000.
	if n := trim(t, s, "t", 7, 3000); n != 2 {
		t.Fatalf("Trim through 7 or before 3000 deleted %d, want 2", n)
	}
	if n := trim(t, s, "t", 2, 9000+1); n != 2 {
		t.Fatalf("Trim through 2 or before 9001 deleted %d, want 2", n)
	}
	equalMessages(t, "Read after both bounds", readAll(t, s, "t", 0), all[9:])
	wantHead(t, s, "t", 10)
	if h, _ := topicHead(t, s, "t"); h.Epoch != 3 {
		t.Fatalf("Trim changed the epoch to %d", h.Epoch)
	}
	equalMessages(t, "another topic", readAll(t, s, "other", 0), messages(1, 10, 20))
}

func testTopicsPaging(t *testing.T, s store.Store) {
	// Byte order: upper case before lower case, "a/b" before "a0" and
	// "ab", "é" (0xC3...) after "z".
	names := []string{"orders", "b", "a", "Zulu", "a/b", "a0", "ab", "é", "z", "chat:42", "chat:4", "A"}
	want := make([]store.TopicHead, 0, len(names))
	for i, name := range names {
		l := claim(t, s, name, fmt.Sprintf("node-%d", i), uint64(100+i))
		n := i % 3
		if n > 0 {
			mustAppend(t, s, name, l.Token, messages(1, n, 5))
		}
		want = append(want, store.TopicHead{Name: name, Epoch: uint64(100 + i), Seq: uint64(n), Owner: fmt.Sprintf("node-%d", i)})
	}
	slices.SortFunc(want, func(a, b store.TopicHead) int { return bytes.Compare([]byte(a.Name), []byte(b.Name)) })

	for _, limit := range []int{1, 2, 5, len(names), 1000} {
		got := allTopics(t, s, limit)
		if !slices.Equal(got, want) {
			t.Fatalf("Topics in pages of %d = %v, want %v", limit, got, want)
		}
	}
	first, err := s.Topics(ctxFor(t), "", 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first, want[:3]) {
		t.Fatalf("Topics(\"\", 3) = %v, want %v", first, want[:3])
	}
	mid, err := s.Topics(ctxFor(t), "a0", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mid, []store.TopicHead{want[5], want[6]}) || mid[0].Name != "ab" {
		t.Fatalf("Topics(\"a0\", 2) = %v, want ab, b", mid)
	}
	for _, after := range []string{"é", "\xff"} {
		past, err := s.Topics(ctxFor(t), after, 10)
		if err != nil || len(past) != 0 {
			t.Fatalf("Topics past the last name (%q) = %v, %v; want none", after, past, err)
		}
	}
}

func testLargeValues(t *testing.T, s store.Store) {
	const big = math.MaxInt64 // the contract keeps values below 2^63
	l := claim(t, s, "t", "node-ü", big)
	if l.Epoch != big {
		t.Fatalf("Claim epoch %d read back as %d", uint64(big), l.Epoch)
	}
	if h, _ := topicHead(t, s, "t"); h.Epoch != big || h.Owner != "node-ü" {
		t.Fatalf("Topics lists %+v, want epoch %d, owner node-ü", h, uint64(big))
	}
	// An epoch of 2^63 or more is refused or kept exactly, never changed.
	huge := uint64(math.MaxUint64 - 1)
	if h, err := s.Claim(ctxFor(t), "huge", "node-a", huge); err == nil && h.Epoch != huge {
		t.Fatalf("Claim with epoch %d returned epoch %d", huge, h.Epoch)
	}
	// A long topic name round-trips.
	long := string(bytes.Repeat([]byte("n"), 1000))
	ll := claim(t, s, long, "node-a", 1)
	mustAppend(t, s, long, ll.Token, messages(1, 1, 1))
	wantHead(t, s, long, 1)
}

func testConcurrentAppenders(t *testing.T, s store.Store) {
	const (
		writers   = 6
		perWriter = 4
		rounds    = 25
	)
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup

	// Readers and listers run beside the writers and check what they see.
	readers.Add(2)
	go func() {
		defer readers.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			got, err := s.Read(ctx, "w0-t0", 0, 1000, 1<<20)
			if err != nil {
				t.Errorf("concurrent Read: %v", err)
				return
			}
			for j, m := range got {
				if m.Seq != uint64(j+1) || !bytes.Equal(m.Data, payload(m.Seq, 16)) {
					t.Errorf("concurrent Read: message %d is seq %d", j, m.Seq)
					return
				}
			}
			if i > 100000 {
				return
			}
			time.Sleep(time.Millisecond) // pace, so that the writers get the CPU
		}
	}()
	go func() {
		defer readers.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Topics(ctx, "", 100); err != nil {
				t.Errorf("concurrent Topics: %v", err)
				return
			}
			if i > 100000 {
				return
			}
			time.Sleep(time.Millisecond) // pace, so that the writers get the CPU
		}
	}()

	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topics := make([]string, perWriter)
			tokens := make([]uint64, perWriter)
			next := make([]uint64, perWriter)
			for i := range topics {
				topics[i] = fmt.Sprintf("w%d-t%d", w, i)
				l, err := s.Claim(ctx, topics[i], fmt.Sprintf("node-%d", w), 1)
				if err != nil {
					t.Errorf("concurrent Claim: %v", err)
					return
				}
				tokens[i], next[i] = l.Token, 1
			}
			for r := range rounds {
				batch := make([]store.Append, 0, perWriter)
				for i := range topics {
					n := 1 + (r+i+w)%4
					batch = append(batch, store.Append{Topic: topics[i], Token: tokens[i], Messages: messages(next[i], n, 16)})
					next[i] += uint64(n)
				}
				res, err := s.Append(ctx, batch)
				if err != nil {
					t.Errorf("concurrent Append: %v", err)
					return
				}
				for i, e := range res {
					if e != nil {
						t.Errorf("concurrent Append to %s: %v", topics[i], e)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if t.Failed() {
		return
	}
	for w := range writers {
		for i := range perWriter {
			topic := fmt.Sprintf("w%d-t%d", w, i)
			var n uint64
			for r := range rounds {
				n += uint64(1 + (r+i+w)%4)
			}
			wantHead(t, s, topic, n)
			equalMessages(t, topic, readAll(t, s, topic, 0), messages(1, int(n), 16))
		}
	}
}

func testContextCancelled(t *testing.T, s store.Store) {
	l := claim(t, s, "t", "node-a", 1)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		ctx   context.Context
		cause error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		_, err := s.Claim(c.ctx, "t", "node-b", 1)
		wantUnavailable(t, "Claim", err, c.cause)
		res, err := s.Append(c.ctx, []store.Append{{Topic: "t", Token: l.Token, Messages: messages(1, 1, 10)}})
		wantUnavailable(t, "Append", err, c.cause)
		if res != nil {
			t.Errorf("Append with a done context returned results %v", res)
		}
		_, err = s.Read(c.ctx, "t", 0, 10, 1<<20)
		wantUnavailable(t, "Read", err, c.cause)
		_, err = s.Trim(c.ctx, "t", 10, 0)
		wantUnavailable(t, "Trim", err, c.cause)
		_, err = s.Topics(c.ctx, "", 10)
		wantUnavailable(t, "Topics", err, c.cause)
	}
	// Nothing of the failed calls happened, and the store still works.
	wantHead(t, s, "t", 0)
	if h, _ := topicHead(t, s, "t"); h.Owner != "node-a" {
		t.Fatalf("a Claim with a done context changed the owner to %q", h.Owner)
	}
	mustAppend(t, s, "t", l.Token, messages(1, 1, 10))
	equalMessages(t, "after the cancelled calls", readAll(t, s, "t", 0), messages(1, 1, 10))
}

func testClosed(t *testing.T, s store.Store) {
	l := claim(t, s, "t", "node-a", 1)
	mustAppend(t, s, "t", l.Token, messages(1, 1, 10))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := ctxFor(t)
	wantClosed := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", what, err)
		}
	}
	_, err := s.Claim(ctx, "t", "node-a", 1)
	wantClosed("Claim", err)
	res, err := s.Append(ctx, []store.Append{{Topic: "t", Token: l.Token, Messages: messages(2, 1, 10)}})
	wantClosed("Append", err)
	if res != nil {
		t.Errorf("Append after Close returned results %v", res)
	}
	_, err = s.Read(ctx, "t", 0, 10, 1<<20)
	wantClosed("Read", err)
	_, err = s.Trim(ctx, "t", 1, 0)
	wantClosed("Trim", err)
	_, err = s.Topics(ctx, "", 10)
	wantClosed("Topics", err)
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
