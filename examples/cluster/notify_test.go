package cluster

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/ringcast/ringcast/examples/internal/smtptest"
)

// The notification system's tests run ringcast-ws on a SQLite store with
// --smtp pointing at an SMTP server of the test's own, and drive it over
// HTTP and WebSocket as users would.

const (
	notifyTopic = "deploys"
	mailFrom    = "ringcast@example.com"
)

// newMail returns an SMTP server (package smtptest) as ringcast-ws is
// configured to use it here, without TLS or AUTH, not started yet; it stops
// when the test ends.
func newMail(t testing.TB) *smtptest.Server {
	t.Helper()
	s := smtptest.New(t)
	s.Open, s.NoTLS = true, true
	return s
}

// startMail starts a server of newMail on a free port of 127.0.0.1.
func startMail(t testing.TB) *smtptest.Server {
	t.Helper()
	s := newMail(t)
	s.Start(t, "127.0.0.1:0")
	return s
}

// startNotify runs a ringcast-ws serving the notification system on the
// SQLite store at storePath, emailing through smtpAddr after delay.
func startNotify(t *testing.T, label, storePath, smtpAddr string, delay time.Duration, env ...string) *proc {
	t.Helper()
	p := start(t, label, wsBinary, env,
		"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0",
		"--shutdown-timeout", shutdownTimeout.String(), "--failure-detection", "fast",
		"--store", storePath,
		"--smtp", smtpAddr, "--smtp-tls", "none", "--smtp-from", "Ringcast <"+mailFrom+">",
		"--email-delay", delay.String())
	if got, want := p.waitReady()["store"], "sqlite:"+storePath; got != want {
		t.Fatalf("%s ready line says store=%v; want %s", label, got, want)
	}
	return p
}

// api calls the HTTP API of one gateway.
type api struct {
	t    testing.TB
	base string // http://HOST:PORT
}

// do sends a request with the bearer token (none if empty) and returns the
// status and body.
func (a api) do(method, path, token, body string) (int, string) {
	a.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

// must sends a request, requires the status want, and decodes the body into
// v unless v is nil.
func (a api) must(method, path, token, body string, want int, v any) {
	a.t.Helper()
	status, got := a.do(method, path, token, body)
	if status != want {
		a.t.Fatalf("%s %s %s = %d %s; want %d", method, path, body, status, got, want)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(got), v); err != nil {
			a.t.Fatalf("%s %s: decoding %s: %v", method, path, got, err)
		}
	}
}

// wantError requires status and a JSON {"error":…} body that contains word.
func (a api) wantError(method, path, token, body string, status int, word string) {
	a.t.Helper()
	got, text := a.do(method, path, token, body)
	var e struct {
		Error string `json:"error"`
	}
	if got != status || json.Unmarshal([]byte(text), &e) != nil || !strings.Contains(e.Error, word) {
		a.t.Fatalf("%s %s = %d %s; want %d with an error saying %q", method, path, got, text, status, word)
	}
}

// inboxState is the body of GET /api/inbox and POST /api/read.
type inboxState struct {
	Unread uint64 `json:"unread"`
	Topics []struct {
		Name    string `json:"name"`
		Unread  uint64 `json:"unread"`
		LastSeq uint64 `json:"last_seq"`
		ReadSeq uint64 `json:"read_seq"`
	} `json:"topics"`
}

// posted is the answer to POST /api/topics/{name}/notifications.
type posted struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
}

