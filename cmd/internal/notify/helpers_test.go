package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ringcast/ringcast/pubsub/store"
	"github.com/ringcast/ringcast/pubsub/store/postgres"
	"github.com/ringcast/ringcast/pubsub/store/sqlite"
)

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// storePublisher is a Publisher that commits notifications in a real
// store, as a topic's owner does (Claim once, then Append head+1), and
// records what is published on memory-only topics (users:*).
type storePublisher struct {
	st store.Store

	mu      sync.Mutex
	leases  map[string]*store.Lease
	events  map[string][]ControlEvent // per user topic
	fail    error                     // returned by the next Publish, then cleared
	ringPub int                       // publishes to notifications:*
}

func newStorePublisher(st store.Store) *storePublisher {
	return &storePublisher{st: st, leases: map[string]*store.Lease{}, events: map[string][]ControlEvent{}}
}

const testEpoch = 4242

func (p *storePublisher) Publish(ctx context.Context, topic string, data []byte) (uint64, uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.fail; err != nil {
		p.fail = nil
		return 0, 0, err
	}
	if user, ok := strings.CutPrefix(topic, UserPrefix); ok {
		ev, err := ParseControlEvent(data)
		if err != nil {
			return 0, 0, err
		}
		p.events[user] = append(p.events[user], ev)
		return 1, uint64(len(p.events[user])), nil
	}
	l := p.leases[topic]
	if l == nil {
		lease, err := p.st.Claim(ctx, topic, "test-owner", testEpoch)
		if err != nil {
			return 0, 0, err
		}
		l = &lease
		p.leases[topic] = l
	}
	msg := store.Message{Seq: l.Seq + 1, Time: time.Now().UnixNano(), Data: bytes.Clone(data)}
	res, err := p.st.Append(ctx, []store.Append{{Topic: topic, Token: l.Token, Messages: []store.Message{msg}}})
	if err != nil {
		return 0, 0, err
	}
	if res[0] != nil {
		return 0, 0, res[0]
	}
	l.Seq++
	p.ringPub++
	return l.Epoch, l.Seq, nil
}

// appendMany commits n notifications to topic's ringcast topic at once.
func (p *storePublisher) appendMany(t testing.TB, topic string, n int) {
	t.Helper()
	ctx := context.Background()
	p.mu.Lock()
	defer p.mu.Unlock()
	ring := RingTopic(topic)
	l := p.leases[ring]
	if l == nil {
		lease, err := p.st.Claim(ctx, ring, "test-owner", testEpoch)
		if err != nil {
			t.Fatal(err)
		}
		l = &lease
		p.leases[ring] = l
	}
	const batch = 1000
	for done := 0; done < n; {
		k := min(batch, n-done)
		msgs := make([]store.Message, k)
		for i := range msgs {
			l.Seq++
			msgs[i] = store.Message{Seq: l.Seq, Time: time.Now().UnixNano(), Data: []byte(`{"n":1}`)}
		}
		res, err := p.st.Append(ctx, []store.Append{{Topic: ring, Token: l.Token, Messages: msgs}})
		if err != nil || res[0] != nil {
			t.Fatalf("append: %v %v", err, res)
		}
		done += k
	}
}

// takeEvents returns and forgets the control events published for user.
func (p *storePublisher) takeEvents(user string) []ControlEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev := p.events[user]
	delete(p.events, user)
	return ev
}

// testEnv is a Service on a fresh database of one dialect, with a real
// store on the same database and a storePublisher.
type testEnv struct {
	t     *testing.T
	db    *DB
	st    store.Store
	pub   *storePublisher
	clock *testClock
	svc   *Service
	h     http.Handler

	mu       sync.Mutex
	notified []string // OnNotify calls: "topic/seq"
}

