package wire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/ringcast/ringcast/transport"
	"github.com/vmihailenco/msgpack/v5"
)

// sampleMessages returns messages of every type, with values at the
// boundaries of every msgpack format the encoders choose between.
func sampleMessages() []Message {
	var (
		s31  = strings.Repeat("a", 31)
		s32  = strings.Repeat("b", 32)
		s255 = strings.Repeat("c", 255)
		s256 = strings.Repeat("d", 256)
		s64k = strings.Repeat("e", 65536)
		b255 = bytes.Repeat([]byte{0xff}, 255)
		b256 = bytes.Repeat([]byte{0x01}, 256)
		b64k = bytes.Repeat([]byte{0x7f}, 65536)
	)
	return []Message{
		&Publish{},
		&Publish{ReqID: 1, Origin: "node-a", Topic: "topics:matrix", Data: []byte("hello"), Ack: 2, Hops: 1},
		&Publish{ReqID: math.MaxUint64, Origin: s31, Topic: s32, Data: []byte{}, Ack: 255, Hops: 128},
		&Publish{ReqID: 127, Origin: s255, Topic: s256, Data: b64k, Ack: 127, Hops: 255},
		&PublishAck{},
		&PublishAck{ReqID: 128, Epoch: 255, Seq: 256, Code: 3, Err: "pubsub: no owner"},
		&PublishAck{ReqID: 65535, Epoch: 65536, Seq: math.MaxUint32, Code: 255, Err: s64k},
		&Deliver{},
		&Deliver{Topic: "t", Epoch: 1, Seq: 1, Data: []byte{0}},
		&Deliver{Topic: s256, Epoch: math.MaxUint32 + 1, Seq: math.MaxUint64, Data: b256},
		&Deliver{Topic: s64k, Epoch: 7, Seq: 9, Data: b255},
		&ReplicaDeliver{},
		&ReplicaDeliver{Topic: "t", Epoch: 7, Seq: 9, Data: b255, Time: -1, ReqID: math.MaxUint64},
		&Subscribe{},
		&Subscribe{ReqID: 9, Topic: "news", Since: 41, HasSince: true},
		&Subscribe{ReqID: math.MaxUint64, Topic: s32, Since: math.MaxUint64, HasSince: false, Origin: "node-c", Hops: 255},
		&SubscribeAck{},
		&SubscribeAck{ReqID: 3, Epoch: 4, Seq: 5, Code: 1, Err: "pubsub: history too short"},
		&Unsubscribe{},
		&Unsubscribe{Topic: s255, Origin: s32, Hops: 3},
		&StateRequest{},
		&StateRequest{ReqID: 77, Topic: "topics:x", Peek: true},
		&State{},
		&Handoff{},
		&Handoff{ReqID: 1, Topic: "t", Epoch: 2, Seq: 3, Nodes: []string{}, History: []HistoryEntry{}},
		&Handoff{ReqID: 7, Topic: s32, Epoch: 2, Seq: 3, Nodes: []string{"a", s256}, History: []HistoryEntry{{Seq: 3, Time: -1, Data: b255}}},
		&State{
			ReqID: 5, Topic: "room", Found: true, Epoch: 9, Seq: 1000,
			Nodes: []string{"a", s32, ""},
			History: []HistoryEntry{
				{Seq: 998, Time: 1_700_000_000_000_000_000, Data: []byte("x")},
				{Seq: 999, Time: -1, Data: nil},
				{Seq: 1000, Time: math.MinInt64, Data: b256},
				{Seq: 1001, Time: math.MaxInt64, Data: []byte{}},
				{Seq: 1002, Time: -33, Data: []byte{1}},
				{Seq: 1003, Time: -129, Data: []byte{2}},
				{Seq: 1004, Time: -32769, Data: []byte{3}},
			},
		},
		&State{Nodes: make([]string, 70000)},
		&StateAck{},
		&StateAck{ReqID: 12, Code: 2, Err: "pubsub: not the owner"},
		&State{ReqID: 2, Topic: "r", Found: true, Epoch: 1, Seq: 8, Replica: true, History: []HistoryEntry{{Seq: 8, Time: 5, Data: []byte("z")}}},
		&State{ReqID: 3, Topic: "big", Found: true, Epoch: 1, Seq: 300, Nodes: []string{"n"}, History: []HistoryEntry{{Seq: 1, Data: b255}}, Xfer: math.MaxUint64},
		&Handoff{ReqID: 8, Topic: "big", Epoch: 4, Seq: 300, History: []HistoryEntry{{Seq: 1, Time: 2, Data: b256}}, Xfer: 128},
		&StateChunk{},
		&StateChunk{Xfer: 1, Topic: "big", Index: 1, History: []HistoryEntry{{Seq: 2, Time: 3, Data: b255}, {Seq: 3, Time: -1, Data: []byte{}}}},
		&StateChunk{Xfer: math.MaxUint64, Topic: s256, Index: math.MaxUint32 + 1, Last: true, History: []HistoryEntry{{Seq: math.MaxUint64, Time: math.MinInt64, Data: b64k}}},
		&StateChunk{Xfer: 9, Topic: "t", Index: 3, Abort: true},
		&QueueJoin{},
		&QueueJoin{ReqID: 5, Topic: "jobs", Group: "workers", Origin: "node-b", Hops: 2},
		&QueueJoin{ReqID: math.MaxUint64, Topic: s256, Group: s255, Origin: s32, Hops: 255},
		&QueueJoinAck{},
		&QueueJoinAck{ReqID: 5, Code: 3, Err: "pubsub: no owner"},
		&QueueLeave{},
		&QueueLeave{Topic: "jobs", Group: s31, Origin: "node-c", Hops: 1},
		&QueueDeliver{},
		&QueueDeliver{Topic: "jobs", Group: "workers", Epoch: 7, Seq: 9, Data: []byte("task"), Acked: true},
		&QueueDeliver{Topic: s256, Group: s32, Epoch: math.MaxUint64, Seq: math.MaxUint32 + 1, Data: b256},
		&QueueAck{},
		&QueueAck{Topic: "jobs", Group: "workers", Epoch: 7, Seq: math.MaxUint64},
		&ChunkAck{},
		&ChunkAck{Xfer: 77, Index: 255},
		&ChunkAck{Xfer: math.MaxUint64, Index: 65536, Code: 5, Err: "pubsub: unknown transfer"},
		&ReplicaNodes{},
		&ReplicaNodes{Topic: "r", Epoch: 1, Seq: 8, Nodes: []string{"a", "b"}},
		&ReplicaNodes{Topic: s255, Epoch: math.MaxUint64, Seq: 256, Nodes: make([]string, 17)},
		&Replicate{},
		&Replicate{ReqID: 4, Topic: "topics:matrix", Epoch: 77, Seq: math.MaxUint64, Time: -5, Data: b256},
		&ReplicateAck{},
		&ReplicateAck{ReqID: math.MaxUint64, Seq: 300},
		&HistoryRequest{},
		&HistoryRequest{ReqID: 6, Topic: s255, After: 10, Until: 1 << 40, Limit: math.MaxUint32},
		&History{},
		&History{ReqID: 1, Topic: "t", Code: 5, Err: "pubsub: history gone", Epoch: 3, Seq: 9, Oldest: 10},
		&TopicsRequest{},
		&TopicsRequest{ReqID: 11, Prefix: "chat:", After: s32, Limit: math.MaxUint32},
		&Topics{},
		&Topics{ReqID: 12, Code: 5, Err: "pubsub: unavailable"},
		&Topics{ReqID: math.MaxUint64, More: true, Topics: []TopicEntry{
			{Name: "a", Epoch: 1, Seq: 2, Nodes: 3, Retained: 4, Durable: true},
			{Name: s256, Epoch: math.MaxUint64, Seq: math.MaxUint32 + 1, Nodes: math.MaxUint32, Retained: 65536, Claiming: true},
			{},
		}},
		&History{ReqID: 2, Topic: s32, Epoch: 3, Seq: 1002, Oldest: 998, Entries: []HistoryEntry{{Seq: 998, Time: 1, Data: b255}, {Seq: 999, Time: math.MaxInt64}}},
		&PresenceReport{},
		&PresenceReport{ReqID: 3, Topic: "room:1", Origin: "node-a", Joins: []PresenceEntry{{Ref: "r.1", Key: "alice", Data: []byte(`{"x":1}`)}}, Leaves: []string{"r.0"}},
		&PresenceReport{ReqID: math.MaxUint64, Topic: s256, Reset: true, More: true, Joins: []PresenceEntry{{Ref: s32, Key: s255, Data: b256}, {Ref: "", Key: "", Data: nil}}, Leaves: []string{}},
		&PresenceDiff{},
		&PresenceDiff{Topic: "room:1", Origin: "node-b", Reset: true, Joins: []PresenceEntry{{Ref: "r.2", Key: "bob", Data: []byte{}}}, Seq: math.MaxUint64},
		&PresenceAck{},
		&PresenceAck{ReqID: 9, Code: 5, Err: "pubsub: presence is off"},
		&PresenceAck{ReqID: 10, Refused: []string{"r.1", s32}, Reasons: []string{"too many", ""}, Resync: true},
		&PresenceWatch{},
		&PresenceWatch{ReqID: math.MaxUint32, Topic: s255},
		&PresenceUnwatch{},
		&PresenceUnwatch{Topic: "room:1"},
		&PresenceSync{},
		&PresenceSync{ReqID: 4, Topic: "room:1", More: true, Origins: []string{"node-a", "node-b"}, Entries: []PresenceEntry{{Ref: "a.1", Key: "alice", Data: []byte("{}")}, {Ref: "b.1", Key: "bob", Data: b255}}},
		&PresenceSync{ReqID: 5, Topic: "room:2", Code: 3, Err: "pubsub: not the owner", Seq: 300},
	}
}