// people creates alice, bob and carol with their tokens; alice creates
// notifyTopic and bob and carol subscribe to it. It returns the tokens.
func people(a api) map[string]string {
	a.t.Helper()
	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		var user struct{ ID, Email string }
		a.must("POST", "/api/users", "", fmt.Sprintf(`{"id":%q,"email":"%s@example.com","password":"correct horse %s"}`, u, u, u), http.StatusCreated, &user)
		if user.ID != u || user.Email != u+"@example.com" {
			a.t.Fatalf("POST /api/users for %s answered %+v", u, user)
		}
		var tok struct {
			Token     string    `json:"token"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		a.must("POST", "/api/tokens", "", fmt.Sprintf(`{"id":%q,"password":"correct horse %s"}`, u, u), http.StatusOK, &tok)
		if tok.Token == "" || !tok.ExpiresAt.After(time.Now()) {
			a.t.Fatalf("POST /api/tokens for %s answered %+v", u, tok)
		}
		tokens[u] = tok.Token
	}
	a.wantError("POST", "/api/users", "", `{"id":"bob","email":"bob2@example.com","password":"another password"}`, http.StatusConflict, "")
	a.wantError("POST", "/api/tokens", "", `{"id":"bob","password":"wrong password"}`, http.StatusUnauthorized, "")
	var topic struct {
		Name    string `json:"name"`
		Creator string `json:"creator"`
	}
	a.must("POST", "/api/topics", tokens["alice"], `{"name":"`+notifyTopic+`","description":"production deploys"}`, http.StatusCreated, &topic)
	if topic.Name != notifyTopic || topic.Creator != "alice" {
		a.t.Fatalf("POST /api/topics answered %+v", topic)
	}
	for _, u := range []string{"bob", "carol"} {
		var st struct {
			Name   string `json:"name"`
			Unread uint64 `json:"unread"`
		}
		a.must("PUT", "/api/topics/"+notifyTopic+"/subscription", tokens[u], "", http.StatusCreated, &st)
		if st.Name != notifyTopic || st.Unread != 0 {
			a.t.Fatalf("%s subscribing answered %+v", u, st)
		}
	}
	return tokens
}

// notifyAll posts n notifications {"text":"release K"} as alice, K from
// first, and returns their positions.
func notifyAll(a api, alice string, first, n int) []posted {
	a.t.Helper()
	out := make([]posted, 0, n)
	for k := first; k < first+n; k++ {
		var p posted
		a.must("POST", "/api/topics/"+notifyTopic+"/notifications", alice, fmt.Sprintf(`{"text":"release %d"}`, k), http.StatusCreated, &p)
		if p.Seq != uint64(k) || p.Epoch == "" || (len(out) > 0 && p.Epoch != out[0].Epoch) {
			a.t.Fatalf("notification %d answered %+v; want seq %d in one epoch (%v)", k, p, k, out)
		}
		out = append(out, p)
	}
	return out
}

// dialToken connects to a gateway's Phoenix socket with a token: as the
// query parameter token (phoenix.js params: {token}), or as the
// subprotocol phoenix.js sends for its authToken option.
func dialToken(t testing.TB, name, httpAddr, token string, subprotocol bool) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	url := "ws://" + httpAddr + "/socket/websocket?vsn=2.0.0"
	opts := &cws.DialOptions{HTTPClient: httpClient}
	if subprotocol {
		opts.Subprotocols = []string{"phoenix", "base64url.bearer.phx." + base64.RawURLEncoding.EncodeToString([]byte(token))}
	} else {
		url += "&token=" + token
	}
	ws, resp, err := cws.Dial(ctx, url, opts)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, url, err)
	}
	if subprotocol && ws.Subprotocol() != "phoenix" {
		t.Fatalf("%s: the gateway chose the subprotocol %q; want phoenix", name, ws.Subprotocol())
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &wsClient{t: t, name: name, ws: ws}
}

// push is a Phoenix V2 message: [join_ref, ref, topic, event, payload].
type push struct {
	joinRef, ref *string
	topic        string
	event        string
	payload      json.RawMessage
}

// next reads the next message as a Phoenix message.
func (c *wsClient) next() push {
	c.t.Helper()
	frame := c.read()
	var parts []json.RawMessage
	var p push
	if err := json.Unmarshal([]byte(frame), &parts); err != nil || len(parts) != 5 ||
		json.Unmarshal(parts[0], &p.joinRef) != nil || json.Unmarshal(parts[1], &p.ref) != nil ||
		json.Unmarshal(parts[2], &p.topic) != nil || json.Unmarshal(parts[3], &p.event) != nil {
		c.t.Fatalf("%s: not a Phoenix message: %s", c.name, frame)
	}
	p.payload = parts[4]
	return p
}

// nextEvent reads until a message with event, skipping only the events in
// skip, and decodes its payload into v.
func (c *wsClient) nextEvent(event string, v any, skip ...string) push {
	c.t.Helper()
	for range 100 {
		p := c.next()
		if p.event == event {
			if v != nil {
				if err := json.Unmarshal(p.payload, v); err != nil {
					c.t.Fatalf("%s: %s payload %s: %v", c.name, event, p.payload, err)
				}
			}
			return p
		}
		if !slices.Contains(skip, p.event) {
			c.t.Fatalf("%s: got %s %s while waiting for %s", c.name, p.event, p.payload, event)
		}
	}
	c.t.Fatalf("%s: no %s among 100 messages", c.name, event)
	return push{}
}

// reply reads until the reply to ref, skipping the events in skip, and
// returns its status and decodes its response into v.
func (c *wsClient) reply(ref string, v any, skip ...string) string {
	c.t.Helper()
	for range 100 {
		p := c.next()
		if p.event == "phx_reply" && p.ref != nil && *p.ref == ref {
			var r struct {
				Status   string          `json:"status"`
				Response json.RawMessage `json:"response"`
			}
			if err := json.Unmarshal(p.payload, &r); err != nil {
				c.t.Fatalf("%s: reply %s: %v", c.name, p.payload, err)
			}
			if v != nil {
				if err := json.Unmarshal(r.Response, v); err != nil {
					c.t.Fatalf("%s: reply %s: %v", c.name, p.payload, err)
				}
			}
			return r.Status
		}
		if !slices.Contains(skip, p.event) {
			c.t.Fatalf("%s: got %s %s while waiting for the reply to %s", c.name, p.event, p.payload, ref)
		}
	}
	c.t.Fatalf("%s: no reply to %s among 100 messages", c.name, ref)
	return ""
}

// inboxReply is the inbox channel's join reply.
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

// joinInbox joins "inbox" with join_ref and ref jr and the payload given,
// and returns the reply.
func (c *wsClient) joinInbox(jr, payload string) inboxReply {
	c.t.Helper()
	c.send(fmt.Sprintf(`[%q,%q,"inbox","phx_join",%s]`, jr, jr, payload))
	var r inboxReply
	if status := c.reply(jr, &r); status != "ok" {
		c.t.Fatalf("%s: joining the inbox: %s", c.name, status)
	}
	return r
}

// notification is the payload of the inbox's notification event.
type notification struct {
	Topic string          `json:"topic"`
	Seq   uint64          `json:"seq"`
	Epoch string          `json:"epoch"`
	Body  json.RawMessage `json:"body"`
}

// unreadEvent is the payload of the inbox's unread event.
type unreadEvent struct {
	Unread      uint64 `json:"unread"`
	Topic       string `json:"topic"`
	TopicUnread uint64 `json:"topic_unread"`
}

// expectNotification reads the next message and requires it to be
// notification seq (body {"text":"release seq"}) of notifyTopic at epoch,
// pushed on join_ref jr.
func (c *wsClient) expectNotification(jr string, seq uint64, epoch string, skip ...string) {
	c.t.Helper()
	var n notification
	p := c.nextEvent("notification", &n, skip...)
	want := fmt.Sprintf(`{"text":"release %d"}`, seq)
	if p.joinRef == nil || *p.joinRef != jr || p.ref != nil || p.topic != "inbox" ||
		n.Topic != notifyTopic || n.Seq != seq || n.Epoch != epoch || string(n.Body) != want {
		c.t.Fatalf("%s: got notification %s on join_ref %v; want %s #%d epoch %s body %s on join_ref %s",
			c.name, p.payload, deref(p.joinRef), notifyTopic, seq, epoch, want, jr)
	}
}

// expectUnread reads the next message and requires it to be an unread
// event with these counts.
func (c *wsClient) expectUnread(total, topic uint64) {
	c.t.Helper()
	var u unreadEvent
	c.nextEvent("unread", &u)
	if u != (unreadEvent{Unread: total, Topic: notifyTopic, TopicUnread: topic}) {
		c.t.Fatalf("%s: got unread %+v; want %d in all, %d in %s", c.name, u, total, topic, notifyTopic)
	}
}

func deref(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

// emailStats is the email part of GET /api/stats.
type emailStats struct {
	Pending   int64            `json:"pending"`
	Outbox    map[string]int64 `json:"outbox"`
	Queued    uint64           `json:"queued"`
	Sent      uint64           `json:"sent"`
	Retries   uint64           `json:"retries"`
	Failed    uint64           `json:"failed"`
	Breaker   string           `json:"breaker"`
	LastError string           `json:"last_error"`
	Dropped   struct {
		Read   uint64 `json:"read"`
		Online uint64 `json:"online"`
	} `json:"dropped"`
}

// mailStats returns the email counters of GET /api/stats.
func (a api) mailStats() emailStats {
	a.t.Helper()
	var s struct {
		Notify struct {
			Email *emailStats `json:"email"`
			Error string      `json:"error"`
		} `json:"notify"`
	}
	a.must("GET", "/api/stats", "", "", http.StatusOK, &s)
	if s.Notify.Email == nil {
		a.t.Fatalf("GET /api/stats shows no email counters (error %q)", s.Notify.Error)
	}
	return *s.Notify.Email
}

// settled reports whether nothing is left to email: no reminder pending,
// nothing in the outbox but sent emails.
func (s emailStats) settled() bool {
	return s.Pending == 0 && s.Outbox["pending"] == 0 && s.Outbox["sending"] == 0 && s.Outbox["failed"] == 0
}

// TestNotificationSystem is the whole flow on one ringcast-ws: accounts,
// a topic its creator owns, subscriptions, live notifications and exact
// unread counts on the inbox channel, a read on one device reaching the
// other, receipts, refusals, an email for the subscriber who was away and
// none for the one who was online; and the open topics of the seed still
// working for anonymous clients beside it.
func TestNotificationSystem(t *testing.T) {
	smtpSrv := startMail(t)
	const delay = time.Second
	ws := startNotify(t, "ringcast-ws", filepath.Join(t.TempDir(), "ringcast.db"), smtpSrv.Addr(), delay, "RINGCAST_JWT_SECRET="+jwtSecret)
	addr := ws.addr("listen")
	a := api{t: t, base: "http://" + addr}
	tok := people(a)

	// Bob's first device: the token as a query parameter.
	bob1 := dialToken(t, "bob (device 1)", addr, tok["bob"], false)
	if r := bob1.joinInbox("1", `{}`); r.Unread != 0 || len(r.Topics) != 1 || r.Topics[0].Name != notifyTopic || r.Topics[0].Unread != 0 {
		t.Fatalf("bob's inbox at the join: %+v; want 0 unread in %s", r, notifyTopic)
	}

	// Alice notifies; bob is told each one live, with the counts.
	start := time.Now()
	sent := notifyAll(a, tok["alice"], 1, 3)
	epoch := sent[0].Epoch
	for seq := uint64(1); seq <= 3; seq++ {
		bob1.expectNotification("1", seq, epoch)
		bob1.expectUnread(seq, seq)
	}
	t.Logf("3 notifications posted and pushed to bob in %v", time.Since(start).Round(time.Millisecond))
	var inbox inboxState
	a.must("GET", "/api/inbox", tok["bob"], "", http.StatusOK, &inbox)
	if inbox.Unread != 3 || len(inbox.Topics) != 1 || inbox.Topics[0].LastSeq != 3 || inbox.Topics[0].ReadSeq != 0 {
		t.Fatalf("bob's GET /api/inbox: %+v; want 3 unread, last_seq 3, read_seq 0", inbox)
	}

	// Bob's second device: the token in the subprotocol, as phoenix.js
	// sends authToken.
	bob2 := dialToken(t, "bob (device 2)", addr, tok["bob"], true)
	if r := bob2.joinInbox("7", `{}`); r.Unread != 3 || len(r.Topics) != 1 || r.Topics[0].LastSeq != 3 || r.Topics[0].Epoch != epoch {
		t.Fatalf("bob's second device's inbox at the join: %+v; want 3 unread, last_seq 3, epoch %s", r, epoch)
	}

	// A read on device 1 is answered there and reaches device 2 at once.
	bob1.send(`["1","2","inbox","read",{"topic":"` + notifyTopic + `","seq":2}]`)
	var rr struct {
		Unread      uint64 `json:"unread"`
		TopicUnread uint64 `json:"topic_unread"`
		LastSeq     uint64 `json:"last_seq"`
		ReadSeq     uint64 `json:"read_seq"`
	}
	if status := bob1.reply("2", &rr, "unread"); status != "ok" || rr.Unread != 1 || rr.TopicUnread != 1 || rr.LastSeq != 3 || rr.ReadSeq != 2 {
		t.Fatalf("bob's read: %s %+v; want ok, 1 unread, read_seq 2", status, rr)
	}
	var read struct {
		Topic   string `json:"topic"`
		ReadSeq uint64 `json:"read_seq"`
	}
	p := bob2.nextEvent("read", &read)
	if read.Topic != notifyTopic || read.ReadSeq != 2 || p.joinRef == nil || *p.joinRef != "7" {
		t.Fatalf("bob's second device was told %s on join_ref %s; want read_seq 2 of %s on 7", p.payload, deref(p.joinRef), notifyTopic)
	}
	bob2.expectUnread(1, 1)

	// Receipts, for the creator only.
	var receipts struct {
		Subscribers int `json:"subscribers"`
		Read        int `json:"read"`
	}
	a.must("GET", "/api/topics/"+notifyTopic+"/notifications/2/receipts", tok["alice"], "", http.StatusOK, &receipts)
	if receipts.Subscribers != 2 || receipts.Read != 1 {
		t.Fatalf("receipts of #2: %+v; want 2 subscribers, 1 read", receipts)
	}
	a.wantError("GET", "/api/topics/"+notifyTopic+"/notifications/2/receipts", tok["bob"], "", http.StatusForbidden, "")

	// Only the creator publishes; no such topic is 404; no token is 401.
	a.wantError("POST", "/api/topics/"+notifyTopic+"/notifications", tok["bob"], `{"text":"not mine"}`, http.StatusForbidden, "creator")
	a.wantError("POST", "/api/topics/no-such-topic/notifications", tok["alice"], `{"text":"nowhere"}`, http.StatusNotFound, "")
	a.wantError("POST", "/api/topics/"+notifyTopic+"/notifications", "", `{"text":"anonymous"}`, http.StatusUnauthorized, "")
	a.wantError("GET", "/api/inbox", "not-a-token", "", http.StatusUnauthorized, "")

	// Carol was away: after the delay she gets exactly one email naming the
	// topic; bob, online, gets none.
	waitFor(t, 10*delay+testTimeout, "carol's email", func() bool { return len(smtpSrv.To("carol@example.com")) > 0 })
	t.Logf("carol's email arrived %v after the first notification (--email-delay %v)", time.Since(start).Round(time.Millisecond), delay)
	var es emailStats
	// The counters come after the outbox rows, in a snapshot up to a
	// second old: wait for them too.
	waitFor(t, testTimeout, "every reminder handled", func() bool {
		es = a.mailStats()
		return es.settled() && es.Sent > 0 && es.Dropped.Online > 0
	})
	carol := smtpSrv.To("carol@example.com")
	if len(carol) != 1 || len(smtpSrv.Messages()) != 1 {
		t.Fatalf("the SMTP server received %+v; want one email, to carol", smtpSrv.Messages())
	}
	if m := carol[0]; !strings.Contains(m.Subject+m.Body, notifyTopic) || !strings.Contains(m.Body, "carol") {
		t.Fatalf("carol's email does not name %s or her: %q\n%s", notifyTopic, m.Subject, m.Body)
	}
	if es.Sent != 1 || es.Outbox["sent"] != 1 || es.Dropped.Online == 0 {
		t.Fatalf("email counters %+v; want 1 sent and bob's reminder dropped as online", es)
	}
	smtpSrv.CheckOnce(t)

	// Carol marks everything read.
	a.must("POST", "/api/read", tok["carol"], "", http.StatusOK, &inbox)
	if inbox.Unread != 0 || len(inbox.Topics) != 1 || inbox.Topics[0].ReadSeq != 3 {
		t.Fatalf("carol's POST /api/read: %+v; want 0 unread, read_seq 3", inbox)
	}
	a.must("GET", "/api/topics/"+notifyTopic+"/notifications/2/receipts", tok["alice"], "", http.StatusOK, &receipts)
	if receipts.Subscribers != 2 || receipts.Read != 2 {
		t.Fatalf("receipts of #2 after carol's read: %+v; want 2 subscribers, 2 read", receipts)
	}
	var history struct {
		Notifications []struct {
			Seq  uint64          `json:"seq"`
			Body json.RawMessage `json:"body"`
		} `json:"notifications"`
		Next *uint64 `json:"next"`
	}
	a.must("GET", "/api/topics/"+notifyTopic+"/notifications?after=1", tok["carol"], "", http.StatusOK, &history)
	if len(history.Notifications) != 2 || history.Notifications[0].Seq != 2 || string(history.Notifications[1].Body) != `{"text":"release 3"}` || history.Next != nil {
		t.Fatalf("history after #1: %+v", history)
	}

	// The open topics of the seed: an anonymous websocat session.
	anon := dial(t, "anonymous", addr)
	anon.send(joinMatrix)
	anon.expect(joinedMatrix)
	anon.send(publishMatrix)
	anon.expect(publishedOK)
	anon.expect(redPill)
	// The notification system's topics are not joined directly, with or
	// without a token, and the inbox needs one.
	for i, topic := range []string{"notifications:" + notifyTopic, "users:bob"} {
		ref := strconv.Itoa(i + 2)
		anon.send(fmt.Sprintf(`[%q,%q,%q,"phx_join",{}]`, ref, ref, topic))
		var refused struct {
			Reason string `json:"reason"`
		}
		if status := anon.reply(ref, &refused); status != "error" || !strings.Contains(refused.Reason, "forbidden") {
			t.Fatalf("an anonymous join of %s: %s %q; want an error saying forbidden", topic, status, refused.Reason)
		}
		ref = strconv.Itoa(i + 10)
		bob2.send(fmt.Sprintf(`[%q,%q,%q,"phx_join",{}]`, ref, ref, topic))
		if status := bob2.reply(ref, &refused); status != "error" || !strings.Contains(refused.Reason, "forbidden") {
			t.Fatalf("bob's join of %s: %s %q; want an error saying forbidden", topic, status, refused.Reason)
		}
	}
	anon.send(`["5","5","inbox","phx_join",{}]`)
	var refused struct {
		Reason string `json:"reason"`
	}
	if status := anon.reply("5", &refused); status != "error" || refused.Reason != "unauthorized" {
		t.Fatalf("an anonymous join of the inbox: %s %q; want error unauthorized", status, refused.Reason)
	}
	a.wantError("POST", "/api/publish?topic=notifications:"+notifyTopic, "", `{"text":"forged"}`, http.StatusForbidden, "reserved")
	a.wantError("POST", "/api/publish?topic=users:bob", "", `{"type":"read_all"}`, http.StatusForbidden, "reserved")
	// A connection with a token the server does not know is refused at
	// the upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ws2, resp, err := cws.Dial(ctx, "ws://"+addr+"/socket/websocket?vsn=2.0.0&token=forged", &cws.DialOptions{HTTPClient: httpClient})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err == nil {
		_ = ws2.CloseNow()
		t.Fatal("a WebSocket connection with a forged token was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a WebSocket connection with a forged token: %v; want HTTP 401", err)
	}

	// Nothing forged reached bob: his devices hold no other message.
	bob1.send(`[null,"99","phoenix","heartbeat",{}]`)
	bob1.expect(`[null,"99","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	if len(smtpSrv.To("bob@example.com")) != 0 {
		t.Fatalf("bob, online, was emailed: %+v", smtpSrv.To("bob@example.com"))
	}

	// A user of an application with its own accounts comes with a JWT
	// signed with --jwt-secret (RINGCAST_JWT_SECRET), over HTTP and on
	// the socket; one signed with another secret is refused.
	dave := signJWT(t, jwtSecret, "dave", time.Hour)
	var st struct {
		Name   string `json:"name"`
		Unread uint64 `json:"unread"`
	}
	a.must("PUT", "/api/topics/"+notifyTopic+"/subscription", dave, "", http.StatusCreated, &st)
	if st.Name != notifyTopic || st.Unread != 0 {
		t.Fatalf("dave subscribing with a JWT: %+v; want 0 unread", st)
	}
	daveWS := dialToken(t, "dave", addr, dave, true)
	if r := daveWS.joinInbox("1", `{}`); r.Unread != 0 || len(r.Topics) != 1 || r.Topics[0].LastSeq != 3 || r.Topics[0].ReadSeq != 3 {
		t.Fatalf("dave's inbox at the join: %+v; want %s at 3, read, 0 unread", r, notifyTopic)
	}
	a.wantError("GET", "/api/inbox", signJWT(t, "another secret of 32 bytes or more", "dave", time.Hour), "", http.StatusUnauthorized, "")
	a.wantError("GET", "/api/inbox", signJWT(t, jwtSecret, "dave", -5*time.Minute), "", http.StatusUnauthorized, "")
}

// jwtSecret is the --jwt-secret of TestNotificationSystem.
const jwtSecret = "an application's secret, 32 bytes or more"

// signJWT returns an HS256 JWT for user, signed with secret, expiring in
// ttl (already expired if ttl is negative).
func signJWT(t testing.TB, secret, user string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now.Add(-2 * time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pendingSeq returns the sequence number of user's pending email reminder
// of notifyTopic in the store at path, 0 if there is none. It reads the
// database beside the running process, as an operator's sqlite3 would.
func pendingSeq(t *testing.T, path, user string) uint64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq int64
	err = db.QueryRow(`SELECT seq FROM notify_pending WHERE user_id = ? AND topic = ?`, user, notifyTopic).Scan(&seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0
	case err != nil:
		t.Fatalf("reading notify_pending in %s: %v", path, err)
	}
	return uint64(seq)
}

// TestNotificationsSurviveRestart kills ringcast-ws with SIGKILL after
// notifications, reads and an email, with a reminder recorded and not yet
// due, and restarts it on the same store: the unread counts are exact and
// the same, tokens still work, a client that rejoins with its position
// gets exactly what it missed, the topic goes on in the same epoch, the
// reminder is sent by the new process, and no email is ever sent twice.
func TestNotificationsSurviveRestart(t *testing.T) {
	smtpSrv := startMail(t)
	// Long enough that the process is killed before the last reminder is
	// due, short enough to keep the test quick.
	const delay = 4 * time.Second
	store := filepath.Join(t.TempDir(), "ringcast.db")
	first := startNotify(t, "ringcast-ws", store, smtpSrv.Addr(), delay)
	a := api{t: t, base: "http://" + first.addr("listen")}
	tok := people(a)

	bob := dialToken(t, "bob", first.addr("listen"), tok["bob"], false)
	bob.joinInbox("1", `{}`)
	sent := notifyAll(a, tok["alice"], 1, 5)
	epoch := sent[0].Epoch
	for seq := uint64(1); seq <= 5; seq++ {
		bob.expectNotification("1", seq, epoch)
		bob.expectUnread(seq, seq)
	}
	bob.send(`["1","2","inbox","read",{"topic":"` + notifyTopic + `","seq":3}]`)
	if status := bob.reply("2", nil, "unread", "read"); status != "ok" {
		t.Fatalf("bob's read: %s", status)
	}
	var st struct {
		Unread  uint64 `json:"unread"`
		ReadSeq uint64 `json:"read_seq"`
	}
	a.must("POST", "/api/topics/"+notifyTopic+"/read", tok["carol"], `{"seq":1}`, http.StatusOK, &st)
	if st.Unread != 4 || st.ReadSeq != 1 {
		t.Fatalf("carol's read of #1: %+v; want 4 unread, read_seq 1", st)
	}

	// Carol, away, is emailed once; then every reminder is handled.
	waitFor(t, 3*delay+testTimeout, "carol's first email", func() bool { return len(smtpSrv.To("carol@example.com")) == 1 })
	waitFor(t, testTimeout, "every reminder handled", func() bool { return a.mailStats().settled() })

	// One more notification: reminders for it are recorded, not yet due,
	// when the process is killed.
	posted6 := time.Now()
	notifyAll(a, tok["alice"], 6, 1)
	bob.expectNotification("1", 6, epoch)
	bob.expectUnread(3, 3)
	waitFor(t, delay/2, "carol's reminder of #6 in notify_pending", func() bool { return pendingSeq(t, store, "carol") == 6 })
	inboxes := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		status, body := a.do("GET", "/api/inbox", tok[u], "")
		if status != http.StatusOK {
			t.Fatalf("%s's GET /api/inbox = %d %s", u, status, body)
		}
		inboxes[u] = body
	}
	killAll(t, first)
	if since := time.Since(posted6); since >= delay {
		t.Fatalf("the process was killed %v after #6, not before its reminders were due (%v): the test proves nothing", since, delay)
	}
	if n := len(smtpSrv.Messages()); n != 1 {
		t.Fatalf("%d emails before the restart; want carol's one", n)
	}

	second := startNotify(t, "ringcast-ws again", store, smtpSrv.Addr(), delay)
	a = api{t: t, base: "http://" + second.addr("listen")}
	// The same tokens work, and the counts are exact and the same.
	for u, before := range inboxes {
		status, after := a.do("GET", "/api/inbox", tok[u], "")
		if status != http.StatusOK || after != before {
			t.Fatalf("%s's GET /api/inbox after the restart = %d %s; before it %s", u, status, after, before)
		}
	}
	var inbox inboxState
	a.must("GET", "/api/inbox", tok["bob"], "", http.StatusOK, &inbox)
	if inbox.Unread != 3 || len(inbox.Topics) != 1 || inbox.Topics[0].LastSeq != 6 || inbox.Topics[0].ReadSeq != 3 {
		t.Fatalf("bob's inbox after the restart: %+v; want 3 unread, last_seq 6, read_seq 3", inbox)
	}

	// The reminder recorded before the kill is sent by the new process.
	waitFor(t, 3*delay+testTimeout, "carol's second email", func() bool { return len(smtpSrv.To("carol@example.com")) == 2 })
	waitFor(t, testTimeout, "every reminder handled after the restart", func() bool { return a.mailStats().settled() })
	if m := smtpSrv.To("carol@example.com")[1]; !strings.Contains(m.Subject+m.Body, notifyTopic) || !strings.Contains(m.Body, "#6") {
		t.Fatalf("carol's second email does not tell of %s #6: %q\n%s", notifyTopic, m.Subject, m.Body)
	}

	// Bob's device rejoins from the position of #4: it gets #5 and #6,
	// then what is published next, in the same epoch.
	bob = dialToken(t, "bob again", second.addr("listen"), tok["bob"], true)
	r := bob.joinInbox("3", fmt.Sprintf(`{"positions":{%q:{"epoch":%q,"seq":4}}}`, notifyTopic, epoch))
	if r.Unread != 3 || len(r.Topics) != 1 || r.Topics[0].LastSeq != 6 || r.Topics[0].ReadSeq != 3 || r.Topics[0].Epoch != epoch {
		t.Fatalf("bob's inbox at the rejoin: %+v; want 3 unread, last_seq 6, read_seq 3, epoch %s", r, epoch)
	}
	bob.expectNotification("3", 5, epoch)
	bob.expectNotification("3", 6, epoch)
	next := notifyAll(a, tok["alice"], 7, 1)[0]
	if next.Epoch != epoch {
		t.Fatalf("#7 is in epoch %s; want %s, the epoch before the restart", next.Epoch, epoch)
	}
	bob.expectNotification("3", 7, epoch)
	bob.expectUnread(4, 4)

	// Carol is reminded of #7, once; nothing was ever sent twice.
	waitFor(t, 3*delay+testTimeout, "carol's third email", func() bool { return len(smtpSrv.To("carol@example.com")) == 3 })
	waitFor(t, testTimeout, "every reminder handled at the end", func() bool { return a.mailStats().settled() })
	if all := smtpSrv.Messages(); len(all) != 3 {
		t.Fatalf("the SMTP server received %d emails; want carol's 3: %+v", len(all), all)
	}
	smtpSrv.CheckOnce(t)
}

// TestEmailSMTPDown starts ringcast-ws with its SMTP server down (nothing
// listens on the port): the reminder waits in the outbox, its failures show
// in GET /api/stats, and once the server starts on that port the email
// arrives, once.
func TestEmailSMTPDown(t *testing.T) {
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	smtpSrv := newMail(t)
	const delay = time.Second
	ws := startNotify(t, "ringcast-ws", filepath.Join(t.TempDir(), "ringcast.db"), smtpAddr, delay)
	a := api{t: t, base: "http://" + ws.addr("listen")}
	tok := people(a)
	// Bob leaves the topic: carol is the one subscriber to remind.
	a.must("DELETE", "/api/topics/"+notifyTopic+"/subscription", tok["bob"], "", http.StatusNoContent, nil)
	a.wantError("DELETE", "/api/topics/"+notifyTopic+"/subscription", tok["bob"], "", http.StatusNotFound, "")
	notifyAll(a, tok["alice"], 1, 1)

	var es emailStats
	waitFor(t, 3*delay+testTimeout, "a failed send in the counters", func() bool {
		es = a.mailStats()
		return es.Retries > 0 && es.LastError != "" && es.Outbox["pending"]+es.Outbox["sending"] == 1
	})
	t.Logf("with the SMTP server down: %d retries, last error %q, breaker %s", es.Retries, es.LastError, es.Breaker)
	down := time.Now()
	smtpSrv.Start(t, smtpAddr)
	waitFor(t, 2*testTimeout, "carol's email once the SMTP server is up", func() bool { return len(smtpSrv.To("carol@example.com")) > 0 })
	t.Logf("carol's email arrived %v after the SMTP server started", time.Since(down).Round(time.Millisecond))
	// The outbox row is marked sent before the sender counts it, and
	// /api/stats is a snapshot up to a second old: wait for both.
	waitFor(t, testTimeout, "every reminder handled", func() bool { es = a.mailStats(); return es.settled() && es.Sent > 0 })
	if all := smtpSrv.Messages(); len(all) != 1 || all[0].To != "carol@example.com" || !strings.Contains(all[0].Subject, notifyTopic) {
		t.Fatalf("the SMTP server received %+v; want one email to carol about %s", all, notifyTopic)
	}
	if es.Sent != 1 || es.Outbox["sent"] != 1 || es.Failed != 0 {
		t.Fatalf("email counters %+v; want 1 sent, none failed", es)
	}
	smtpSrv.CheckOnce(t)
}
