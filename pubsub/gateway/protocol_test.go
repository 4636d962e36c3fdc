package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	cws "github.com/coder/websocket"
)

// TestWebsocatTranscript replays the transcript of the design document byte
// for byte with two clients: both join, one publishes, both receive the
// broadcast.
func TestWebsocatTranscript(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	a, b := g.dial(), g.dial()

	a.send(`["1","1","topics:matrix","phx_join",{}]`)
	a.expect(`["1","1","topics:matrix","phx_reply",{"status":"ok","response":{}}]`)
	b.send(`["1","1","topics:matrix","phx_join",{}]`)
	b.expect(`["1","1","topics:matrix","phx_reply",{"status":"ok","response":{}}]`)

	a.send(`["1","2","topics:matrix","publish",["event",{"message":"hi"}]]`)
	a.expect(`["1","2","topics:matrix","phx_reply",{"status":"ok","response":{}}]`)
	a.expect(`["1",null,"topics:matrix","event",{"message":"hi"}]`)
	b.expect(`["1",null,"topics:matrix","event",{"message":"hi"}]`)

	a.send(`[null,"3","phoenix","heartbeat",{}]`)
	a.expect(`[null,"3","phoenix","phx_reply",{"status":"ok","response":{}}]`)

	a.send(`["1","4","topics:matrix","phx_leave",{}]`)
	a.expect(`["1","4","topics:matrix","phx_reply",{"status":"ok","response":{}}]`)
	a.expect(`["1","1","topics:matrix","phx_close",{}]`)

	// b is still joined and still receives; a does not.
	b.send(`["1","5","topics:matrix","publish",["event",{"n":2}]]`)
	b.expect(`["1","5","topics:matrix","phx_reply",{"status":"ok","response":{}}]`)
	b.expect(`["1",null,"topics:matrix","event",{"n":2}]`)
	a.barrier("6")
}

func TestBroadcastCarriesReceiverJoinRef(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	a, c := g.dial(), g.dial()
	a.join("10", "room:1")
	c.join("77", "room:1")

	// The payload is re-emitted exactly as sent, whitespace included.
	a.send(`["10","11","room:1","publish",["said", {"text" : "a \"quoted\" word",  "n":[1, 2]}]]`)
	a.expect(okReply("10", "11", "room:1"))
	a.expect(`["10",null,"room:1","said",{"text" : "a \"quoted\" word",  "n":[1, 2]}]`)
	c.expect(`["77",null,"room:1","said",{"text" : "a \"quoted\" word",  "n":[1, 2]}]`)

	// A publish from outside the gateway (the HTTP API) reaches both.
	publishJSON(t, b, "room:1", "news", `{"x":1}`)
	a.expect(`["10",null,"room:1","news",{"x":1}]`)
	c.expect(`["77",null,"room:1","news",{"x":1}]`)
}

func TestRejoinReplacesJoin(t *testing.T) {
	b := newCountingBroker()
	g := newGateway(t, b, nil)
	c := g.dial()
	c.join("1", "t:re")
	c.send(`["5","5","t:re","phx_join",{}]`)
	c.expect(`["1","1","t:re","phx_close",{}]`)
	c.expect(okReply("5", "5", "t:re"))

	publishJSON(t, b, "t:re", "e", `{}`)
	c.expect(`["5",null,"t:re","e",{}]`)

	// A stale message for the old join is not for the current one.
	c.send(`["1","6","t:re","publish",["e",{}]]`)
	c.expect(errReply("1", "6", "t:re", "unmatched topic"))
	// Nor is a stale leave: it is answered but leaves the join in place.
	c.send(`["1","7","t:re","phx_leave",{}]`)
	c.expect(okReply("1", "7", "t:re"))
	c.barrier("8")
	publishJSON(t, b, "t:re", "e", `{"still":true}`)
	c.expect(`["5",null,"t:re","e",{"still":true}]`)

	if subs, _ := b.counts("t:re"); subs != 1 {
		t.Fatalf("rejoin subscribed again: %d subscriptions", subs)
	}
	if got := g.h.Stats().Joins; got != 2 {
		t.Fatalf("Joins = %d, want 2", got)
	}
}