// normalize replaces empty slices by nil throughout v (a pointer to a
// message), so values that differ only in nil-ness compare equal.
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			normalize(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).CanSet() {
				normalize(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		for i := 0; i < v.Len(); i++ {
			normalize(v.Index(i))
		}
	}
}

// equalMessages compares two messages, ignoring nil versus empty.
func equalMessages(a, b Message) bool {
	ca, cb := cloneMessage(a), cloneMessage(b)
	normalize(reflect.ValueOf(ca))
	normalize(reflect.ValueOf(cb))
	return reflect.DeepEqual(ca, cb)
}

// cloneMessage returns a decoded copy of m.
func cloneMessage(m Message) Message {
	c := New(m.FrameType())
	if err := c.DecodeBody(m.AppendBody(nil)); err != nil {
		panic(err)
	}
	return c
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		body := m.AppendBody(nil)
		got := New(m.FrameType())
		if err := got.DecodeBody(body); err != nil {
			t.Fatalf("%v: decode: %v", m.FrameType(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v: round trip changed the message:\n got %+v\nwant %+v", m.FrameType(), got, m)
		}
		frame := EncodeFrame(m)
		if len(frame) != transport.FrameHeaderSize+len(body) {
			t.Fatalf("%v: frame of %d bytes for a %d-byte body", m.FrameType(), len(frame), len(body))
		}
		typ, fb, err := transport.ReadFrame(bytes.NewReader(frame), len(frame))
		if err != nil || typ != m.FrameType() || !bytes.Equal(fb, body) {
			t.Fatalf("%v: ReadFrame = %v, %v; body equal %v", m.FrameType(), typ, err, bytes.Equal(fb, body))
		}
		if m.maxBodySize() < len(body) {
			t.Fatalf("%v: maxBodySize %d < body %d", m.FrameType(), m.maxBodySize(), len(body))
		}
	}
}

// TestMsgpackLibraryAgrees checks the hand-written codecs against the
// msgpack library's view of the same structs, encoded as arrays: our bytes
// decode with msgpack.Unmarshal, and the library's bytes decode with ours.
func TestMsgpackLibraryAgrees(t *testing.T) {
	for _, m := range sampleMessages() {
		typ := m.FrameType()

		lib := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)
		if err := msgpack.Unmarshal(m.AppendBody(nil), lib); err != nil {
			t.Fatalf("%v: msgpack.Unmarshal of our body: %v", typ, err)
		}
		if !equalMessages(lib, m) {
			t.Fatalf("%v: library decoded\n %+v\nwant %+v", typ, lib, m)
		}

		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseArrayEncodedStructs(true)
		if err := enc.Encode(m); err != nil {
			t.Fatalf("%v: library encode: %v", typ, err)
		}
		ours := New(typ)
		if err := ours.DecodeBody(buf.Bytes()); err != nil {
			t.Fatalf("%v: decoding the library's body % x: %v", typ, firstBytes(buf.Bytes()), err)
		}
		if !equalMessages(ours, m) {
			t.Fatalf("%v: we decoded the library's body as\n %+v\nwant %+v", typ, ours, m)
		}

		// With compact integers the library picks the same formats as we do.
		buf.Reset()
		enc.UseCompactInts(true)
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		if err := ours.DecodeBody(buf.Bytes()); err != nil || !equalMessages(ours, m) {
			t.Fatalf("%v: compact library body: %v", typ, err)
		}
	}
}

