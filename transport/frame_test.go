package transport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// frameReaders returns ReadFrame's input as a plain reader, a
// one-byte-at-a-time reader and a small bufio.Reader, so both code paths
// are covered.
func frameReaders(b []byte) map[string]io.Reader {
	return map[string]io.Reader{
		"plain":   bytes.NewReader(b),
		"onebyte": iotest.OneByteReader(bytes.NewReader(b)),
		"bufio":   bufio.NewReaderSize(bytes.NewReader(b), 16),
	}
}

// sampleFrames returns user frames of several types, with bodies at the
// boundaries that matter to a reader: empty, one byte, a small buffer's
// size and more.
func sampleFrames() []received {
	return []received{
		{typ: FirstUserFrame, body: []byte{}},
		{typ: FirstUserFrame + 1, body: []byte{0}},
		{typ: 200, body: bytes.Repeat([]byte{0xff}, 15)},
		{typ: 255, body: bytes.Repeat([]byte{1}, 16)},
		{typ: frameSeq, body: (&testMsg{typ: frameSeq, seq: 1, data: []byte("hello")}).AppendBody(nil)},
		{typ: frameB, body: bytes.Repeat([]byte{0x7f}, 65536)},
	}
}

func TestReadFrameSequence(t *testing.T) {
	var stream []byte
	frames := sampleFrames()
	for _, f := range frames {
		stream = AppendFrame(stream, f.typ, f.body)
	}
	stream = append(stream, pingFrame...)
	for name, r := range frameReaders(stream) {
		for i, f := range frames {
			typ, body, err := ReadFrame(r, 1<<20)
			if err != nil || typ != f.typ || !bytes.Equal(body, f.body) {
				t.Fatalf("%s: frame %d: %v %v", name, i, typ, err)
			}
		}
		typ, body, err := ReadFrame(r, 1<<20)
		if err != nil || typ != FramePing || len(body) != 0 {
			t.Fatalf("%s: ping: %v %d %v", name, typ, len(body), err)
		}
		if _, _, err := ReadFrame(r, 1<<20); err != io.EOF {
			t.Fatalf("%s: at the end: err = %v, want io.EOF", name, err)
		}
	}
}

func TestReadFrameErrors(t *testing.T) {
	frame := AppendFrame(nil, frameSeq, []byte("t0123456789"))
	cases := []struct {
		name  string
		input []byte
		max   int
		want  error
	}{
		{"empty", nil, 100, io.EOF},
		{"partial header", frame[:3], 100, io.ErrUnexpectedEOF},
		{"no type byte", frame[:4], 100, io.ErrUnexpectedEOF},
		{"partial body", frame[:len(frame)-1], 100, io.ErrUnexpectedEOF},
		{"zero length", []byte{0, 0, 0, 0, 16}, 100, ErrMalformed},
		// The length is refused before the (absent) body is read.
		{"too large", []byte{0, 0, 0, 101}, 100, ErrFrameTooLarge},
		{"4 GiB", []byte{0xff, 0xff, 0xff, 0xff}, 8 << 20, ErrFrameTooLarge},
		{"one over", frame, len(frame) - 5, ErrFrameTooLarge},
	}
	for _, tc := range cases {
		for name, r := range frameReaders(tc.input) {
			_, _, err := ReadFrame(r, tc.max)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s/%s: err = %v, want %v", tc.name, name, err, tc.want)
			}
		}
	}
	if _, _, err := ReadFrame(bytes.NewReader(frame), len(frame)-4); err != nil {
		t.Fatalf("frame of exactly max: %v", err)
	}
}

func TestReadFrameTooLargeMessage(t *testing.T) {
	_, _, err := ReadFrame(bytes.NewReader([]byte{0, 0x10, 0, 0}), 1024)
	if err == nil || err.Error() != "transport: frame too large: 1048576 > 1024" {
		t.Fatalf("err = %v", err)
	}
}

func TestReadFrameBodyIsFresh(t *testing.T) {
	var stream []byte
	stream = AppendFrame(stream, frameB, []byte{0xa1, 'a'})
	stream = AppendFrame(stream, frameB, []byte{0xa1, 'b'})
	br := bufio.NewReader(bytes.NewReader(stream))
	_, b1, _ := ReadFrame(br, 100)
	_, b2, _ := ReadFrame(br, 100)
	i := bytes.IndexByte(b1, 'a')
	b1[i] = 'z'
	if bytes.IndexByte(b2, 'b') != i {
		t.Fatal("frame bodies share memory")
	}
}

