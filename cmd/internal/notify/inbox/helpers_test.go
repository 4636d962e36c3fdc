package inbox_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/ringcast/ringcast/cmd/internal/notify"
	"github.com/ringcast/ringcast/cmd/internal/notify/inbox"
	"github.com/ringcast/ringcast/cmd/internal/notify/notifytest"
	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
	"github.com/ringcast/ringcast/pubsub/store/sqlite"
)

const testTimeout = 10 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// system is the notification system of one test: a SQLite database that
// holds the ringcast store and the notify tables, and one or more nodes,
// each with its service, inbox and gateway.
type system struct {
	t    testing.TB
	spec string // the SQLite file
	db   *notify.DB
	svc  *notify.Service // the first node's
}

// node is one pubsub node with the notification service, the inbox
// channel and a gateway serving them.
type node struct {
	n   *pubsub.Node
	svc *notify.Service
	ch  *inbox.Channel
	gw  *gateway.Handler
	srv *httptest.Server
	url string // ws://.../socket/websocket?vsn=2.0.0
}

func newSystem(t testing.TB) *system {
	db, spec := notifytest.OpenDB(t, notifytest.SQLite, notify.OpenDB)
	return &system{t: t, spec: spec, db: db}
}

// durability is what the binaries configure: notifications durable,
// control events in memory.
var durability = []pubsub.Durability{
	{Pattern: notify.RingPrefix + "*"},
	{Pattern: notify.UserPrefix + "*", Memory: true},
}

// start starts a node on the system's database, joining seeds, with the
// inbox options given.
func (sys *system) start(opts *inbox.Options, seeds ...string) *node {
	sys.t.Helper()
	return sys.startWith(opts, nil, seeds...)
}

// startWith is start with the inbox's Service wrapped by wrap.
func (sys *system) startWith(opts *inbox.Options, wrap func(inbox.Service) inbox.Service, seeds ...string) *node {
	t := sys.t
	t.Helper()
	ctx := ctxT(t)
	st, err := sqlite.Open(ctx, sys.spec, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := pubsub.New(pubsub.Config{
		Store:      st,
		Durability: durability,
		Seeds:      seeds,
		Gossip:     pubsub.FastGossip(),
	})
	if err != nil {
		_ = st.Close()
		t.Fatal(err)
	}
	db := sys.db
	if sys.svc != nil {
		// Each node opens the database on its own, as each process does.
		db, err = notify.OpenDB(ctx, sys.spec)
		if err != nil {
			t.Fatal(err)
		}
	}
	svc := notify.NewService(db, notify.NodePublisher(n), notify.Options{BcryptCost: bcrypt.MinCost, LoginAttempts: -1})
	if sys.svc == nil {
		sys.svc = svc
	}
	var isvc inbox.Service = svc
	if wrap != nil {
		isvc = wrap(svc)
	}
	ch := inbox.New(n, isvc, opts)
	gw := gateway.NewHandler(broker.New(n), &gateway.Options{
		AuthenticateConn: inbox.AuthenticateConn(svc.Authenticate),
		Logger:           testLogger(t),
		Channels:         ch.Routes(),
	})
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", gw)
	mux.Handle("/api/", svc.Handler())
	srv := httptest.NewServer(mux)
	// Cleanups run last first: the gateway closes its connections, the
	// channel ends, then the node and the store.
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		if db != sys.db {
			_ = db.Close()
		}
	})
	t.Cleanup(func() { _ = ch.Close() })
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = gw.Close() })
	return &node{n: n, svc: svc, ch: ch, gw: gw, srv: srv, url: "ws://" + srv.Listener.Addr().String() + "/socket/websocket?vsn=2.0.0"}
}