func firstBytes(b []byte) []byte { return b[:min(len(b), 32)] }

func TestDecodeRejectsTruncated(t *testing.T) {
	for _, m := range sampleMessages() {
		body := m.AppendBody(nil)
		if len(body) > 4096 {
			continue
		}
		for i := range body {
			err := New(m.FrameType()).DecodeBody(body[:i])
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v truncated to %d of %d bytes: err = %v, want ErrMalformed", m.FrameType(), i, len(body), err)
			}
		}
		err := New(m.FrameType()).DecodeBody(append(body, 0))
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v with a trailing byte: err = %v", m.FrameType(), err)
		}
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	// Each body is well formed up to the defect named, so the error must
	// mention why.
	cases := []struct {
		name string
		m    Message
		body []byte
		why  string
	}{
		{"empty", &Deliver{}, nil, "truncated"},
		{"not an array", &Deliver{}, []byte{0x04}, "not an array"},
		{"nil body", &Deliver{}, []byte{mpNil}, "nil"},
		{"too few fields", &Deliver{}, []byte{0x93, 0xa1, 't', 1, 2}, "3 fields, want 4"},
		{"int for a string", &Deliver{}, []byte{0x94, 0x01, 1, 2, 0xc4, 0}, "not a string"},
		{"string for an int", &Deliver{}, []byte{0x94, 0xa1, 't', 0xa1, 'x', 2, 0xc4, 0}, "not an integer"},
		{"negative uint", &Deliver{}, []byte{0x94, 0xa1, 't', 0xff, 2, 0xc4, 0}, "negative"},
		{"negative int8 uint", &Deliver{}, []byte{0x94, 0xa1, 't', 0xd0, 0x80, 2, 0xc4, 0}, "negative"},
		{"float for an int", &Deliver{}, []byte{0x94, 0xa1, 't', 0xca, 0, 0, 0, 0, 2, 0xc4, 0}, "not an integer"},
		{"map for bin", &Deliver{}, []byte{0x94, 0xa1, 't', 1, 2, 0x80}, "not binary"},
		{"int for the replica flag", &State{}, []byte{0x99, 1, 0xa0, 0xc3, 1, 1, 0x90, 0x90, 0x01}, "not a bool"},
		{"chunk with a string index", &StateChunk{}, []byte{0x96, 1, 0xa1, 't', 0xa1, 'x', 0xc2, 0xc2, 0xc0}, "not an integer"},
		{"chunk history array32 of 4G", &StateChunk{}, []byte{0x96, 1, 0xa1, 't', 1, 0xc3, 0xc2, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x93, 1, 1, 0xc0}, "truncated"},
		{"chunk ack code overflow", &ChunkAck{}, []byte{0x94, 1, 2, 0xcd, 0x01, 0x00, 0xa0}, "overflows uint8"},
		{"uint8 overflow", &StateAck{}, []byte{0x93, 1, 0xcd, 0x01, 0x00, 0xa0}, "overflows uint8"},
		{"bad bool", &Subscribe{}, []byte{0x96, 1, 0xa1, 't', 1, 0x01, 0xa0, 0}, "not a bool"},
		{"int64 overflow", &State{}, []byte{0x99, 1, 0xa0, 0xc3, 1, 1, 0x90, 0x91, 0x93, 1, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc2}, "overflows int64"},
		{"history entry not an array", &State{}, []byte{0x99, 1, 0xa0, 0xc3, 1, 1, 0x90, 0x91, 0x01, 0xc2, 0xc2, 0xc2, 0xc2}, "not an array"},
		{"reserved format byte", &Unsubscribe{}, []byte{0x94, 0xa0, 0xa0, 0, 0xc1}, "invalid format byte 0xc1"},
		{"str32 of 4 GiB", &Unsubscribe{}, []byte{0x93, 0xdb, 0xff, 0xff, 0xff, 0xff, 'x', 0xa0, 0}, "truncated"},
		{"bin32 of 4 GiB", &Deliver{}, []byte{0x94, 0xa0, 1, 2, 0xc6, 0xff, 0xff, 0xff, 0xff}, "truncated"},
		{"array32 of 4G fields", &Deliver{}, []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xa0, 1, 2, 0xc0}, "truncated"},
		{"nodes array32 of 4G", &State{}, []byte{0x99, 1, 0xa0, 0xc3, 1, 1, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xa0, 0xa0}, "truncated"},
		{"history array32 of 4G", &State{}, []byte{0x99, 1, 0xa0, 0xc3, 1, 1, 0xc0, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x93, 1, 1, 0xc0}, "truncated"},
		{"extra field map16 of 64k", &Unsubscribe{}, []byte{0x94, 0xa0, 0xa0, 0, 0xde, 0xff, 0xff, 1, 1}, "truncated"},
		{"extra field ext32 of 4 GiB", &Unsubscribe{}, []byte{0x94, 0xa0, 0xa0, 0, 0xc9, 0xff, 0xff, 0xff, 0xff, 1}, "truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			err := tc.m.DecodeBody(tc.body)
			runtime.ReadMemStats(&ms)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("err = %v, want ErrMalformed saying %q", err, tc.why)
			}
			if grown := ms.TotalAlloc - before; grown > 64<<10 {
				t.Fatalf("decoding %d bytes allocated %d bytes", len(tc.body), grown)
			}
		})
	}
}

