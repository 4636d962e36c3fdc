package pubsub

import (
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/internal/wire"
	"github.com/ringcast/ringcast/transport"
)

// Every frame type of the protocol has a handler, and nothing else has one.
func TestEveryFrameTypeHasAHandler(t *testing.T) {
	for typ := range len(frameHandlers) {
		known := wire.New(transport.FrameType(typ)) != nil
		if has := frameHandlers[typ] != nil; has != known {
			t.Errorf("frame type %d (%s): handler %v, protocol type %v", typ, Frame(typ), has, known)
		}
	}
}

// A frame of an unknown type, or one whose body does not decode, is counted
// and dropped; the node goes on serving.
func TestBadFramesAreCounted(t *testing.T) {
	n, err := New(testConfig("solo"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.handleFrame("peer", 200, []byte{1, 2, 3})
	n.handleFrame("peer", wire.FrameSubscribeAck, []byte{0xc1})
	n.handleFrame("peer", wire.FrameDeliver, []byte{0xc1})
	if got := n.Stats().BadFrames; got != 3 {
		t.Fatalf("BadFrames = %d, want 3", got)
	}
	ctx := ctxT(t, 10*time.Second)
	if _, err := n.Publish(ctx, "t", []byte("x")); err != nil {
		t.Fatalf("publish after bad frames: %v", err)
	}
}
