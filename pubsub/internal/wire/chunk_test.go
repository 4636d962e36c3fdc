package wire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ringcast/ringcast/transport"
)

// TestStateSizeBounds checks that StateOverhead and HistoryEntrySize bound
// the frames a sender of parts builds from them, whatever the formats the
// values take.
func TestStateSizeBounds(t *testing.T) {
	nodes := []string{"a", strings.Repeat("n", 300)}
	topic := strings.Repeat("t", 255)
	for _, sizes := range [][]int{nil, {0}, {1, 31, 32, 255, 256}, {65535, 65536}, {1 << 20}} {
		var hist []HistoryEntry
		want := StateOverhead(topic, nodes)
		for i, n := range sizes {
			hist = append(hist, HistoryEntry{Seq: ^uint64(0) - uint64(i), Time: -1 << 62, Data: bytes.Repeat([]byte{1}, n)})
			want += HistoryEntrySize(n)
		}
		for _, m := range []Message{
			&State{ReqID: ^uint64(0), Topic: topic, Found: true, Epoch: ^uint64(0), Seq: ^uint64(0), Nodes: nodes, History: hist, Replica: true, Xfer: ^uint64(0)},
			&Handoff{ReqID: ^uint64(0), Topic: topic, Epoch: ^uint64(0), Seq: ^uint64(0), Nodes: nodes, History: hist, Xfer: ^uint64(0)},
			&StateChunk{Xfer: ^uint64(0), Topic: topic, Index: ^uint64(0), Last: true, History: hist},
		} {
			if got := len(EncodeFrame(m)); got > want {
				t.Errorf("%v with %v: frame of %d bytes, bound %d", m.FrameType(), sizes, got, want)
			}
		}
	}
}

// TestChunkStream reads back the frames of one transfer split over a
// stream: the first part, chunks and acknowledgements keep their order and
// contents.
func TestChunkStream(t *testing.T) {
	first := &Handoff{ReqID: 1, Topic: "big", Epoch: 2, Seq: 4, History: []HistoryEntry{{Seq: 1, Data: []byte("a")}}, Xfer: 7}
	msgs := []Message{
		first,
		&StateChunk{Xfer: 7, Topic: "big", Index: 1, History: []HistoryEntry{{Seq: 2, Data: []byte("b")}, {Seq: 3, Data: []byte("c")}}},
		&ChunkAck{Xfer: 7, Index: 1},
		&StateChunk{Xfer: 7, Topic: "big", Index: 2, Last: true, History: []HistoryEntry{{Seq: 4, Data: []byte("d")}}},
	}
	var stream []byte
	for _, m := range msgs {
		stream = transport.AppendMessage(stream, m)
	}
	r := bytes.NewReader(stream)
	for i, m := range msgs {
		typ, body, err := transport.ReadFrame(r, 1<<10)
		if err != nil || typ != m.FrameType() {
			t.Fatalf("frame %d: %v %v", i, typ, err)
		}
		got := New(typ)
		if err := got.DecodeBody(body); err != nil || !equalMessages(got, m) {
			t.Fatalf("frame %d: decoded %+v (%v), want %+v", i, got, err, m)
		}
	}
	if st := first.State(); st.Xfer != 7 || !st.Found {
		t.Fatalf("Handoff.State() = %+v", st)
	}
}