func TestDecodeSkipsUnknownTrailingFields(t *testing.T) {
	m := &Deliver{Topic: "t", Epoch: 1, Seq: 2, Data: []byte("d")}
	body := m.AppendBody(nil)
	// Same fields in an array of 8, followed by values of every kind.
	ext := append([]byte{0x98}, body[1:]...)
	ext = append(ext,
		0x82, 0xa1, 'k', 0x92, 0xc3, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0xc0, // map{"k": [true, 0.0], "": nil}
		0xd5, 1, 0xaa, 0xbb, // fixext2
		0xc7, 2, 5, 1, 2, // ext8
		0xdc, 0x00, 0x01, 0xd1, 0xff, 0xfe, // array16 [int16]
	)
	var got Deliver
	if err := got.DecodeBody(ext); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, m) {
		t.Fatalf("got %+v, want %+v", got, m)
	}

	// Deep nesting in an unknown field is refused, not recursed into.
	deep := append([]byte{0x95}, body[1:]...)
	deep = append(deep, bytes.Repeat([]byte{0x91}, 1000)...)
	deep = append(deep, 0xc0)
	if err := got.DecodeBody(deep); !errors.Is(err, ErrMalformed) {
		t.Fatalf("deep nesting: err = %v", err)
	}
}

func TestDecodeAliasesBytesNotStrings(t *testing.T) {
	m := &Deliver{Topic: "topic", Seq: 1, Data: []byte("payload")}
	body := m.AppendBody(nil)
	var got Deliver
	if err := got.DecodeBody(body); err != nil {
		t.Fatal(err)
	}
	if cap(got.Data) != len(got.Data) {
		t.Fatalf("Data has spare capacity %d: appending would overwrite the body", cap(got.Data)-len(got.Data))
	}
	for i := range body {
		body[i] = 'X'
	}
	if string(got.Data) != strings.Repeat("X", len("payload")) {
		t.Fatalf("Data does not alias the body: %q", got.Data)
	}
	if got.Topic != "topic" {
		t.Fatalf("Topic changed with the body: %q", got.Topic)
	}
}

