package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/internal/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newDB returns the URL of a fresh database on the shared server.
func newDB(t testing.TB) string {
	t.Helper()
	return pgtest.Shared(t).NewDatabase(t)
}

// openURL opens a Store on url, closed at the end of the test.
func openURL(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Open(testCtx(t), url, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openStore opens a Store on a fresh database.
func openStore(t testing.TB) (*Store, string) {
	t.Helper()
	u := newDB(t)
	return openURL(t, u), u
}

// sql runs statements on url outside any Store.
func sql(t testing.TB, url string, stmts ...string) {
	t.Helper()
	ctx := testCtx(t)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, stmt := range stmts {
		if _, err := c.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// queryString returns the first column of the first row of a query.
func queryString(t testing.TB, url, query string) string {
	t.Helper()
	ctx := testCtx(t)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, query).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

func msgs(first uint64, n int, size int) []store.Message {
	out := make([]store.Message, n)
	for i := range out {
		seq := first + uint64(i)
		out[i] = store.Message{Seq: seq, Time: int64(1000 + seq), Data: bytes.Repeat([]byte{byte(seq)}, size)}
	}
	return out
}

func claim(t testing.TB, s *Store, topic string) store.Lease {
	t.Helper()
	l, err := s.Claim(testCtx(t), topic, "node-a", 7)
	if err != nil {
		t.Fatalf("Claim(%q): %v", topic, err)
	}
	return l
}

func mustAppend(t testing.TB, s *Store, batch ...store.Append) []error {
	t.Helper()
	res, err := s.Append(testCtx(t), batch)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(res) != len(batch) {
		t.Fatalf("Append returned %d results for %d elements", len(res), len(batch))
	}
	return res
}

func read(t testing.TB, s *Store, topic string, after uint64) []store.Message {
	t.Helper()
	m, err := s.Read(testCtx(t), topic, after, 1000, 1<<30)
	if err != nil {
		t.Fatalf("Read(%q): %v", topic, err)
	}
	return m
}

func seqs(m []store.Message) []uint64 {
	out := make([]uint64, len(m))
	for i := range m {
		out[i] = m[i].Seq
	}
	return out
}

func TestOpenCreatesSchema(t *testing.T) {
	t.Parallel()
	s, u := openStore(t)
	if got := queryString(t, u, `SELECT value FROM ringcast_meta WHERE key = 'application'`); got != "ringcast" {
		t.Fatalf("application = %q", got)
	}
	if got := queryString(t, u, `SELECT value FROM ringcast_meta WHERE key = 'schema_version'`); got != fmt.Sprint(SchemaVersion()) {
		t.Fatalf("schema_version = %q, want %d", got, SchemaVersion())
	}
	claim(t, s, "a")
	// Reopening finds the schema current and the data in place.
	s2 := openURL(t, u)
	heads, err := s2.Topics(testCtx(t), "", 10)
	if err != nil || len(heads) != 1 || heads[0].Name != "a" {
		t.Fatalf("Topics after reopen = %v, %v", heads, err)
	}
}

func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	u := newDB(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*Store, n)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(testCtx(t), u, Options{MaxConns: 2}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		stores[i].Close()
	}
	if got := queryString(t, u, `SELECT count(*)::text FROM ringcast_meta`); got != "2" {
		t.Fatalf("ringcast_meta has %s rows, want 2", got)
	}
}

func TestOpenRefusesOthers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup []string
		want  string
	}{
		{"other application", []string{
			`CREATE TABLE ringcast_meta (key TEXT PRIMARY KEY, value TEXT)`,
			`INSERT INTO ringcast_meta VALUES ('application', 'other'), ('schema_version', '1')`,
		}, `"other"`},
		{"newer schema", []string{
			`CREATE TABLE ringcast_meta (key TEXT PRIMARY KEY, value TEXT)`,
			`INSERT INTO ringcast_meta VALUES ('application', 'ringcast'), ('schema_version', '99')`,
		}, fmt.Sprintf("version 99, newer than version %d", SchemaVersion())},
		{"no schema version", []string{
			`CREATE TABLE ringcast_meta (key TEXT PRIMARY KEY, value TEXT)`,
			`INSERT INTO ringcast_meta VALUES ('application', 'ringcast')`,
		}, "schema_version"},
		{"foreign meta table", []string{
			`CREATE TABLE ringcast_meta (id INT PRIMARY KEY, payload JSONB)`,
		}, "not ringcast's"},
		{"tables without meta", []string{
			`CREATE TABLE ringcast_topics (topic TEXT PRIMARY KEY)`,
		}, "no ringcast_meta"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := newDB(t)
			sql(t, u, c.setup...)
			before := queryString(t, u, `SELECT string_agg(table_name || ':' || column_name || ':' || data_type, ',' ORDER BY table_name, column_name) FROM information_schema.columns WHERE table_schema = 'public'`)
			s, err := Open(testCtx(t), u, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, store.ErrNotRingcast) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v; want ErrNotRingcast mentioning %q", err, c.want)
			}
			after := queryString(t, u, `SELECT string_agg(table_name || ':' || column_name || ':' || data_type, ',' ORDER BY table_name, column_name) FROM information_schema.columns WHERE table_schema = 'public'`)
			if before != after {
				t.Fatalf("Open modified the database: %s -> %s", before, after)
			}
		})
	}
}