func TestCheckSendFrame(t *testing.T) {
	good := seqFrame(1, 50)
	if err := checkSendFrame(good, 1000); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[3]++
	cases := map[string]struct {
		frame []byte
		max   int
		want  error
	}{
		"too large":      {good, len(good) - 5, ErrFrameTooLarge},
		"short":          {good[:4], 1000, ErrMalformed},
		"wrong prefix":   {bad, 1000, ErrMalformed},
		"body only":      {(&testMsg{typ: frameSeq}).AppendBody(nil), 1000, ErrMalformed},
		"internal type":  {AppendMessage(nil, &hello{}), 1000, ErrMalformed},
		"ping":           {pingFrame, 1000, ErrMalformed},
		"truncated copy": {good[:len(good)-1], 1000, ErrMalformed},
	}
	for name, tc := range cases {
		if err := checkSendFrame(tc.frame, tc.max); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func TestFrameTypeText(t *testing.T) {
	for i := range 256 {
		ft := FrameType(i)
		b, err := ft.MarshalText()
		if err != nil || string(b) != ft.String() {
			t.Fatalf("%d: MarshalText = %q, %v", i, b, err)
		}
		var back FrameType
		if err := back.UnmarshalText(b); err != nil || back != ft {
			t.Fatalf("%d: UnmarshalText(%q) = %d, %v", i, b, back, err)
		}
	}
	for _, bad := range []string{"", "Nope", "FrameType(256)", "FrameType(x)", "FrameType(1"} {
		var ft FrameType
		if err := ft.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) = %d, want an error", bad, ft)
		}
	}
	// JSON keys frame counts by name, and reads them back.
	in := PeerStats{Sent: map[FrameType]uint64{FramePing: 3, FrameType(200): 1}}
	b, err := json.Marshal(in)
	if err != nil || !strings.Contains(string(b), `"Ping":3`) || !strings.Contains(string(b), `"FrameType(200)":1`) {
		t.Fatalf("json.Marshal = %s, %v", b, err)
	}
	var out PeerStats
	if err := json.Unmarshal(b, &out); err != nil || out.Sent[FramePing] != 3 || out.Sent[FrameType(200)] != 1 {
		t.Fatalf("json.Unmarshal(%s) = %+v, %v", b, out, err)
	}
}

func TestFrameTypeString(t *testing.T) {
	for typ, want := range map[FrameType]string{
		FrameHello: "Hello", FrameHelloAck: "HelloAck", FrameProof: "Proof", FramePing: "Ping",
		FirstUserFrame: "FrameType(16)", 0: "FrameType(0)", 200: "FrameType(200)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

// TestAppendFrame checks that the ways of building a frame agree.
func TestAppendFrame(t *testing.T) {
	m := &testMsg{typ: frameSeq, seq: 9, data: []byte("body")}
	body := m.AppendBody(nil)
	want := append([]byte{0, 0, 0, byte(1 + len(body)), byte(frameSeq)}, body...)
	prefix := []byte("xyz")
	start := len(prefix)
	for name, got := range map[string][]byte{
		"AppendFrame":   AppendFrame(bytes.Clone(prefix), frameSeq, body),
		"AppendMessage": AppendMessage(bytes.Clone(prefix), m),
		"BeginFrame":    EndFrame(m.AppendBody(BeginFrame(bytes.Clone(prefix), frameSeq)), start),
	} {
		if !bytes.Equal(got[:start], prefix) || !bytes.Equal(got[start:], want) {
			t.Errorf("%s = % x, want xyz then % x", name, got, want)
		}
	}
}

// A large body is read as it arrives: a claim beyond what is sent fails
// without ever holding the claimed size, and a complete body is intact
// however it is split.
func TestReadBodyGrowsWithInput(t *testing.T) {
	want := make([]byte, 300<<10)
	for i := range want {
		want[i] = byte(i * 7)
	}
	got, err := readBody(iotest.HalfReader(bytes.NewReader(want)), len(want))
	if err != nil || !bytes.Equal(got, want) || cap(got) != len(want) {
		t.Fatalf("readBody = %d bytes (cap %d), %v", len(got), cap(got), err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := readBody(bytes.NewReader(want[:100]), 1<<30); err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v", err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("%d bytes allocated for a 100-byte start of a 1 GiB claim", n)
	}
}
