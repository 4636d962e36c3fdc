package transport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
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

func TestReadFrameSequence(t *testing.T) {
	var stream []byte
	msgs := sampleMessages()
	for _, m := range msgs {
		stream = AppendFrame(stream, m)
	}
	stream = append(stream, pingFrame...)
	for name, r := range frameReaders(stream) {
		for i, m := range msgs {
			typ, body, err := ReadFrame(r, 1<<20)
			if err != nil || typ != m.FrameType() || !bytes.Equal(body, m.AppendBody(nil)) {
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
	frame := EncodeFrame(&Deliver{Topic: "t", Data: []byte("0123456789")})
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
	stream = AppendFrame(stream, &Unsubscribe{Topic: "a"})
	stream = AppendFrame(stream, &Unsubscribe{Topic: "b"})
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
	good := EncodeFrame(&Deliver{Topic: "t", Data: make([]byte, 50)})
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
		"body only":      {(&Deliver{Topic: "t"}).AppendBody(nil), 1000, ErrMalformed},
		"internal type":  {EncodeFrame(&hello{}), 1000, ErrMalformed},
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
	in := PeerStats{Sent: map[FrameType]uint64{FrameDeliver: 3, FrameType(200): 1}}
	b, err := json.Marshal(in)
	if err != nil || !strings.Contains(string(b), `"Deliver":3`) || !strings.Contains(string(b), `"FrameType(200)":1`) {
		t.Fatalf("json.Marshal = %s, %v", b, err)
	}
	var out PeerStats
	if err := json.Unmarshal(b, &out); err != nil || out.Sent[FrameDeliver] != 3 || out.Sent[FrameType(200)] != 1 {
		t.Fatalf("json.Unmarshal(%s) = %+v, %v", b, out, err)
	}
}
