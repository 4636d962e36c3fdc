package gateway

import (
	"strings"
	"testing"
)

func presenceBroker() *MemoryBroker {
	b := NewMemoryBroker()
	b.EnablePresence(func(topic string) bool { return strings.HasPrefix(topic, "room:") })
	return b
}

func TestPresenceStateAndDiff(t *testing.T) {
	g := newGateway(t, presenceBroker(), nil)
	a := g.dial()
	a.send(`["1","1","room:1","phx_join",{"presence":{"key":"alice","meta":{"status":"away", "n": 1}}}]`)
	a.expect(okReply("1", "1", "room:1"))
	a.expect(`["1",null,"room:1","presence_state",{"alice":{"metas":[{"phx_ref":"m1","status":"away","n":1}]}}]`)

	b := g.dial()
	b.send(`["5","5","room:1","phx_join",{"presence":{"key":"bob"}}]`)
	b.expect(okReply("5", "5", "room:1"))
	b.expect(`["5",null,"room:1","presence_state",{"alice":{"metas":[{"phx_ref":"m1","status":"away","n":1}]},"bob":{"metas":[{"phx_ref":"m2"}]}}]`)
	a.expect(`["1",null,"room:1","presence_diff",{"joins":{"bob":{"metas":[{"phx_ref":"m2"}]}},"leaves":{}}]`)

	// A second connection of bob: a second meta under the same key.
	b2 := g.dial()
	b2.send(`["1","1","room:1","phx_join",{"presence":{"key":"bob","meta":{"device":"phone"}}}]`)
	b2.expect(okReply("1", "1", "room:1"))
	b2.expect(`["1",null,"room:1","presence_state",{"alice":{"metas":[{"phx_ref":"m1","status":"away","n":1}]},"bob":{"metas":[{"phx_ref":"m2"},{"phx_ref":"m3","device":"phone"}]}}]`)
	a.expect(`["1",null,"room:1","presence_diff",{"joins":{"bob":{"metas":[{"phx_ref":"m3","device":"phone"}]}},"leaves":{}}]`)
	b.expect(`["5",null,"room:1","presence_diff",{"joins":{"bob":{"metas":[{"phx_ref":"m3","device":"phone"}]}},"leaves":{}}]`)

	// Leaving, and closing the connection, take the meta away.
	b.send(`["5","6","room:1","phx_leave",{}]`)
	b.expect(okReply("5", "6", "room:1"))
	b.expect(`["5","5","room:1","phx_close",{}]`)
	a.expect(`["1",null,"room:1","presence_diff",{"joins":{},"leaves":{"bob":{"metas":[{"phx_ref":"m2"}]}}}]`)
	b2.expect(`["1",null,"room:1","presence_diff",{"joins":{},"leaves":{"bob":{"metas":[{"phx_ref":"m2"}]}}}]`)
	_ = b2.ws.CloseNow()
	a.expect(`["1",null,"room:1","presence_diff",{"joins":{},"leaves":{"bob":{"metas":[{"phx_ref":"m3","device":"phone"}]}}}]`)

	// A join that replaces the join gets the set again under its join_ref.
	a.send(`["7","7","room:1","phx_join",{}]`)
	a.expect(`["1","1","room:1","phx_close",{}]`)
	a.expect(okReply("7", "7", "room:1"))
	a.expect(`["7",null,"room:1","presence_state",{"alice":{"metas":[{"phx_ref":"m1","status":"away","n":1}]}}]`)
}

func TestPresenceKeys(t *testing.T) {
	g := newGateway(t, presenceBroker(), userOpts(&Options{}))
	// An authenticated connection is keyed by its user.
	ann := dialURL(t, g.url+"&token=ann", nil)
	ann.send(`["1","1","room:k","phx_join",{}]`)
	ann.expect(okReply("1", "1", "room:k"))
	ann.expect(`["1",null,"room:k","presence_state",{"ann":{"metas":[{"phx_ref":"m1"}]}}]`)
	ann.send(`["2","2","room:other","phx_join",{"presence":{"key":"bob"}}]`)
	ann.expect(errReply("2", "2", "room:other", reasonPresenceKey))
	ann.send(`["3","3","room:other","phx_join",{"presence":{"key":"ann"}}]`)
	ann.expect(okReply("3", "3", "room:other"))
	ann.expect(`["3",null,"room:other","presence_state",{"ann":{"metas":[{"phx_ref":"m2"}]}}]`)

	// An anonymous connection without a key is not tracked, but sees the set.
	anon := g.dial()
	anon.send(`["1","1","room:k","phx_join",null]`)
	anon.expect(okReply("1", "1", "room:k"))
	anon.expect(`["1",null,"room:k","presence_state",{"ann":{"metas":[{"phx_ref":"m1"}]}}]`)

	for _, payload := range []string{
		`{"presence":[]}`, `{"presence":{"key":""}}`, `{"presence":{"key":7}}`,
		`{"presence":{"key":"x","meta":[1]}}`, `{"presence":{"key":"x","meta":"s"}}`,
		`{"presence":{"key":"x","meta":{"big":"` + repeat("x", MaxPresenceMeta) + `"}}}`,
	} {
		anon.send(`["9","9","room:bad","phx_join",` + payload + `]`)
		anon.expect(errReply("9", "9", "room:bad", reasonPresencePayload))
	}
	anon.send(`["9","9","room:bad","phx_join",{"presence":{"key":"x","meta":{"phx_ref":"forged"}}}]`)
	anon.expect(errReply("9", "9", "room:bad", reasonPresenceRef))

	// A topic without presence gets no presence frames.
	anon.send(`["4","4","plain","phx_join",{"presence":{"key":"x"}}]`)
	anon.expect(okReply("4", "4", "plain"))
	anon.barrier("5")
}

// A join that resumes from history ({"since": ...}) is tracked and gets
// the set too, after its reply.
func TestPresenceResumingJoin(t *testing.T) {
	b := presenceBroker()
	g := newGateway(t, b, nil)
	publishJSON(t, b, "room:r", "e", `{"n":1}`)
	a := g.dial()
	a.send(`["1","1","room:r","phx_join",{"since":0,"presence":{"key":"alice"}}]`)
	a.expect(`["1","1","room:r","phx_reply",{"status":"ok","response":{"recovered":1,"epoch":"1","seq":0}}]`)
	a.expect(`["1",null,"room:r","e",{"n":1},{"seq":1,"epoch":"1"}]`)
	a.expect(`["1",null,"room:r","presence_state",{"alice":{"metas":[{"phx_ref":"m1"}]}}]`)
	// Resuming again replaces the join, and its meta.
	a.send(`["2","2","room:r","phx_join",{"since":1,"presence":{"key":"alice"}}]`)
	a.expect(`["1","1","room:r","phx_close",{}]`)
	a.expect(`["2","2","room:r","phx_reply",{"status":"ok","response":{"recovered":0,"epoch":"1","seq":1}}]`)
	a.expect(`["2",null,"room:r","presence_state",{"alice":{"metas":[{"phx_ref":"m2"}]}}]`)
}
