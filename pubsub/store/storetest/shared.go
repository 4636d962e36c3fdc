package storetest

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/ringcast/ringcast/pubsub/store"
)

// RunShared runs the tests that need two handles on one database, as two
// processes sharing it have. open must return two stores on the same
// fresh, empty database each time it is called; RunShared calls it once
// per subtest and closes both stores when the subtest ends.
func RunShared(t *testing.T, open func(t *testing.T) (a, b store.Store)) {
	tests := []struct {
		name string
		f    func(t *testing.T, a, b store.Store)
	}{
		{"ClaimsAlternate", testSharedClaimsAlternate},
		{"FencingRace", testSharedFencingRace},
		{"CloseOne", testSharedCloseOne},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t)
			if a == nil || b == nil {
				t.Fatal("open returned a nil store")
			}
			closeAtEnd(t, a)
			closeAtEnd(t, b)
			tc.f(t, a, b)
		})
	}
}

func testSharedClaimsAlternate(t *testing.T, a, b store.Store) {
	la := claim(t, a, "t", "node-a", 11)
	mustAppend(t, a, "t", la.Token, messages(1, 2, 10))
	equalMessages(t, "b reads a's appends", readAll(t, b, "t", 0), messages(1, 2, 10))
	wantHead(t, b, "t", 2)

	lb := claim(t, b, "t", "node-b", 12)
	if lb.Epoch != 11 || lb.Seq != 2 || lb.Token <= la.Token {
		t.Fatalf("b's claim = %+v after a's %+v, want epoch 11, seq 2, a greater token", lb, la)
	}
	mustFence(t, a, "t", la.Token, messages(3, 1, 10))
	mustAppend(t, b, "t", lb.Token, messages(3, 2, 10))

	la2 := claim(t, a, "t", "node-a", 13)
	if la2.Seq != 4 || la2.Token <= lb.Token {
		t.Fatalf("a's second claim = %+v after b's %+v, want seq 4 and a greater token", la2, lb)
	}
	mustFence(t, b, "t", lb.Token, messages(5, 1, 10))
	mustAppend(t, a, "t", la2.Token, messages(5, 1, 10))
	for name, s := range map[string]store.Store{"a": a, "b": b} {
		equalMessages(t, name+" reads the log", readAll(t, s, "t", 0), messages(1, 5, 10))
		if h, _ := topicHead(t, s, "t"); h.Owner != "node-a" || h.Seq != 5 {
			t.Fatalf("%s lists %+v, want owner node-a, seq 5", name, h)
		}
	}
	if n := trim(t, b, "t", 3, 0); n != 3 {
		t.Fatalf("b trimmed %d, want 3", n)
	}
	equalMessages(t, "a reads after b's trim", readAll(t, a, "t", 0), messages(4, 2, 10))
}

// raceWriter is one side of testSharedFencingRace.
type raceWriter struct {
	id     int
	s      store.Store
	tokens []uint64        // every token its claims returned
	acked  []store.Message // every message of an append that committed
	fenced int
}

// run claims the topic claims times and after each claim appends until it
// is fenced or has made perClaim appends.
func (w *raceWriter) run(t *testing.T, start <-chan struct{}, claims, perClaim int) {
	ctx := ctxFor(t)
	<-start
	for c := range claims {
		l, err := w.s.Claim(ctx, "race", fmt.Sprintf("node-%d", w.id), 1)
		if err != nil {
			t.Errorf("writer %d: Claim: %v", w.id, err)
			return
		}
		next := l.Seq + 1
		if n := len(w.tokens); n > 0 {
			// The writer's own claim superseded its previous token.
			stale := store.Message{Seq: next, Time: int64(next), Data: raceData(w.id, w.tokens[n-1], next)}
			res, err := w.s.Append(ctx, []store.Append{{Topic: "race", Token: w.tokens[n-1], Messages: []store.Message{stale}}})
			if err != nil || len(res) != 1 || !errors.Is(res[0], store.ErrFenced) {
				t.Errorf("writer %d: Append with its superseded token %d = %v, %v; want fenced", w.id, w.tokens[n-1], res, err)
				return
			}
		}
		w.tokens = append(w.tokens, l.Token)
		for k := range perClaim {
			runtime.Gosched() // let the other writer claim in between
			n := 1 + (c+k+w.id)%3
			msgs := make([]store.Message, n)
			for i := range msgs {
				seq := next + uint64(i)
				msgs[i] = store.Message{Seq: seq, Time: int64(seq), Data: raceData(w.id, l.Token, seq)}
			}
			res, err := w.s.Append(ctx, []store.Append{{Topic: "race", Token: l.Token, Messages: msgs}})
			switch {
			case err != nil:
				t.Errorf("writer %d: Append: %v", w.id, err)
				return
			case len(res) != 1:
				t.Errorf("writer %d: Append returned %d results for a batch of 1", w.id, len(res))
				return
			case res[0] == nil:
				w.acked = append(w.acked, msgs...)
				next += uint64(n)
				continue
			case errors.Is(res[0], store.ErrFenced):
				w.fenced++
			default:
				t.Errorf("writer %d: Append result: %v", w.id, res[0])
				return
			}
			break
		}
	}
}

