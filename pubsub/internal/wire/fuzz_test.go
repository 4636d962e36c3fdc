package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ringcast/ringcast/transport"
)

// fuzzMaxFrame is the frame limit used by the fuzzers.
const fuzzMaxFrame = 1 << 12

// pingFrame is a link frame, which a stream of messages may hold too.
var pingFrame = transport.AppendFrame(nil, transport.FramePing, nil)

// fuzzSeeds returns valid frames of every type, one per seed, plus a
// stream of all of them.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	var all []byte
	for _, m := range sampleMessages() {
		f := EncodeFrame(m)
		if len(f) > fuzzMaxFrame {
			continue
		}
		seeds = append(seeds, f)
		all = append(all, f...)
	}
	seeds = append(seeds, pingFrame, append(all, pingFrame...))
	return seeds
}

// decodeStream reads every frame from r and describes each: its type and
// body, and the body's decoding by its type's decoder (re-encoded, so that
// results compare byte for byte). It ends with the error that stopped it.
func decodeStream(t *testing.T, r io.Reader) []string {
	var out []string
	for {
		typ, body, err := transport.ReadFrame(r, fuzzMaxFrame)
		if err != nil {
			return append(out, "end: "+err.Error())
		}
		out = append(out, fmt.Sprintf("frame %v % x", typ, body))
		out = append(out, decodeBody(t, typ, body))
	}
}

// decodeBody decodes body with typ's decoder and checks the codec's
// invariants: errors wrap ErrMalformed; a decoded message re-encodes to a
// body that decodes to the same message.
func decodeBody(t *testing.T, typ transport.FrameType, body []byte) string {
	if typ == transport.FramePing {
		return fmt.Sprintf("ping, empty %v", len(body) == 0)
	}
	m := New(typ)
	if m == nil {
		return "unknown type"
	}
	if err := m.DecodeBody(body); err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v: decode error %v does not wrap ErrMalformed", typ, err)
		}
		return "malformed: " + err.Error()
	}
	again := m.AppendBody(nil)
	m2 := New(typ)
	if err := m2.DecodeBody(again); err != nil {
		t.Fatalf("%v: re-encoded body does not decode: %v", typ, err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("%v: re-encoding changed the message:\n%+v\n%+v", typ, m, m2)
	}
	return fmt.Sprintf("ok % x", again)
}

// FuzzReadFrame feeds a byte stream through ReadFrame split at every
// offset into two reads, plainly and through a small bufio.Reader: the
// frames, their decoding and the final error must be the same for every
// split, and nothing may panic.
func FuzzReadFrame(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 16})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4*fuzzMaxFrame {
			return
		}
		want := decodeStream(t, bytes.NewReader(data))
		for i := 0; i <= len(data); i++ {
			split := func() io.Reader {
				return io.MultiReader(bytes.NewReader(data[:i]), bytes.NewReader(data[i:]))
			}
			got := decodeStream(t, split())
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("split at %d:\n got %s\nwant %s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			got = decodeStream(t, bufio.NewReaderSize(split(), 16))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("bufio, split at %d:\n got %s\nwant %s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	})
}

// FuzzDecodeBody decodes arbitrary bodies with every message decoder.
func FuzzDecodeBody(f *testing.F) {
	for _, m := range sampleMessages() {
		if body := m.AppendBody(nil); len(body) <= fuzzMaxFrame {
			f.Add(body)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for typ := transport.FrameType(1); typ < 48; typ++ {
			decodeBody(t, typ, body)
		}
	})
}

// TestReadFrameSequence reads back a stream of frames of every message,
// appended one after the other, split into reads of every size.
func TestReadFrameSequence(t *testing.T) {
	var stream []byte
	msgs := sampleMessages()
	for _, m := range msgs {
		stream = transport.AppendMessage(stream, m)
	}
	stream = append(stream, pingFrame...)
	for name, r := range map[string]io.Reader{
		"plain":   bytes.NewReader(stream),
		"onebyte": iotest.OneByteReader(bytes.NewReader(stream)),
		"bufio":   bufio.NewReaderSize(bytes.NewReader(stream), 16),
	} {
		for i, m := range msgs {
			typ, body, err := transport.ReadFrame(r, 1<<20)
			if err != nil || typ != m.FrameType() || !bytes.Equal(body, m.AppendBody(nil)) {
				t.Fatalf("%s: frame %d: %v %v", name, i, typ, err)
			}
		}
		typ, body, err := transport.ReadFrame(r, 1<<20)
		if err != nil || typ != transport.FramePing || len(body) != 0 {
			t.Fatalf("%s: ping: %v %d %v", name, typ, len(body), err)
		}
		if _, _, err := transport.ReadFrame(r, 1<<20); err != io.EOF {
			t.Fatalf("%s: at the end: err = %v, want io.EOF", name, err)
		}
	}
}
