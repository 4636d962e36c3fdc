package pubsub

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestFrameText(t *testing.T) {
	for i := range 256 {
		f := Frame(i)
		b, err := f.MarshalText()
		if err != nil || string(b) != f.String() {
			t.Fatalf("%d: MarshalText = %q, %v", i, b, err)
		}
		var back Frame
		if err := back.UnmarshalText(b); err != nil || back != f {
			t.Fatalf("%d: UnmarshalText(%q) = %d, %v", i, b, back, err)
		}
	}
	for f, want := range map[Frame]string{
		FramePing: "Ping", FrameDeliver: "Deliver", FrameReplicaDeliver: "ReplicaDeliver",
		FrameHandoff: "Handoff", FrameReplicaNodes: "ReplicaNodes", FrameState: "State", 200: "FrameType(200)",
	} {
		if f.String() != want {
			t.Errorf("%d.String() = %q, want %q", uint8(f), f.String(), want)
		}
	}
	for _, bad := range []string{"", "Nope", "FrameType(256)", "FrameType(x)", "FrameType(1"} {
		var f Frame
		if err := f.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) = %d, want an error", bad, f)
		}
	}
	// JSON keys frame counts by name, and reads them back.
	in := PeerLinkStats{Sent: map[Frame]uint64{FrameDeliver: 3, Frame(200): 1}}
	b, err := json.Marshal(in)
	if err != nil || !strings.Contains(string(b), `"Deliver":3`) || !strings.Contains(string(b), `"FrameType(200)":1`) {
		t.Fatalf("json.Marshal = %s, %v", b, err)
	}
	var out PeerLinkStats
	if err := json.Unmarshal(b, &out); err != nil || out.Sent[FrameDeliver] != 3 || out.Sent[Frame(200)] != 1 {
		t.Fatalf("json.Unmarshal(%s) = %+v, %v", b, out, err)
	}
}