func raceData(writer int, token, seq uint64) []byte {
	return fmt.Appendf(nil, "writer=%d token=%d seq=%d", writer, token, seq)
}

func testSharedFencingRace(t *testing.T, a, b store.Store) {
	const claims, perClaim = 30, 4
	ws := []*raceWriter{{id: 0, s: a}, {id: 1, s: b}}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(t, start, claims, perClaim)
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}

	// Tokens are unique across the writers: each claim got its own.
	owner := map[uint64]int{}
	for _, w := range ws {
		for _, tok := range w.tokens {
			if prev, dup := owner[tok]; dup {
				t.Fatalf("token %d handed to writer %d and writer %d", tok, prev, w.id)
			}
			owner[tok] = w.id
		}
	}

	acked := map[uint64][]byte{}
	for _, w := range ws {
		for _, m := range w.acked {
			if _, dup := acked[m.Seq]; dup {
				t.Fatalf("seq %d acknowledged to both writers", m.Seq)
			}
			acked[m.Seq] = m.Data
		}
	}
	log := readAll(t, a, "race", 0)
	if len(log) != len(acked) {
		t.Fatalf("the log holds %d messages, the writers were acknowledged %d", len(log), len(acked))
	}
	var lastToken uint64
	for i, m := range log {
		if m.Seq != uint64(i+1) {
			t.Fatalf("log position %d holds seq %d: the committed sequence has a gap", i, m.Seq)
		}
		data, ok := acked[m.Seq]
		if !ok || string(data) != string(m.Data) {
			t.Fatalf("seq %d holds %q, acknowledged %q", m.Seq, m.Data, data)
		}
		var writer int
		var token, seq uint64
		if _, err := fmt.Sscanf(string(m.Data), "writer=%d token=%d seq=%d", &writer, &token, &seq); err != nil {
			t.Fatalf("seq %d holds %q: %v", m.Seq, m.Data, err)
		}
		if owner[token] != writer {
			t.Fatalf("seq %d was appended by writer %d with token %d, which writer %d claimed", m.Seq, writer, token, owner[token])
		}
		if token < lastToken {
			t.Fatalf("seq %d was appended with token %d after seq %d with the newer token %d", m.Seq, token, m.Seq-1, lastToken)
		}
		lastToken = token
	}
	wantHead(t, b, "race", uint64(len(log)))
	t.Logf("%d messages committed; writer 0: %d claims, %d fenced appends; writer 1: %d claims, %d fenced appends",
		len(log), len(ws[0].tokens), ws[0].fenced, len(ws[1].tokens), ws[1].fenced)
}

func testSharedCloseOne(t *testing.T, a, b store.Store) {
	l := claim(t, a, "t", "node-a", 1)
	mustAppend(t, a, "t", l.Token, messages(1, 1, 10))
	if err := a.Close(); err != nil {
		t.Fatalf("Close a: %v", err)
	}
	if _, err := a.Read(ctxFor(t), "t", 0, 10, 1<<20); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Read on closed a = %v, want ErrClosed", err)
	}
	lb := claim(t, b, "t", "node-b", 1)
	mustAppend(t, b, "t", lb.Token, messages(2, 1, 10))
	equalMessages(t, "b after a closed", readAll(t, b, "t", 0), messages(1, 2, 10))
}