func TestEncodeDecodeAllocs(t *testing.T) {
	m := &Deliver{Topic: "topics:matrix", Epoch: 3, Seq: 12345, Data: make([]byte, 100)}
	if n := testing.AllocsPerRun(100, func() { _ = EncodeFrame(m) }); n != 1 {
		t.Fatalf("EncodeFrame(Deliver) made %v allocations, want 1", n)
	}
	body := m.AppendBody(nil)
	var got Deliver
	if n := testing.AllocsPerRun(100, func() { _ = got.DecodeBody(body) }); n != 1 {
		t.Fatalf("Deliver.DecodeBody made %v allocations, want 1 (the topic)", n)
	}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = transport.AppendMessage(buf[:0], m) }); n != 0 {
		t.Fatalf("AppendMessage into a large enough buffer made %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = m.AppendFrame(buf[:0]) }); n != 0 {
		t.Fatalf("Deliver.AppendFrame into a large enough buffer made %v allocations", n)
	}
}

func TestName(t *testing.T) {
	for typ, want := range map[transport.FrameType]string{
		FramePublish: "Publish", FrameState: "State", FrameStateAck: "StateAck",
		FrameReplicaDeliver: "ReplicaDeliver", FrameHandoff: "Handoff", FrameReplicaNodes: "ReplicaNodes",
		FrameStateChunk: "StateChunk", FrameChunkAck: "ChunkAck",
		FramePresenceReport: "PresenceReport", FramePresenceDiff: "PresenceDiff", 39: "", 46: "",
		FrameQueueJoin: "QueueJoin", FrameQueueDeliver: "QueueDeliver", FrameQueueAck: "QueueAck",
		transport.FramePing: "", 0: "", 200: "",
	} {
		if got := Name(typ); got != want {
			t.Errorf("Name(%d) = %q, want %q", uint8(typ), got, want)
		}
	}
	// Every message's frame type has a name, and New knows it.
	for i := range 256 {
		typ := transport.FrameType(i)
		if m := New(typ); (m != nil) != (Name(typ) != "") || m != nil && m.FrameType() != typ {
			t.Errorf("frame type %d: New = %T, Name = %q", typ, m, Name(typ))
		}
		if typ != 0 && typ < transport.FirstUserFrame && Name(typ) != "" {
			t.Errorf("frame type %d is the link's, named %q", typ, Name(typ))
		}
	}
}