func TestLeave(t *testing.T) {
	b := newCountingBroker()
	g := newGateway(t, b, nil)
	c := g.dial()

	// Leaving a topic not joined is answered ok, and nothing else.
	c.send(`["3","3","t:never","phx_leave",{}]`)
	c.expect(okReply("3", "3", "t:never"))
	c.barrier("4")

	c.join("1", "t:leave")
	c.send(`["1","2","t:leave","phx_leave",{}]`)
	c.expect(okReply("1", "2", "t:leave"))
	c.expect(`["1","1","t:leave","phx_close",{}]`)
	waitFor(t, testTimeout, "unsubscribe after the last leave", func() bool {
		_, unsubs := b.counts("t:leave")
		return unsubs == 1
	})
	if got := g.h.Stats().Topics; got != 0 {
		t.Fatalf("Topics = %d after the last leave", got)
	}
	// After leaving, the topic is not joined any more.
	c.send(`["1","5","t:leave","publish",["e",{}]]`)
	c.expect(errReply("1", "5", "t:leave", "unmatched topic"))
}

func TestHeartbeat(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	c := g.dial()
	for _, ref := range []string{"1", "2", "x y"} {
		c.send(`[null,"` + ref + `","phoenix","heartbeat",{}]`)
		c.expect(`[null,"` + ref + `","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	}
	c.send(`[null,"4","phoenix","phx_join",{}]`)
	c.expect(errReply("", "4", "phoenix", "reserved topic"))
	c.send(`[null,"5","phoenix","ping",{}]`)
	c.expect(errReply("", "5", "phoenix", "unknown event"))
}

func TestUnknownEventAndUnmatchedTopic(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	c := g.dial()
	c.join("1", "t:ev")
	c.send(`["1","2","t:ev","shout",{}]`)
	c.expect(errReply("1", "2", "t:ev", "unknown event"))
	c.send(`["1","3","t:other","shout",{}]`)
	c.expect(errReply("1", "3", "t:other", "unmatched topic"))
	c.send(`["9","4","t:other","publish",["e",{}]]`)
	c.expect(errReply("9", "4", "t:other", "unmatched topic"))
	// The connection is still usable.
	c.send(`["1","5","t:ev","publish",["e",{}]]`)
	c.expect(okReply("1", "5", "t:ev"))
	c.expect(`["1",null,"t:ev","e",{}]`)
	if got := g.h.Stats().Errors; got != 3 {
		t.Fatalf("Errors = %d, want 3", got)
	}
}

func TestMalformedMessages(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	c := g.dial()
	c.join("1", "t:bad")
	long := repeat("x", 256)
	cases := []struct {
		name, msg, want string
	}{
		{"not JSON", `hello`, errReply("", "", "phoenix", "malformed JSON")},
		{"truncated", `["1","2","t:bad"`, errReply("", "", "phoenix", "malformed JSON")},
		{"object", `{"topic":"t:bad"}`, errReply("", "", "phoenix", reasonArity)},
		{"null", `null`, errReply("", "", "phoenix", reasonArity)},
		{"too few", `["1","2","t:bad","publish"]`, errReply("1", "2", "t:bad", reasonArity)},
		{"too many", `["1","2","t:bad","publish",["e",{}],6]`, errReply("1", "2", "t:bad", reasonArity)},
		{"empty array", `[]`, errReply("", "", "phoenix", reasonArity)},
		{"numeric ref", `["1",2,"t:bad","publish",["e",{}]]`, errReply("1", "", "t:bad", reasonRefType)},
		{"numeric join_ref", `[1,"2","t:bad","publish",["e",{}]]`, errReply("", "2", "t:bad", reasonJoinRefType)},
		{"numeric topic", `["1","2",3,"publish",["e",{}]]`, errReply("1", "2", "phoenix", reasonTopicType)},
		{"null topic", `["1","2",null,"publish",["e",{}]]`, errReply("1", "2", "phoenix", reasonTopicType)},
		{"numeric event", `["1","2","t:bad",4,{}]`, errReply("1", "2", "t:bad", reasonEventType)},
		{"empty topic", `["1","2","","phx_join",{}]`, errReply("1", "2", "", "invalid topic: empty")},
		{"long topic", `["1","2","` + long + `","phx_join",{}]`, errReply("1", "2", long, "invalid topic: longer than 255 bytes")},
		{"control topic", `["1","2","a\u0001b","phx_join",{}]`, errReply("1", "2", "a\x01b", "invalid topic: control character")},
		{"newline topic", `["1","2","a\nb","phx_join",{}]`, errReply("1", "2", "a\nb", "invalid topic: control character")},
		{"C1 topic", `["1","2","a\u0085b","phx_join",{}]`, errReply("1", "2", "a\u0085b", "invalid topic: control character")},
		{"empty event", `["1","2","t:bad","",{}]`, errReply("1", "2", "t:bad", "invalid event: empty")},
		{"long ref", `["1","` + long + `","t:bad","x",{}]`, errReply("1", long, "t:bad", reasonRefLen)},
		{"publish not array", `["1","2","t:bad","publish",{"e":1}]`, errReply("1", "2", "t:bad", reasonPublishPayload)},
		{"publish arity", `["1","2","t:bad","publish",["e"]]`, errReply("1", "2", "t:bad", reasonPublishPayload)},
		{"publish event type", `["1","2","t:bad","publish",[1,{}]]`, errReply("1", "2", "t:bad", reasonPublishPayload)},
		{"publish body", `["1","2","t:bad","publish",["e","text"]]`, errReply("1", "2", "t:bad", reasonPublishBody)},
		{"publish reserved", `["1","2","t:bad","publish",["phx_close",{}]]`, errReply("1", "2", "t:bad", reasonReservedEvent)},
		{"publish empty event", `["1","2","t:bad","publish",["",{}]]`, errReply("1", "2", "t:bad", "invalid event: empty")},
		{"join payload", `["1","2","t:new","phx_join",[1]]`, errReply("1", "2", "t:new", reasonJoinPayload)},
	}
	for _, tc := range cases {
		c.send(tc.msg)
		typ, data := c.read()
		if typ != cws.MessageText || string(data) != tc.want {
			t.Errorf("%s: %s\n got  %s\n want %s", tc.name, tc.msg, data, tc.want)
		}
	}
	// Text messages must be UTF-8: the payload would be passed on as is.
	c.send("[\"1\",\"2\",\"t:bad\",\"publish\",[\"e\",{\"s\":\"\xff\"}]]")
	c.expect(errReply("1", "2", "t:bad", reasonTextUTF8))

	// After all that the connection works.
	c.send(`["1","3","t:bad","publish",["e",{"ok":true}]]`)
	c.expect(okReply("1", "3", "t:bad"))
	c.expect(`["1",null,"t:bad","e",{"ok":true}]`)
}

func TestMetaOptIn(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	plain, meta := g.dial(), g.dial()
	plain.join("1", "t:meta")
	meta.send(`["2","2","t:meta","phx_join",{"meta":true}]`)
	meta.expect(okReply("2", "2", "t:meta"))

	publishJSON(t, b, "t:meta", "e", `{"a":1}`)
	plain.expect(`["1",null,"t:meta","e",{"a":1}]`)
	meta.expect(`["2",null,"t:meta","e",{"a":1},{"seq":1,"epoch":"1"}]`)

	meta.send(`["2","3","t:meta","publish",["e",{"a":2}]]`)
	meta.expect(`["2","3","t:meta","phx_reply",{"status":"ok","response":{"seq":2}}]`)
	meta.expect(`["2",null,"t:meta","e",{"a":2},{"seq":2,"epoch":"1"}]`)
	plain.expect(`["1",null,"t:meta","e",{"a":2}]`)

	// Rejoining without the option turns it off.
	meta.send(`["4","4","t:meta","phx_join",{"meta":false}]`)
	meta.expect(`["2","2","t:meta","phx_close",{}]`)
	meta.expect(okReply("4", "4", "t:meta"))
	publishJSON(t, b, "t:meta", "e", `{"a":3}`)
	meta.expect(`["4",null,"t:meta","e",{"a":3}]`)
}

func TestNullJoinRef(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	c := g.dial()
	c.send(`[null,"1","t:null","phx_join",null]`)
	c.expect(okReply("", "1", "t:null"))
	publishJSON(t, b, "t:null", "e", `{}`)
	c.expect(`[null,null,"t:null","e",{}]`)
	c.send(`[null,"2","t:null","phx_leave",{}]`)
	c.expect(okReply("", "2", "t:null"))
	c.expect(`[null,null,"t:null","phx_close",{}]`)
}

func TestLargeBroadcastIsFragmentedIntact(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	plain, meta := g.dial(), g.dial()
	plain.join("1", "t:big")
	meta.send(`["2","2","t:big","phx_join",{"meta":true}]`)
	meta.expect(okReply("2", "2", "t:big"))
	body := `{"blob":"` + repeat("abcdefgh", 2*coalesceLimit) + `"}`
	publishJSON(t, b, "t:big", "e", body)
	plain.expect(`["1",null,"t:big","e",` + body + `]`)
	meta.expect(`["2",null,"t:big","e",` + body + `,{"seq":1,"epoch":"1"}]`)
}

func TestRefusesBadVsn(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	base := "http://" + g.srv.Listener.Addr().String() + socketPath
	for _, q := range []string{"?vsn=1.0.0", "?vsn=2.0.1", "?vsn=", "?vsn=2.0.0&vsn=1.0.0"} {
		resp, err := httpClient().Get(base + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "unsupported vsn") {
			t.Errorf("%s: %d %q, want 400 unsupported vsn", q, resp.StatusCode, body)
		}
	}
	// Without vsn, the Phoenix V2 protocol is assumed.
	c := dialURL(t, "ws://"+g.srv.Listener.Addr().String()+socketPath, nil)
	c.join("1", "t:novsn")
	if got := g.h.Stats().Refused; got != 4 {
		t.Fatalf("Refused = %d, want 4", got)
	}
}

func TestSubprotocolAndAuthentication(t *testing.T) {
	var gotToken string
	g := newGateway(t, NewMemoryBroker(), &Options{
		Authenticate: func(r *http.Request, token string) error {
			switch token {
			case "good token":
				gotToken = token
				return nil
			case "banned":
				return errors.Join(errors.New("user banned"), ErrForbidden)
			case "db down":
				return fmt.Errorf("%w: tokens database unreachable", ErrUnavailable)
			}
			return errors.New("bad token")
		},
	})
	dialToken := func(protocols ...string) (*cws.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		ws, resp, err := cws.Dial(ctx, g.url, &cws.DialOptions{Subprotocols: protocols, HTTPClient: httpClient()})
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		return ws, resp, err
	}
	// The official client's encoding: standard base64 without padding.
	ws, _, err := dialToken("phoenix", authTokenPrefix+"Z29vZCB0b2tlbg")
	if err != nil {
		t.Fatalf("dial with a good token: %v", err)
	}
	if ws.Subprotocol() != "phoenix" {
		t.Fatalf("subprotocol %q, want phoenix", ws.Subprotocol())
	}
	_ = ws.CloseNow()
	if gotToken != "good token" {
		t.Fatalf("Authenticate got token %q", gotToken)
	}
	for _, tc := range []struct {
		protocols []string
		status    int
	}{
		{[]string{"phoenix", authTokenPrefix + "YmFkIHRva2Vu"}, http.StatusUnauthorized},     // "bad token"
		{[]string{"phoenix"}, http.StatusUnauthorized},                                       // no token
		{[]string{"phoenix", authTokenPrefix + "YmFubmVk"}, http.StatusForbidden},            // "banned"
		{[]string{"phoenix", authTokenPrefix + "ZGIgZG93bg"}, http.StatusServiceUnavailable}, // "db down"
		{[]string{"phoenix", authTokenPrefix + "!!!"}, http.StatusBadRequest},                // not base64
	} {
		ws, resp, err := dialToken(tc.protocols...)
		if err == nil {
			_ = ws.CloseNow()
			t.Fatalf("%v: dial succeeded", tc.protocols)
		}
		if resp == nil || resp.StatusCode != tc.status {
			t.Fatalf("%v: response %v, want %d", tc.protocols, resp, tc.status)
		}
		if tc.status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%v: 503 without Retry-After", tc.protocols)
		}
	}
}

func TestNoSubprotocolOffered(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	c := g.dial()
	if p := c.ws.Subprotocol(); p != "" {
		t.Fatalf("subprotocol %q selected though none was offered", p)
	}
	c.join("1", "t:plain")
}

func TestOriginPatterns(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), &Options{OriginPatterns: []string{"app.example.com", "[bad"}})
	dialOrigin := func(origin string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		ws, resp, err := cws.Dial(ctx, g.url, &cws.DialOptions{
			HTTPClient: httpClient(),
			HTTPHeader: http.Header{"Origin": []string{origin}},
		})
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		if err == nil {
			_ = ws.CloseNow()
			return http.StatusSwitchingProtocols, nil
		}
		if resp == nil {
			return 0, err
		}
		return resp.StatusCode, nil
	}
	if st, err := dialOrigin("https://app.example.com"); st != http.StatusSwitchingProtocols {
		t.Fatalf("allowed origin: %d %v", st, err)
	}
	if st, err := dialOrigin("https://evil.example.com"); st != http.StatusForbidden {
		t.Fatalf("other origin: %d %v, want 403", st, err)
	}
}