func openTestStore(t testing.TB, dialect, spec string) store.Store {
	t.Helper()
	ctx := context.Background()
	var st store.Store
	var err error
	if dialect == TestSQLite {
		st, err = sqlite.Open(ctx, spec, sqlite.Options{Synchronous: "normal"})
	} else {
		st, err = postgres.Open(ctx, spec, postgres.Options{})
	}
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newTestEnv(t *testing.T, dialect string, opts Options) *testEnv {
	t.Helper()
	db, spec := OpenTestDBSpec(t, dialect)
	e := &testEnv{t: t, db: db, clock: newTestClock()}
	e.st = openTestStore(t, dialect, spec)
	e.pub = newStorePublisher(e.st)
	if opts.BcryptCost == 0 {
		opts.BcryptCost = bcrypt.MinCost
	}
	if opts.Clock == nil {
		opts.Clock = e.clock.Now
	}
	if opts.Reader == nil {
		opts.Reader = e.st
	}
	if opts.Trimmer == nil {
		opts.Trimmer = e.st
	}
	if opts.OnNotify == nil {
		opts.OnNotify = func(topic string, seq uint64) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.notified = append(e.notified, topic+"/"+itoa(seq))
		}
	}
	if opts.LoginAttempts == 0 {
		opts.LoginAttempts = -1
	}
	e.svc = NewService(db, e.pub, opts)
	e.h = e.svc.Handler()
	return e
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// forDialects runs f as a subtest per dialect.
func forDialects(t *testing.T, f func(t *testing.T, dialect string)) {
	for _, d := range TestDialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

// response is an API answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// json decodes the body into v, failing the test if it does not.
func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("answer %d %q: %v", r.Status, r.Body, err)
	}
}

// errMsg returns the answer's {"error"} text, failing if there is none.
func (r response) errMsg(t testing.TB) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	r.json(t, &e)
	if e.Error == "" {
		t.Fatalf("answer %d %q: no error text", r.Status, r.Body)
	}
	return e.Error
}

// do serves one request through the handler.
func (e *testEnv) do(method, path, token, body string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); len(b) > 0 && !strings.HasPrefix(ct, "application/json") {
		e.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	if len(b) > 0 && !json.Valid(b) {
		e.t.Fatalf("%s %s: answer is not JSON: %q", method, path, b)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// expect serves a request and fails unless it answers status.
func (e *testEnv) expect(status int, method, path, token, body string) response {
	e.t.Helper()
	r := e.do(method, path, token, body)
	if r.Status != status {
		e.t.Fatalf("%s %s %s: status %d, want %d: %s", method, path, body, r.Status, status, r.Body)
	}
	return r
}

// user creates an account and returns a token for it.
func (e *testEnv) user(id string) string {
	e.t.Helper()
	e.expect(http.StatusCreated, "POST", "/api/users", "", `{"id":"`+id+`","email":"`+id+`@example.com","password":"password-`+id+`"}`)
	var tok Token
	e.expect(http.StatusOK, "POST", "/api/tokens", "", `{"id":"`+id+`","password":"password-`+id+`"}`).json(e.t, &tok)
	if tok.Token == "" {
		e.t.Fatal("empty token")
	}
	return tok.Token
}

// topic creates a topic as the owner of token.
func (e *testEnv) topic(token, name string) {
	e.t.Helper()
	e.expect(http.StatusCreated, "POST", "/api/topics", token, `{"name":"`+name+`","description":"about `+name+`"}`)
}

// publish publishes body to topic and returns its seq.
func (e *testEnv) publish(token, topic, body string) uint64 {
	e.t.Helper()
	var p struct {
		Seq   uint64 `json:"seq"`
		Epoch string `json:"epoch"`
	}
	e.expect(http.StatusCreated, "POST", "/api/topics/"+topic+"/notifications", token, body).json(e.t, &p)
	return p.Seq
}

// inbox returns the caller's inbox.
func (e *testEnv) inbox(token string) Inbox {
	e.t.Helper()
	var in Inbox
	e.expect(http.StatusOK, "GET", "/api/inbox", token, "").json(e.t, &in)
	return in
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

// doFrom serves a request without a token from the peer address addr.
func (e *testEnv) doFrom(addr, method, path, body string) response {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

func httptestRequest(method, path, body string) *http.Request {
	return httptest.NewRequest(method, path, strings.NewReader(body))
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