// user creates a user and returns a token of theirs.
func (sys *system) user(id string) string {
	t := sys.t
	t.Helper()
	ctx := ctxT(t)
	if err := sys.svc.CreateUser(ctx, id, id+"@example.com", "password-"+id); err != nil {
		t.Fatal(err)
	}
	tok, err := sys.svc.Login(ctx, id, "password-"+id)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

func (sys *system) topic(creator, name string) {
	sys.t.Helper()
	if _, err := sys.svc.CreateTopic(ctxT(sys.t), creator, name, ""); err != nil {
		sys.t.Fatal(err)
	}
}

func (sys *system) subscribe(user, name string) {
	sys.t.Helper()
	if _, _, err := sys.svc.Subscribe(ctxT(sys.t), user, name); err != nil {
		sys.t.Fatal(err)
	}
}

func (sys *system) publish(creator, name, body string) notify.Published {
	sys.t.Helper()
	p, err := sys.svc.Publish(ctxT(sys.t), creator, name, []byte(body))
	if err != nil {
		sys.t.Fatal(err)
	}
	return p
}

// msg is one Phoenix message a client received.
type msg struct {
	JoinRef *string
	Ref     *string
	Topic   string
	Event   string
	Payload json.RawMessage
}

func (m msg) String() string {
	return fmt.Sprintf("%v %v %s %s %s", deref(m.JoinRef), deref(m.Ref), m.Topic, m.Event, m.Payload)
}

func deref(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

// client is a Phoenix Channels V2 client.
type client struct {
	t   testing.TB
	ws  *cws.Conn
	ref int
	// in receives what the reader goroutine reads.
	in   chan msg
	done chan struct{}
}

// dial connects with token: as the bearer subprotocol, or as the query
// parameter token if query is set, or anonymously if token is "".
func (nd *node) dial(t testing.TB, token string, query bool) *client {
	t.Helper()
	url := nd.url
	opts := &cws.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, Subprotocols: []string{"phoenix"}}
	switch {
	case token != "" && query:
		url += "&token=" + token
	case token != "":
		opts.Subprotocols = append(opts.Subprotocols, "base64url.bearer.phx."+base64.RawURLEncoding.EncodeToString([]byte(token)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ws, resp, err := cws.Dial(ctx, url, opts)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(-1)
	c := &client{t: t, ws: ws, in: make(chan msg, 4096), done: make(chan struct{})}
	go c.read()
	t.Cleanup(func() {
		_ = ws.CloseNow()
		<-c.done
	})
	return c
}

func (c *client) read() {
	defer close(c.done)
	defer close(c.in)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			return
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(data, &elems); err != nil || len(elems) < 5 {
			c.t.Errorf("malformed message %s", data)
			return
		}
		var m msg
		_ = json.Unmarshal(elems[0], &m.JoinRef)
		_ = json.Unmarshal(elems[1], &m.Ref)
		_ = json.Unmarshal(elems[2], &m.Topic)
		_ = json.Unmarshal(elems[3], &m.Event)
		m.Payload = elems[4]
		select {
		case c.in <- m:
		default:
			c.t.Errorf("client buffer full")
			return
		}
	}
}

// next returns the next message.
func (c *client) next() msg {
	c.t.Helper()
	select {
	case m, ok := <-c.in:
		if !ok {
			c.t.Fatal("connection closed")
		}
		return m
	case <-time.After(testTimeout):
		c.t.Fatal("no message")
	}
	return msg{}
}

// none checks that nothing arrives for a little while.
func (c *client) none(d time.Duration) {
	c.t.Helper()
	select {
	case m, ok := <-c.in:
		if ok {
			c.t.Fatalf("unexpected %v", m)
		}
	case <-time.After(d):
	}
}

// push sends an event and returns its ref.
func (c *client) push(joinRef, topic, event string, payload any) string {
	c.t.Helper()
	c.ref++
	ref := fmt.Sprint(c.ref)
	b, err := json.Marshal(payload)
	if err != nil {
		c.t.Fatal(err)
	}
	frame, _ := json.Marshal([]any{joinRef, ref, topic, event, json.RawMessage(b)})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, cws.MessageText, frame); err != nil {
		c.t.Fatal(err)
	}
	return ref
}

// reply waits for the reply to ref, collecting the pushes before it in
// *before if not nil, and returns its status and response.
func (c *client) reply(ref string, before *[]msg) (string, json.RawMessage) {
	c.t.Helper()
	for range 100_000 {
		m := c.next()
		if m.Event == "phx_reply" && m.Ref != nil && *m.Ref == ref {
			var r struct {
				Status   string          `json:"status"`
				Response json.RawMessage `json:"response"`
			}
			if err := json.Unmarshal(m.Payload, &r); err != nil {
				c.t.Fatal(err)
			}
			return r.Status, r.Response
		}
		if before == nil {
			c.t.Fatalf("unexpected %v while waiting for reply %s", m, ref)
		}
		*before = append(*before, m)
	}
	c.t.Fatal("no reply")
	return "", nil
}

// join joins topic with payload and returns the ok response; it fails the
// test on an error reply.
func (c *client) join(topic string, payload any) (joinRef string, response json.RawMessage) {
	c.t.Helper()
	ref := c.push(fmt.Sprint(c.ref+1), topic, "phx_join", payload)
	status, resp := c.reply(ref, nil)
	if status != "ok" {
		c.t.Fatalf("join %s: %s %s", topic, status, resp)
	}
	return ref, resp
}

// refused joins topic and returns the reason of the error reply.
func (c *client) refused(topic string, payload any) string {
	c.t.Helper()
	ref := c.push(fmt.Sprint(c.ref+1), topic, "phx_join", payload)
	status, resp := c.reply(ref, nil)
	var r struct{ Reason string }
	_ = json.Unmarshal(resp, &r)
	if status != "error" {
		c.t.Fatalf("join %s: %s %s, want an error", topic, status, resp)
	}
	return r.Reason
}

// event waits for a push of event and decodes its payload into v. Pushes
// of other events before it are returned.
func (c *client) event(event string, v any) []msg {
	c.t.Helper()
	var skipped []msg
	for range 100_000 {
		m := c.next()
		if m.Event == event && m.Ref == nil {
			if v != nil {
				if err := json.Unmarshal(m.Payload, v); err != nil {
					c.t.Fatal(err)
				}
			}
			return skipped
		}
		skipped = append(skipped, m)
	}
	c.t.Fatal("no event")
	return nil
}

// expect reads the next message and requires it to be a push of event
// with exactly payload (compared as JSON values).
func (c *client) expect(event, payload string) {
	c.t.Helper()
	m := c.next()
	if m.Event != event || !sameJSON(m.Payload, payload) {
		c.t.Fatalf("got %v\nwant %s %s", m, event, payload)
	}
}

func sameJSON(a json.RawMessage, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	ax, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return string(ax) == string(by)
}

type inboxReply struct {
	Unread uint64 `json:"unread"`
	Topics []struct {
		Name    string `json:"name"`
		Unread  uint64 `json:"unread"`
		LastSeq uint64 `json:"last_seq"`
		ReadSeq uint64 `json:"read_seq"`
		Epoch   string `json:"epoch"`
	} `json:"topics"`
}

func decodeInbox(t testing.TB, raw json.RawMessage) inboxReply {
	t.Helper()
	var r inboxReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("inbox reply %s: %v", raw, err)
	}
	return r
}

// summary renders an inbox reply as "total name:unread/last/read ...".
func (r inboxReply) summary() string {
	parts := []string{fmt.Sprint(r.Unread)}
	for _, tp := range r.Topics {
		parts = append(parts, fmt.Sprintf("%s:%d/%d/%d", tp.Name, tp.Unread, tp.LastSeq, tp.ReadSeq))
	}
	return strings.Join(parts, " ")
}

type notification struct {
	Topic string          `json:"topic"`
	Seq   uint64          `json:"seq"`
	Epoch string          `json:"epoch"`
	Body  json.RawMessage `json:"body"`
}

type unread struct {
	Unread      uint64 `json:"unread"`
	Topic       string `json:"topic"`
	TopicUnread uint64 `json:"topic_unread"`
}

// notifications returns the seqs of the notification events of topic in msgs.
func notifications(t testing.TB, msgs []msg, topic string) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, m := range msgs {
		if m.Event != inbox.EventNotification {
			continue
		}
		var n notification
		if err := json.Unmarshal(m.Payload, &n); err != nil {
			t.Fatal(err)
		}
		if n.Topic == topic {
			seqs = append(seqs, n.Seq)
		}
	}
	return seqs
}

// recorder is a Service that records the online markers and passes
// everything to the real one.
type recorder struct {
	inbox.Service
	mu     sync.Mutex
	writes []string
}

func (r *recorder) SetOnline(ctx context.Context, user, node string, until time.Time) error {
	r.mu.Lock()
	r.writes = append(r.writes, "set "+user)
	r.mu.Unlock()
	return r.Service.SetOnline(ctx, user, node, until)
}

func (r *recorder) ClearOnline(ctx context.Context, user, node string) error {
	r.mu.Lock()
	r.writes = append(r.writes, "clear "+user)
	r.mu.Unlock()
	return r.Service.ClearOnline(ctx, user, node)
}

func (r *recorder) count(w string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(slices.DeleteFunc(slices.Clone(r.writes), func(s string) bool { return s != w }))
}

// testLogger logs to the test's log at warning level and above.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