func TestOpenBesideOtherTables(t *testing.T) {
	t.Parallel()
	u := newDB(t)
	sql(t, u, `CREATE TABLE accounts (id INT PRIMARY KEY)`, `INSERT INTO accounts VALUES (1)`)
	s := openURL(t, u)
	claim(t, s, "x")
	if got := queryString(t, u, `SELECT count(*)::text FROM accounts`); got != "1" {
		t.Fatalf("accounts has %s rows", got)
	}
}

func TestOpenInSchemaOfSearchPath(t *testing.T) {
	t.Parallel()
	u := newDB(t)
	sql(t, u, `CREATE SCHEMA rc1`, `CREATE SCHEMA rc2`)
	a := openURL(t, u+"&search_path=rc1")
	b := openURL(t, u+"&search_path=rc2")
	claim(t, a, "only-in-a")
	heads, err := b.Topics(testCtx(t), "", 10)
	if err != nil || len(heads) != 0 {
		t.Fatalf("schema rc2 sees %v, %v", heads, err)
	}
	if got := queryString(t, u, `SELECT count(*)::text FROM rc1.ringcast_topics`); got != "1" {
		t.Fatalf("rc1.ringcast_topics has %s rows", got)
	}
	if got := queryString(t, u, `SELECT count(*)::text FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE 'ringcast%'`); got != "0" {
		t.Fatalf("%s ringcast tables in public", got)
	}

	// A search path naming no existing schema is refused plainly.
	if s, err := Open(testCtx(t), u+"&search_path=nosuchschema", Options{}); err == nil {
		s.Close()
		t.Fatal("Open with a missing schema succeeded")
	} else if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNotRingcast) {
		t.Fatalf("Open with a missing schema: %v", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Port 1 of loopback: refused.
	_, err := Open(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2", Options{})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open of an unreachable server: %v; want ErrUnavailable", err)
	}
	if _, err := Open(ctx, "postgres://%zz", Options{}); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open of a malformed URL: %v; want a plain error", err)
	}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	s, u := openStore(t)
	ctx := testCtx(t)
	l, err := s.Claim(ctx, "t", "node-a", 42)
	if err != nil || l != (store.Lease{Epoch: 42, Seq: 0, Token: 1}) {
		t.Fatalf("first Claim = %+v, %v", l, err)
	}
	mustAppend(t, s, store.Append{Topic: "t", Token: 1, Messages: msgs(1, 3, 10)})
	l, err = s.Claim(ctx, "t", "node-b", 99)
	if err != nil || l != (store.Lease{Epoch: 42, Seq: 3, Token: 2}) {
		t.Fatalf("second Claim = %+v, %v; want epoch kept, head 3, token 2", l, err)
	}
	if got := queryString(t, u, `SELECT owner FROM ringcast_topics WHERE topic = 't'`); got != "node-b" {
		t.Fatalf("owner = %q", got)
	}
	at, err := strconv.ParseInt(queryString(t, u, `SELECT claimed_at::text FROM ringcast_topics WHERE topic = 't'`), 10, 64)
	if d := time.Since(time.Unix(0, at)); err != nil || d < -time.Minute || d > time.Minute {
		t.Fatalf("claimed_at = %d (%v ago), %v; want unix nanoseconds of about now", at, d, err)
	}
	if _, err := s.Claim(ctx, "t", "n", math.MaxUint64); err == nil {
		t.Fatal("Claim with an epoch beyond 2^63 succeeded")
	}
	if _, err := s.Claim(ctx, "", "n", 1); err == nil {
		t.Fatal("Claim of an empty topic succeeded")
	}
	if _, err := s.Claim(ctx, "bad\x00", "n", 1); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Claim of a topic with NUL: %v; want a plain error", err)
	}
}

