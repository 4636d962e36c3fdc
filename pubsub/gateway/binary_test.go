package gateway

import (
	"context"
	"testing"
)

func TestBinaryPushReplyBroadcast(t *testing.T) {
	b := NewMemoryBroker()
	g := newGateway(t, b, nil)
	bin, text := g.dial(), g.dial()

	// Join in binary: a binary reply whose payload is the JSON response.
	bin.sendBinary(binaryPush("1", "1", "t:bin", "phx_join", nil))
	bin.expectBinary(binaryReply("1", "1", "t:bin", "ok", []byte(`{}`)))
	text.join("9", "t:bin")

	// A binary publish: the sender gets its reply first, then every joined
	// client gets a server push with its own join_ref, text clients included.
	payload := []byte{0, 1, 2, 0xff, '"', '\n'}
	bin.sendBinary(binaryPush("1", "2", "t:bin", "publish", payload))
	bin.expectBinary(binaryReply("1", "2", "t:bin", "ok", []byte(`{}`)))
	bin.expectBinary(binaryServerPush("1", "t:bin", "publish", payload))
	text.expectBinary(binaryServerPush("9", "t:bin", "publish", payload))

	// "publish:NAME" names the event.
	bin.sendBinary(binaryPush("1", "3", "t:bin", "publish:frame", []byte("raw")))
	bin.expectBinary(binaryReply("1", "3", "t:bin", "ok", []byte(`{}`)))
	bin.expectBinary(binaryServerPush("1", "t:bin", "frame", []byte("raw")))
	text.expectBinary(binaryServerPush("9", "t:bin", "frame", []byte("raw")))

	// A text publish reaches the binary client as text.
	text.send(`["9","4","t:bin","publish",["e",{"k":"v"}]]`)
	text.expect(okReply("9", "4", "t:bin"))
	text.expect(`["9",null,"t:bin","e",{"k":"v"}]`)
	bin.expect(`["1",null,"t:bin","e",{"k":"v"}]`)

	// A binary publish from the broker (the HTTP API) too.
	if _, err := b.Publish(context.Background(), "t:bin", EncodeEnvelope("img", []byte{9, 9}, true)); err != nil {
		t.Fatal(err)
	}
	bin.expectBinary(binaryServerPush("1", "t:bin", "img", []byte{9, 9}))
	text.expectBinary(binaryServerPush("9", "t:bin", "img", []byte{9, 9}))

	// Heartbeat and leave in binary.
	bin.sendBinary(binaryPush("", "5", "phoenix", "heartbeat", nil))
	bin.expectBinary(binaryReply("", "5", "phoenix", "ok", []byte(`{}`)))
	bin.sendBinary(binaryPush("1", "6", "t:bin", "phx_leave", nil))
	bin.expectBinary(binaryReply("1", "6", "t:bin", "ok", []byte(`{}`)))
	bin.expect(`["1","1","t:bin","phx_close",{}]`)
}

func TestBinaryErrors(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	c := g.dial()
	c.sendBinary(binaryPush("1", "1", "t:binerr", "phx_join", nil))
	c.expectBinary(binaryReply("1", "1", "t:binerr", "ok", []byte(`{}`)))

	reason := func(r string) []byte { return appendReasonResponse(nil, r) }
	c.sendBinary(binaryPush("1", "2", "t:binerr", "shout", nil))
	c.expectBinary(binaryReply("1", "2", "t:binerr", "error", reason("unknown event")))
	c.sendBinary(binaryPush("1", "3", "t:nope", "publish", nil))
	c.expectBinary(binaryReply("1", "3", "t:nope", "error", reason("unmatched topic")))
	c.sendBinary(binaryPush("1", "4", "t:binerr", "publish:phx_reply", nil))
	c.expectBinary(binaryReply("1", "4", "t:binerr", "error", reason("reserved event")))
	c.sendBinary(binaryPush("1", "5", "t:binerr", "publish:", nil))
	c.expectBinary(binaryReply("1", "5", "t:binerr", "error", reason("invalid event: empty")))
	c.sendBinary(binaryPush("1", "6", "", "x", nil))
	c.expectBinary(binaryReply("1", "6", "", "error", reason("invalid topic: empty")))
	c.sendBinary(binaryPush("1", "7", "t:\xff", "x", nil))
	c.expectBinary(binaryReply("1", "7", "t:\xff", "error", reason("invalid topic: not valid UTF-8")))

	// Lengths beyond the message: what was recovered addresses the reply.
	short := binaryPush("1", "8", "t:binerr", "publish", nil)
	short[4] = 200 // event length
	c.sendBinary(short)
	c.expectBinary(binaryReply("1", "8", "t:binerr", "error", reason(reasonBinaryLengths)))
	// Nothing recoverable: a reply on "phoenix" without refs.
	c.sendBinary([]byte{0, 1})
	c.expectBinary(binaryReply("", "", "phoenix", "error", reason(reasonBinaryShort)))
	c.sendBinary(nil)
	c.expectBinary(binaryReply("", "", "phoenix", "error", reason(reasonBinaryShort)))
	c.sendBinary([]byte{2, 1, 1, 'a', 'b'})
	c.expectBinary(binaryReply("", "", "phoenix", "error", reason("binary message kind 2 is not supported, only 0 (push)")))

	// The connection still works.
	c.sendBinary(binaryPush("1", "9", "t:binerr", "publish", []byte("ok")))
	c.expectBinary(binaryReply("1", "9", "t:binerr", "ok", []byte(`{}`)))
	c.expectBinary(binaryServerPush("1", "t:binerr", "publish", []byte("ok")))
}
