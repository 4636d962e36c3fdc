package storetest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/store"
)

// callTimeout bounds every call the suite makes, so that a store that hangs
// fails the test instead of stalling it.
const callTimeout = 30 * time.Second

// ctxFor returns a context for one call, cancelled when the test ends or
// after callTimeout.
func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// closeAtEnd closes s when the test ends and reports an error of Close.
func closeAtEnd(t testing.TB, s store.Store) {
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

func claim(t testing.TB, s store.Store, topic, owner string, epoch uint64) store.Lease {
	t.Helper()
	l, err := s.Claim(ctxFor(t), topic, owner, epoch)
	if err != nil {
		t.Fatalf("Claim(%q, %q, %d): %v", topic, owner, epoch, err)
	}
	return l
}

// appendOne appends msgs to topic in a batch of its own and returns that
// element's result; a failure of the call as a whole is fatal.
func appendOne(t testing.TB, s store.Store, topic string, token uint64, msgs []store.Message) error {
	t.Helper()
	res, err := s.Append(ctxFor(t), []store.Append{{Topic: topic, Token: token, Messages: msgs}})
	if err != nil {
		t.Fatalf("Append(%q, token %d, %s): %v", topic, token, seqRange(msgs), err)
	}
	if len(res) != 1 {
		t.Fatalf("Append(%q) returned %d results for a batch of 1", topic, len(res))
	}
	return res[0]
}

// mustAppend appends msgs to topic and fails the test unless they commit.
func mustAppend(t testing.TB, s store.Store, topic string, token uint64, msgs []store.Message) {
	t.Helper()
	if err := appendOne(t, s, topic, token, msgs); err != nil {
		t.Fatalf("Append(%q, token %d, %s): %v", topic, token, seqRange(msgs), err)
	}
}

// mustFence appends msgs to topic and fails the test unless the result
// wraps store.ErrFenced (and not store.ErrUnavailable).
func mustFence(t testing.TB, s store.Store, topic string, token uint64, msgs []store.Message) {
	t.Helper()
	err := appendOne(t, s, topic, token, msgs)
	if !errors.Is(err, store.ErrFenced) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Append(%q, token %d, %s) = %v, want an error wrapping ErrFenced", topic, token, seqRange(msgs), err)
	}
}

func seqRange(msgs []store.Message) string {
	if len(msgs) == 0 {
		return "no messages"
	}
	return "seq " + strconv.FormatUint(msgs[0].Seq, 10) + ".." + strconv.FormatUint(msgs[len(msgs)-1].Seq, 10)
}

// payload returns n deterministic pseudo-random bytes for seq.
func payload(seq uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seq, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// messages returns n messages from seq first on, each with size bytes of
// data and Time 1000*seq.
func messages(first uint64, n, size int) []store.Message {
	out := make([]store.Message, n)
	for i := range out {
		seq := first + uint64(i)
		out[i] = store.Message{Seq: seq, Time: int64(seq) * 1000, Data: payload(seq, size)}
	}
	return out
}

// readAll reads every message of topic after after, page by page.
func readAll(t testing.TB, s store.Store, topic string, after uint64) []store.Message {
	t.Helper()
	var out []store.Message
	for range 100000 {
		page, err := s.Read(ctxFor(t), topic, after, 64, 4<<20)
		if err != nil {
			t.Fatalf("Read(%q, after %d): %v", topic, after, err)
		}
		if len(page) == 0 {
			return out
		}
		for _, m := range page {
			if m.Seq <= after {
				t.Fatalf("Read(%q, after %d) returned seq %d, not after it", topic, after, m.Seq)
			}
			after = m.Seq
		}
		out = append(out, page...)
	}
	t.Fatalf("Read(%q) did not reach the end after 100000 pages", topic)
	return nil
}

// topicHead returns topic as Topics lists it; ok is false when Topics
// does not list it.
func topicHead(t testing.TB, s store.Store, topic string) (store.TopicHead, bool) {
	t.Helper()
	for _, h := range allTopics(t, s, 100) {
		if h.Name == topic {
			return h, true
		}
	}
	return store.TopicHead{}, false
}

// allTopics lists every topic, limit per page.
func allTopics(t testing.TB, s store.Store, limit int) []store.TopicHead {
	t.Helper()
	var out []store.TopicHead
	after := ""
	for range 100000 {
		page, err := s.Topics(ctxFor(t), after, limit)
		if err != nil {
			t.Fatalf("Topics(%q, %d): %v", after, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("Topics(%q, %d) returned %d topics", after, limit, len(page))
		}
		if len(page) == 0 {
			return out
		}
		for _, h := range page {
			if h.Name <= after {
				t.Fatalf("Topics(%q) returned %q, not after it in byte order", after, h.Name)
			}
			after = h.Name
		}
		out = append(out, page...)
	}
	t.Fatalf("Topics did not reach the end after 100000 pages")
	return nil
}

// wantHead fails the test unless Topics lists topic with head seq.
func wantHead(t testing.TB, s store.Store, topic string, seq uint64) {
	t.Helper()
	h, ok := topicHead(t, s, topic)
	if !ok {
		t.Fatalf("Topics does not list %q", topic)
	}
	if h.Seq != seq {
		t.Fatalf("head of %q = %d, want %d", topic, h.Seq, seq)
	}
}

// equalMessages fails the test unless got and want hold the same messages
// (an empty and a nil Data are equal).
func equalMessages(t testing.TB, what string, got, want []store.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages (%s), want %d (%s)", what, len(got), seqRange(got), len(want), seqRange(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.Time != w.Time || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("%s: message %d = {Seq %d, Time %d, %d bytes}, want {Seq %d, Time %d, %d bytes}%s",
				what, i, g.Seq, g.Time, len(g.Data), w.Seq, w.Time, len(w.Data), dataDiff(g.Data, w.Data))
		}
	}
}

func dataDiff(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	return " (data differs)"
}

// wantUnavailable fails the test unless err wraps store.ErrUnavailable and
// cause.
func wantUnavailable(t testing.TB, what string, err, cause error) {
	t.Helper()
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, cause) {
		t.Errorf("%s = %v, want an error wrapping ErrUnavailable and %v", what, err, cause)
	}
}