func TestClaimConcurrently(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	const n = 16
	tokens := make([]uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			l, err := s.Claim(testCtx(t), "contended", fmt.Sprint("node-", i), 1)
			if err != nil {
				t.Error(err)
			}
			tokens[i] = l.Token
		})
	}
	wg.Wait()
	slices.Sort(tokens)
	for i, tok := range tokens {
		if tok != uint64(i+1) {
			t.Fatalf("tokens = %v; want 1..%d, each once", tokens, n)
		}
	}
}

func TestAppendAndFencing(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	a, b := claim(t, s, "a"), claim(t, s, "b")
	res := mustAppend(t, s,
		store.Append{Topic: "a", Token: a.Token, Messages: msgs(1, 2, 5)},
		store.Append{Topic: "b", Token: b.Token, Messages: msgs(1, 1, 5)},
	)
	if res[0] != nil || res[1] != nil {
		t.Fatalf("results = %v", res)
	}

	// b is claimed again: the old token is fenced, a commits beside it.
	b2 := claim(t, s, "b")
	res = mustAppend(t, s,
		store.Append{Topic: "b", Token: b.Token, Messages: msgs(2, 2, 5)},
		store.Append{Topic: "a", Token: a.Token, Messages: msgs(3, 1, 5)},
	)
	if !errors.Is(res[0], store.ErrFenced) || !strings.Contains(res[0].Error(), "stale") {
		t.Fatalf("stale token: %v; want ErrFenced saying the token is stale", res[0])
	}
	if res[1] != nil {
		t.Fatalf("a beside a fenced element: %v", res[1])
	}
	if got := seqs(read(t, s, "b", 0)); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("b holds %v after a fenced append", got)
	}
	if got := seqs(read(t, s, "a", 0)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("a holds %v", got)
	}

	// A gap or an overlap with the head is fenced too.
	for _, first := range []uint64{1, 3} {
		res = mustAppend(t, s, store.Append{Topic: "b", Token: b2.Token, Messages: msgs(first, 1, 5)})
		if !errors.Is(res[0], store.ErrFenced) || !strings.Contains(res[0].Error(), "head 1") {
			t.Fatalf("first seq %d on head 1: %v; want ErrFenced naming the head", first, res[0])
		}
	}
	// An unknown topic is fenced.
	res = mustAppend(t, s, store.Append{Topic: "never", Token: 1, Messages: msgs(1, 1, 5)})
	if !errors.Is(res[0], store.ErrFenced) || !strings.Contains(res[0].Error(), "never claimed") {
		t.Fatalf("unclaimed topic: %v", res[0])
	}
	// Two elements of one topic in one batch chain.
	res = mustAppend(t, s,
		store.Append{Topic: "b", Token: b2.Token, Messages: msgs(2, 2, 5)},
		store.Append{Topic: "a", Token: a.Token, Messages: msgs(4, 1, 5)},
		store.Append{Topic: "b", Token: b2.Token, Messages: msgs(4, 1, 5)},
	)
	if res[0] != nil || res[1] != nil || res[2] != nil {
		t.Fatalf("chained elements: %v", res)
	}
	if got := seqs(read(t, s, "b", 0)); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("b holds %v", got)
	}
	l, err := s.Claim(testCtx(t), "b", "node-c", 0)
	if err != nil || l.Seq != 4 {
		t.Fatalf("head after appends = %+v, %v", l, err)
	}
}

func TestAppendKeepsMessages(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	l := claim(t, s, "t")
	in := []store.Message{
		{Seq: 1, Time: -5, Data: nil},
		{Seq: 2, Time: math.MaxInt64, Data: []byte{0, 1, 2, 255}},
		{Seq: 3, Time: 0, Data: bytes.Repeat([]byte("x"), 1<<20)},
	}
	mustAppend(t, s, store.Append{Topic: "t", Token: l.Token, Messages: in})
	out := read(t, s, "t", 0)
	if len(out) != len(in) {
		t.Fatalf("read %d messages", len(out))
	}
	for i := range in {
		if out[i].Seq != in[i].Seq || out[i].Time != in[i].Time || !bytes.Equal(out[i].Data, in[i].Data) {
			t.Fatalf("message %d: got seq %d time %d %d bytes; want seq %d time %d %d bytes",
				i, out[i].Seq, out[i].Time, len(out[i].Data), in[i].Seq, in[i].Time, len(in[i].Data))
		}
	}
}

func TestAppendMalformed(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	l := claim(t, s, "t")
	good := store.Append{Topic: "t", Token: l.Token, Messages: msgs(1, 1, 1)}
	for name, bad := range map[string]store.Append{
		"no messages":     {Topic: "t", Token: l.Token},
		"gap":             {Topic: "t", Token: l.Token, Messages: []store.Message{{Seq: 2}, {Seq: 4}}},
		"descending":      {Topic: "t", Token: l.Token, Messages: []store.Message{{Seq: 3}, {Seq: 2}}},
		"seq 0":           {Topic: "t", Token: l.Token, Messages: []store.Message{{Seq: 0}}},
		"seq beyond 2^63": {Topic: "t", Token: l.Token, Messages: []store.Message{{Seq: math.MaxInt64 + 1}}},
		"empty topic":     {Topic: "", Token: l.Token, Messages: msgs(1, 1, 1)},
		"NUL in topic":    {Topic: "t\x00", Token: l.Token, Messages: msgs(1, 1, 1)},
		"huge token":      {Topic: "t", Token: math.MaxUint64, Messages: msgs(1, 1, 1)},
	} {
		res, err := s.Append(testCtx(t), []store.Append{good, bad})
		if err == nil || res != nil || errors.Is(err, store.ErrFenced) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: Append = %v, %v; want a plain error and no results", name, res, err)
		}
	}
	if got := read(t, s, "t", 0); len(got) != 0 {
		t.Fatalf("a malformed batch committed %v", seqs(got))
	}
	res, err := s.Append(testCtx(t), nil)
	if err != nil || len(res) != 0 {
		t.Fatalf("empty batch: %v, %v", res, err)
	}
}

// TestAppendFailsAsWhole checks that a batch failing in the database
// commits none of its elements.
func TestAppendFailsAsWhole(t *testing.T) {
	t.Parallel()
	s, u := openStore(t)
	a, b := claim(t, s, "a"), claim(t, s, "b")
	// A row beyond b's head, as only a damaged store would hold: the
	// insert of b's element violates the primary key.
	sql(t, u, `INSERT INTO ringcast_messages VALUES ('b', 1, 0, '\x00')`)
	res, err := s.Append(testCtx(t), []store.Append{
		{Topic: "a", Token: a.Token, Messages: msgs(1, 1, 1)},
		{Topic: "b", Token: b.Token, Messages: msgs(1, 1, 1)},
	})
	if err == nil || res != nil {
		t.Fatalf("Append = %v, %v; want an error", res, err)
	}
	if got := read(t, s, "a", 0); len(got) != 0 {
		t.Fatalf("a committed %v in a failed batch", seqs(got))
	}
	if l := claim(t, s, "a"); l.Seq != 0 {
		t.Fatalf("a's head moved to %d in a failed batch", l.Seq)
	}
}

// TestAppendRace has two owners of one topic append against each other:
// every sequence number commits exactly once, from one of them.
func TestAppendRace(t *testing.T) {
	t.Parallel()
	_, u := openStore(t)
	s1, s2 := openURL(t, u), openURL(t, u)
	const rounds = 50
	var wg sync.WaitGroup
	for i, s := range []*Store{s1, s2} {
		wg.Go(func() {
			ctx := testCtx(t)
			for range rounds {
				l, err := s.Claim(ctx, "race", fmt.Sprint("node-", i), 1)
				if err != nil {
					t.Error(err)
					return
				}
				res, err := s.Append(ctx, []store.Append{{Topic: "race", Token: l.Token, Messages: []store.Message{
					{Seq: l.Seq + 1, Data: []byte{byte(i)}},
				}}})
				if err != nil {
					t.Error(err)
					return
				}
				if res[0] != nil && !errors.Is(res[0], store.ErrFenced) {
					t.Error(res[0])
					return
				}
			}
		})
	}
	wg.Wait()
	got := read(t, s1, "race", 0)
	for i, m := range got {
		if m.Seq != uint64(i+1) {
			t.Fatalf("sequence numbers %v: not 1..n", seqs(got))
		}
	}
	l := claim(t, s1, "race")
	if l.Seq != uint64(len(got)) || len(got) == 0 {
		t.Fatalf("head %d, %d messages", l.Seq, len(got))
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	l := claim(t, s, "t")
	mustAppend(t, s, store.Append{Topic: "t", Token: l.Token, Messages: msgs(1, 10, 100)})
	ctx := testCtx(t)
	for _, c := range []struct {
		after           uint64
		limit, maxBytes int
		want            []uint64
	}{
		{0, 3, 1 << 20, []uint64{1, 2, 3}},
		{3, 100, 1 << 20, []uint64{4, 5, 6, 7, 8, 9, 10}},
		{0, 100, 250, []uint64{1, 2}},
		{0, 100, 300, []uint64{1, 2, 3}},
		{5, 100, 1, []uint64{6}}, // at least one
		{5, 100, 0, []uint64{6}},
		{10, 100, 1 << 20, nil},
		{math.MaxUint64, 100, 1 << 20, nil},
		{0, 0, 1 << 20, nil},
	} {
		got, err := s.Read(ctx, "t", c.after, c.limit, c.maxBytes)
		if err != nil || !slices.Equal(seqs(got), c.want) {
			t.Fatalf("Read(after %d, limit %d, maxBytes %d) = %v, %v; want %v", c.after, c.limit, c.maxBytes, seqs(got), err, c.want)
		}
	}
	if got, err := s.Read(ctx, "unknown", 0, 10, 1000); err != nil || len(got) != 0 {
		t.Fatalf("unknown topic: %v, %v", got, err)
	}
}

func TestTrim(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	l := claim(t, s, "t")
	mustAppend(t, s, store.Append{Topic: "t", Token: l.Token, Messages: msgs(1, 10, 1)}) // Time = 1000+seq
	ctx := testCtx(t)
	n, err := s.Trim(ctx, "t", 3, 0)
	if err != nil || n != 3 {
		t.Fatalf("Trim through 3 = %d, %v", n, err)
	}
	n, err = s.Trim(ctx, "t", 0, 1006) // Time < 1006: seqs 4, 5
	if err != nil || n != 2 {
		t.Fatalf("Trim before 1006 = %d, %v", n, err)
	}
	if got := seqs(read(t, s, "t", 0)); !slices.Equal(got, []uint64{6, 7, 8, 9, 10}) {
		t.Fatalf("after trims: %v", got)
	}
	n, err = s.Trim(ctx, "t", math.MaxUint64, 0)
	if err != nil || n != 5 {
		t.Fatalf("Trim of everything = %d, %v", n, err)
	}
	// The head stays: the next append follows it.
	l2 := claim(t, s, "t")
	if l2.Seq != 10 || l2.Epoch != l.Epoch {
		t.Fatalf("lease after trim = %+v", l2)
	}
	if res := mustAppend(t, s, store.Append{Topic: "t", Token: l2.Token, Messages: msgs(11, 1, 1)}); res[0] != nil {
		t.Fatal(res[0])
	}
}

func TestTopics(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	names := []string{"b", "a", "a:b", "B", "é", "z", "ab", "a b"}
	for _, n := range names {
		claim(t, s, n)
	}
	want := slices.Clone(names)
	slices.Sort(want) // byte order
	ctx := testCtx(t)
	var got []string
	after := ""
	for range len(names) + 1 {
		page, err := s.Topics(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, h := range page {
			got = append(got, h.Name)
			if h.Epoch != 7 || h.Owner != "node-a" {
				t.Fatalf("head %+v", h)
			}
		}
		after = page[len(page)-1].Name
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Topics pages = %q, want %q", got, want)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	s, err := Open(testCtx(t), newDB(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := testCtx(t)
	_, err1 := s.Claim(ctx, "t", "n", 1)
	_, err2 := s.Append(ctx, []store.Append{{Topic: "t", Token: 1, Messages: msgs(1, 1, 1)}})
	_, err3 := s.Read(ctx, "t", 0, 1, 1)
	_, err4 := s.Trim(ctx, "t", 1, 0)
	_, err5 := s.Topics(ctx, "", 1)
	for i, err := range []error{err1, err2, err3, err4, err5} {
		if !errors.Is(err, store.ErrClosed) {
			t.Fatalf("call %d after Close: %v", i, err)
		}
	}
}

func TestContextEnded(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	claim(t, s, "t")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Claim(ctx, "t", "n", 1)
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Claim with a cancelled ctx: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err = s.Read(ctx, "t", 0, 1, 1)
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with an expired ctx: %v", err)
	}

	// A statement still running when ctx ends: pg_sleep holds the lock of
	// the topic's row, and the append waiting for it gives up in time.
	u := s.pool.Config().ConnConfig.ConnString()
	locker, err := pgx.Connect(testCtx(t), u)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(context.Background())
	tx, err := locker.Begin(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(testCtx(t), `UPDATE ringcast_topics SET owner = owner WHERE topic = 't'`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Append(ctx, []store.Append{{Topic: "t", Token: 1, Messages: msgs(1, 1, 1)}})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append blocked past its deadline: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Append returned %v after a 200ms deadline", d)
	}
	// The same without a deadline: the cancellation reaches the server.
	ctx, cancel = context.WithCancel(context.Background())
	stopTimer := time.AfterFunc(200*time.Millisecond, cancel)
	defer stopTimer.Stop()
	_, err = s.Append(ctx, []store.Append{{Topic: "t", Token: 1, Messages: msgs(1, 1, 1)}})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Append cancelled while blocked: %v", err)
	}
	if err := tx.Rollback(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// Neither blocked append committed once the lock was gone, and the
	// store works on.
	l := claim(t, s, "t")
	if res := mustAppend(t, s, store.Append{Topic: "t", Token: l.Token, Messages: msgs(1, 1, 1)}); res[0] != nil {
		t.Fatal(res[0])
	}
}

// TestOutage stops the database under a Store: calls fail with
// ErrUnavailable within their deadline, and succeed again once the
// database is back, without reopening the Store.
func TestOutage(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartWith(t, pgtest.Options{NoFsync: true}) // a server of its own to stop
	u := srv.NewDatabase(t)
	s := openURL(t, u)
	l := claim(t, s, "t")
	mustAppend(t, s, store.Append{Topic: "t", Token: l.Token, Messages: msgs(1, 1, 1)})

	for _, down := range []struct {
		name string
		stop func() error
	}{{"stop", srv.Stop}, {"kill", srv.Kill}} {
		if err := down.stop(); err != nil {
			t.Fatal(err)
		}
		for i, call := range []func(ctx context.Context) error{
			func(ctx context.Context) error { _, err := s.Claim(ctx, "t", "n", 1); return err },
			func(ctx context.Context) error {
				_, err := s.Append(ctx, []store.Append{{Topic: "t", Token: l.Token, Messages: msgs(2, 1, 1)}})
				return err
			},
			func(ctx context.Context) error { _, err := s.Read(ctx, "t", 0, 10, 100); return err },
			func(ctx context.Context) error { _, err := s.Trim(ctx, "t", 0, 0); return err },
			func(ctx context.Context) error { _, err := s.Topics(ctx, "", 10); return err },
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			start := time.Now()
			err := call(ctx)
			cancel()
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("%s: call %d with the database down: %v; want ErrUnavailable", down.name, i, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("%s: call %d took %v, beyond its 2s deadline", down.name, i, d)
			}
		}
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		// Back: the next call (or, should it draw a connection the
		// pool did not know was dead yet, the one after) succeeds.
		var err error
		deadline := time.Now().Add(10 * time.Second)
		for attempt := 0; time.Now().Before(deadline); attempt++ {
			if l, err = s.Claim(testCtx(t), "t", "n", 1); err == nil {
				break
			}
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("%s: Claim after restart: %v", down.name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s: Claim after restart never succeeded: %v", down.name, err)
		}
		if l.Seq != 1 {
			t.Fatalf("%s: head after restart = %d, want 1 (nothing committed while down)", down.name, l.Seq)
		}
		if got := seqs(read(t, s, "t", 0)); !slices.Equal(got, []uint64{1}) {
			t.Fatalf("%s: messages after restart: %v", down.name, got)
		}
	}
}

func TestClassifyCode(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]failure{
		"08006": failConnLost, "08001": failConnLost, "57P01": failConnLost, "57P03": failConnLost,
		"53100": failUnavailable, "53300": failUnavailable, "40P01": failUnavailable, "40001": failUnavailable,
		"57014": failUnavailable, "58030": failUnavailable, "55P03": failUnavailable, "25006": failUnavailable,
		"23505": failPlain, "42P01": failPlain, "22021": failPlain, "28P01": failPlain, "": failPlain,
	} {
		if got := classifyCode(code); got != want {
			t.Errorf("classifyCode(%q) = %d, want %d", code, got, want)
		}
	}
}

func TestTextPrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":              "",
		"abc":           "abc",
		"é\uFFFDx":      "é\uFFFDx",
		"ab\xffcd":      "ab",
		"\xff":          "",
		"a\x00b":        "a",
		"é\xe2\x28\xa1": "é",
	} {
		if got := textPrefix(in); got != want {
			t.Errorf("textPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNamesTextCannotHold(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	for _, n := range []string{"a", "a\u00e9", "b", "\u00e9", "\U0001F600"} {
		claim(t, s, n)
	}
	ctx := testCtx(t)
	for after, want := range map[string][]string{
		"a\xff":        {"b", "\u00e9", "\U0001F600"},
		"a\x00":        {"a\u00e9", "b", "\u00e9", "\U0001F600"},
		"\xc3":         {"\u00e9", "\U0001F600"},
		"\xc3\xa9\xff": {"\U0001F600"},
		"\xff":         nil,
	} {
		heads, err := s.Topics(ctx, after, 10)
		if err != nil {
			t.Fatalf("Topics(%q): %v", after, err)
		}
		var got []string
		for _, h := range heads {
			got = append(got, h.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Topics(%q) = %q, want %q", after, got, want)
		}
	}
	if m, err := s.Read(ctx, "a\xff", 0, 10, 10); err != nil || len(m) != 0 {
		t.Fatalf("Read of a name text cannot hold = %v, %v", m, err)
	}
	if n, err := s.Trim(ctx, "a\x00", 10, 0); err != nil || n != 0 {
		t.Fatalf("Trim of a name text cannot hold = %d, %v", n, err)
	}
}
